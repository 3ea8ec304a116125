"""``load_task``: validate, pick the split's rows, sample, finish them and build a ``datasets.Dataset``.

``source`` chooses where the rows come from: ``offline`` (the default: data shipped in installed
packages) or ``hub`` (the seeds' real data sets from the Hugging Face hub, ``forgetting.data.hub``).
"""
from __future__ import annotations

from forgetting.data import hub, sources
from forgetting.data.hub_tasks import get_hub_task, has_hub_loader, hub_task_names
from forgetting.data.schemas import COLUMNS, arrow_schema
from forgetting.data.splits import partition, seeded_order
from forgetting.data.task import TASKS, Task
from forgetting.errors import UsageError, check_choice, check_range

SOURCES = ("offline", "hub")


def check_source(source: str) -> None:
    check_choice("source", source, SOURCES)


def task_names(source: str = "offline") -> list[str]:
    """The tasks ``load_task`` serves from ``source``."""
    check_source(source)
    return TASKS.names() if source == "offline" else hub_task_names()


def get_task(name: str, source: str = "offline") -> Task:
    check_source(source)
    if source == "hub":
        return get_hub_task(name).task
    if name not in TASKS and has_hub_loader(name):
        raise UsageError(f"task={name!r} ships no offline data: it is the hub data set "
                         f"{get_hub_task(name).source.repo} (source=hub, needs hub access or a warm HF cache)")
    return TASKS.get(name)


def task_kind(name: str) -> str:
    """The kind of ``name``, whichever source serves it."""
    if name not in TASKS and has_hub_loader(name):
        return get_hub_task(name).task.kind
    return get_task(name).kind


def task_splits(name: str, source: str = "offline") -> tuple[str, ...]:
    """The split names ``load_task`` accepts for this task: train, eval and the shipped ones."""
    return tuple(dict.fromkeys(get_task(name, source).splits))


def check_task(name: str, split: str = "eval", seed: int = 0, limit: int | None = None,
               source: str = "offline") -> Task:
    """Every check ``load_task`` makes before reading data (including that the source is installed, or,
    from the hub, that its files are cached or the hub is reachable)."""
    task = get_task(name, source)
    check_choice("split", split, tuple(dict.fromkeys(task.splits)))
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UsageError(f"seed={seed!r} is not an integer")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise UsageError(f"limit={limit!r} is not an integer")
        check_range("limit", limit, 1)
    if source == "hub":
        hub.check_available(name, get_hub_task(name), split)
    elif task.package is not None:
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


def load_task(name: str, split: str = "eval", seed: int = 0, limit: int | None = None, source: str = "offline"):
    """One split of a task as an in-memory ``datasets.Dataset`` in the schema of its kind.

    ``seed`` decides the train/eval partition where the source ships one split, seeded draws inside
    rows (counterfactual targets) and, with ``limit``, which rows: the first ``limit`` after a
    seeded shuffle (so a smaller limit gives a subset of a larger one). Without ``limit`` rows keep
    the source's order. Unknown names, splits or a missing source package raise ``UsageError``.
    ``source="hub"`` reads the task's hub data set (``forgetting.data.hub``; a streamed one gives the
    first ``limit`` rows of the stream); the dataset then carries its origin for ``log_dataset``.
    """
    task = check_task(name, split, seed, limit, source)
    salt = task.split_group or name
    hub_task = get_hub_task(name) if source == "hub" else None
    if hub_task is not None and hub_task.stream is not None:
        rows = hub_task.stream(split, limit or hub_task.default_rows[split])
    else:
        rows = select_rows(task, split, seed, salt)
    if limit is not None:
        rows = seeded_order(rows, seed, f"order {salt}")[:limit]
    if task.finish:
        rows = task.finish(rows, seed)
    if hub_task is not None and not rows:
        raise UsageError(f"source='hub': task={name!r} split={split!r} has no rows at {hub_task.source.repo}")
    return to_dataset(rows, task.kind, info=hub.dataset_info(hub.origin(hub_task, split)) if hub_task else None)


def to_dataset(rows: list[dict], kind: str, info=None):
    """Rows -> ``datasets.Dataset``: the kind's columns first with fixed types, then extra columns
    with inferred types. Built in memory, so nothing is written to the datasets cache. ``info``: a
    ``datasets.DatasetInfo`` to carry (a hub load's origin)."""
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
    return datasets.Dataset(InMemoryTable(table), info=info)
