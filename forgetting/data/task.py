"""What a task is: its kind, the package that ships it, its shipped splits and how train/eval map onto them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from forgetting.registry import Registry

TASKS = Registry("task")

Rows = Sequence[dict]


@dataclass(frozen=True)
class Task:
    """A task definition; ``TASKS`` maps names to these (lazily, as ``"module:ATTRIBUTE"``).

    ``shipped`` maps each split the source ships to a function returning its rows (cached, never
    mutated). ``train`` names the shipped splits that make up "train" and ``eval`` the one that is
    "eval". When ``train == (eval,)`` the source ships a single split and "train"/"eval" are a
    seeded disjoint partition of it with ``eval_fraction`` of the rows in "eval"; the whole split
    stays available under its shipped name. ``finish(rows, seed)`` completes the selected rows
    (reads file contents, draws counterfactuals) so that work is only done for rows returned.

    Seeded draws are salted with the task's name, so tasks whose ids coincide (row numbers) are not
    split alike; tasks that should share a partition and row order name the same ``split_group``.
    """

    kind: str
    package: str | None
    shipped: Mapping[str, Callable[[], Rows]]
    train: tuple[str, ...]
    eval: str
    eval_fraction: float = 0.2
    finish: Callable[[list[dict], int], list[dict]] | None = None
    split_group: str | None = None

    @property
    def partitioned(self) -> bool:
        return self.train == (self.eval,)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "eval", *self.shipped)


def single_split(kind: str, package: str | None, name: str, rows: Callable[[], Rows], **options) -> Task:
    """A task whose source ships one split ``name``: train/eval are a seeded partition of it."""
    return Task(kind=kind, package=package, shipped={name: rows}, train=(name,), eval=name, **options)
