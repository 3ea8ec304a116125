"""``load_task``: validate, pick the split's rows, sample, finish them and build a ``datasets.Dataset``."""
from __future__ import annotations

from forgetting.data import sources
from forgetting.data.schemas import COLUMNS, arrow_schema
from forgetting.data.splits import partition, seeded_order
from forgetting.data.task import TASKS, Task
from forgetting.errors import UsageError, check_choice, check_range


def task_names() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> Task:
    return TASKS.get(name)


def task_kind(name: str) -> str:
    return get_task(name).kind


def task_splits(name: str) -> tuple[str, ...]:
    """The split names ``load_task`` accepts for this task: train, eval and the shipped ones."""
    return get_task(name).splits


def check_task(name: str, split: str = "eval", seed: int = 0, limit: int | None = None) -> Task:
    """Every check ``load_task`` makes before reading data (including that the source is installed)."""
    task = get_task(name)
    check_choice("split", split, task.splits)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UsageError(f"seed={seed!r} is not an integer")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise UsageError(f"limit={limit!r} is not an integer")
        check_range("limit", limit, 1)
    if task.package is not None:
        sources.require(task.package, name)
    return task


def select_rows(task: Task, split: str, seed: int, salt: str) -> list[dict]:
    """The rows of ``split`` in source order (train of several shipped splits: in the order listed)."""
    if split in task.shipped:
        return list(task.shipped[split]())
    if task.partitioned:
        train, evaluation = partition(task.shipped[task.eval](), seed, task.eval_fraction, salt)
        return train if split == "train" else evaluation
    if split == "eval":
        return list(task.shipped[task.eval]())
    return [row for shipped in task.train for row in task.shipped[shipped]()]


def load_task(name: str, split: str = "eval", seed: int = 0, limit: int | None = None):
    """One split of a task as an in-memory ``datasets.Dataset`` in the schema of its kind.

    ``seed`` decides the train/eval partition where the source ships one split, seeded draws inside
    rows (counterfactual targets) and, with ``limit``, which rows: the first ``limit`` after a
    seeded shuffle (so a smaller limit gives a subset of a larger one). Without ``limit`` rows keep
    the source's order. Unknown names, splits or a missing source package raise ``UsageError``.
    """
    task = check_task(name, split, seed, limit)
    salt = task.split_group or name
    rows = select_rows(task, split, seed, salt)
    if limit is not None:
        rows = seeded_order(rows, seed, f"order {salt}")[:limit]
    if task.finish:
        rows = task.finish(rows, seed)
    return to_dataset(rows, task.kind)


def to_dataset(rows: list[dict], kind: str):
    """Rows -> ``datasets.Dataset``: the kind's columns first with fixed types, then extra columns
    with inferred types. Built in memory, so nothing is written to the datasets cache."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    schema = arrow_schema(kind)
    missing = [column for column in COLUMNS[kind] if rows and column not in rows[0]]
    if missing:
        raise ValueError(f"{kind} rows lack {missing}")
    extras = list(dict.fromkeys(key for row in rows for key in row if key not in COLUMNS[kind]))
    arrays = [pa.array([row[field.name] for row in rows], type=field.type) for field in schema]
    arrays += [pa.array([row.get(key) for row in rows]) for key in extras]
    table = pa.Table.from_arrays(arrays, names=[*schema.names, *extras])
    return datasets.Dataset(InMemoryTable(table))
