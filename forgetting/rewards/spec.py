"""What a reward is: one record holding all that post-training and collection need to know about it.

A reward scores a batch, ``(completions, rows) -> list[float]`` (1.0 is correct), and knows the response
that earns it for a row: the ground truth gt-sft learns, collect logs and π-Distill and SDFT hint with.
It is registered in ``REWARDS`` as a ``Reward`` naming both functions and the row columns it reads
besides the prompt (post-training hands a reward only those). A ``Reward`` is called like the scoring function it names; no caller tests a
reward's name.
"""
from __future__ import annotations

from dataclasses import dataclass

from forgetting.registry import load


@dataclass(frozen=True)
class Reward:
    scorer: str                      # "module:function": (completions, rows) -> one reward per completion
    ground_truth: str                # "module:function": row -> the response text that earns 1.0
    columns: tuple[str, ...] = ()    # the row columns the scorer reads besides the prompt

    def __call__(self, completions: list[str], rows) -> list[float]:
        return load(self.scorer)(completions, rows)

    def reference(self, row) -> str:
        return load(self.ground_truth)(row)
