"""The seeds' real data sets from the Hugging Face hub, behind the same task names (``source="hub"``).

``load_task(name, split, seed, limit, source="hub")`` reads the hub data set of a task that has a hub
loader (``hub_tasks``: the specs, each with its verified repo id, revision, file layout and schema)
and maps it onto the project's schema of the task's kind. One path serves the hub and the tests:

1. the files of the requested split: ``huggingface_hub.snapshot_download`` of the spec's glob into
   the HF hub cache (``local_files_only`` while offline), or, for a streamed source, the
   ``hf://datasets/<repo>@<revision>/<glob>`` URLs themselves, which are never downloaded;
2. ``datasets.load_dataset(<builder>, data_files=..., split=..., streaming=True)`` iterates their
   records (no Arrow copy is written: a cached set is read from the hub cache in place);
3. the spec's mapper turns records into rows.

A spec whose ``repo`` is a local directory with the hub's file layout (the tests' fixtures, or a
mirror on an air-gapped machine) skips step 1 and runs 2-3 unchanged.

Hub access is the user's: ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` (``./run`` sets 1 only
where the user left them unset). ``check_available`` runs before any MLflow run exists: a set
that is not cached while offline, a streamed set while offline, an unreachable hub (a
``dataset_info`` call with a ``HUB_TIMEOUT`` second timeout), an unknown repo or revision and a
gated repo each end in one ``UsageError`` line that names the data set and how to provide it.
Every returned ``datasets.Dataset`` carries its origin (repo, revision, files, hub splits) in its
``info``; ``tracking.log_dataset`` logs it with the MLflow dataset input.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

from forgetting.data.task import Task
from forgetting.errors import UsageError

HUB_TIMEOUT = 10.0
"""Seconds the reachability check waits for the hub (an unreachable hub fails fast, not after minutes)."""

ORIGIN_BUILDER = "forgetting.hub"
"""``DatasetInfo.builder_name`` of a dataset loaded from the hub; its description holds the origin as JSON."""

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
GO_ONLINE = "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0"
"""How to go online: both, since the project defaults each to 1 where it is unset (``tracking.store``)."""
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubSource:
    """Where a data set lives and how its files are laid out.

    ``repo``: the hub repo id (``org/name``) or a local directory with the same layout.
    ``revision``: a commit sha (pinned) or None for ``main`` (the commit it resolves to is logged).
    ``files``: shipped split -> glob of that split's files inside the repo.
    ``config``: the hub config those files belong to (recorded with the dataset input).
    ``streaming``: the set is too large to download: its files are read from the hub as a stream.
    ``columns``: the columns read (None: all).
    """

    repo: str
    revision: str | None
    files: Mapping[str, str] = field(hash=False)
    config: str | None = None
    builder: str = "parquet"
    streaming: bool = False
    columns: tuple[str, ...] | None = None

    @property
    def local(self) -> bool:
        return Path(self.repo).expanduser().is_dir()

    def download_command(self, patterns: list[str]) -> str:
        revision = f" --revision {self.revision}" if self.revision else ""
        return f"hf download {self.repo} --repo-type dataset{revision}" + "".join(f" --include '{p}'" for p in patterns)


@dataclass(frozen=True)
class HubTask:
    """A task's hub loader: its ``source``, a ``Task`` whose shipped splits read that source, and, for a
    streamed source, ``stream(split, count)`` giving the first ``count`` rows of ``split`` with
    ``default_rows[split]`` taken when no limit is given."""

    source_key: str
    task: Task
    stream: Callable[[str, int], list[dict]] | None = None
    default_rows: Mapping[str, int] = field(default_factory=dict)

    @property
    def source(self) -> HubSource:
        return SOURCES[self.source_key]


SOURCES: dict[str, HubSource] = {}
"""Source key -> ``HubSource``; tests point a key's ``repo`` at a fixture directory."""

def hub_offline() -> str | None:
    """The variable that puts the hub offline (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` true), else None."""
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().upper() in _TRUE:
            return variable
    return None


def shipped_behind(task: Task, split: str) -> list[str]:
    """The shipped splits whose rows make up ``split`` (as ``loading.select_rows`` reads them)."""
    if split in task.shipped:
        return [split]
    if task.partitioned or split == "eval":
        return [task.eval]
    return list(task.train)


# ---------------------------------------------------------------------------------------------
# Availability: checked before any run exists


def check_available(name: str, hub_task: HubTask, split: str) -> None:
    """Raise a one-line ``UsageError`` unless the files behind ``split`` of task ``name`` (its ``hub_task``)
    can be read now."""
    source = hub_task.source
    patterns = sorted({source.files[shipped] for shipped in shipped_behind(hub_task.task, split)})
    if source.local:
        root = Path(source.repo).expanduser()
        for pattern in patterns:
            if not sorted(root.glob(pattern)):
                raise UsageError(f"source='hub': the local copy {root} of task={name!r} has no files {pattern}")
        return
    if not source.streaming and all(_cached(source, pattern) for pattern in patterns):
        return
    offline = hub_offline()
    what = f"the data set {source.repo}{_at(source)}"
    if offline:
        if source.streaming:
            raise UsageError(f"source='hub' streams {what} ({patterns[0]}) and the hub is offline ({offline}=1): "
                             f"run with {GO_ONLINE} where the hub is reachable (./run keeps values you set)")
        raise UsageError(f"source='hub' needs {what}: it is not in the HF cache and the hub is offline ({offline}=1); "
                         f"run with {GO_ONLINE} where the hub is reachable (./run keeps values you set), or run "
                         f"`{source.download_command(patterns)}` once where it is")
    _reach(source, what, patterns)


def _at(source: HubSource) -> str:
    return f" (revision {source.revision[:12]})" if source.revision else ""


def _cached(source: HubSource, pattern: str) -> bool:
    """Whether every file of ``pattern`` at the source's revision is in the HF hub cache (no network)."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(source.repo, repo_type="dataset", revision=source.revision,
                                   allow_patterns=[pattern], local_files_only=True)
    except Exception:  # noqa: BLE001 - anything short of a complete cached snapshot means "not cached"
        return False
    return any(Path(folder).glob(pattern))


def _reach(source: HubSource, what: str, patterns: list[str]) -> None:
    """One ``dataset_info`` call with a short timeout; every failure becomes one line saying what to do."""
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        HfApi().dataset_info(source.repo, revision=source.revision, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        raise UsageError(f"source='hub' needs {what}, which is gated on the hub: accept its terms at "
                         f"https://huggingface.co/datasets/{source.repo} and log in (hf auth login, or HF_TOKEN)"
                         ) from None
    except RevisionNotFoundError:
        raise UsageError(f"source='hub' needs {what}: the hub has no such revision of it") from None
    except RepositoryNotFoundError:
        raise UsageError(f"source='hub' needs {what}: the hub has no such data set, or it is private "
                         f"(log in with hf auth login, or HF_TOKEN)") from None
    except (httpx.HTTPError, OfflineModeIsEnabled, OSError) as error:
        raise UsageError(f"source='hub' needs {what}: it is not in the HF cache and the hub cannot be reached "
                         f"({type(error).__name__}); check the network (or HF_ENDPOINT), or run "
                         f"`{source.download_command(patterns)}` once where the hub is reachable and use its HF cache "
                         f"(HF_HOME) here") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise UsageError(f"source='hub' needs {what}: the hub answered HTTP {status}") from None


# ---------------------------------------------------------------------------------------------
# Loading


_RESOLVED: dict[tuple[str, str | None], str] = {}
"""(repo, revision) -> the commit the files were read at (the snapshot folder's name)."""


def data_files(source: HubSource, shipped: str) -> str:
    """The glob (a local path or an ``hf://`` URL) of a shipped split's files; downloads a non-streamed
    split into the HF hub cache first (only that split's files)."""
    pattern = source.files[shipped]
    if source.local:
        root = str(Path(source.repo).expanduser().resolve())
    elif source.streaming:
        root = f"hf://datasets/{source.repo}@{source.revision or 'main'}"
    else:
        from huggingface_hub import snapshot_download

        cached = hub_offline() is not None or _cached(source, pattern)  # a cached split needs no network at all
        root = snapshot_download(source.repo, repo_type="dataset", revision=source.revision, allow_patterns=[pattern],
                                 local_files_only=cached)
        _RESOLVED[(source.repo, source.revision)] = Path(root).name
    return f"{root}/{pattern}"


def records(source: HubSource, shipped: str):
    """The records of a shipped split, as the data set has them, in file order (an iterator)."""
    import datasets

    options = {"columns": list(source.columns)} if source.columns else {}
    with _quiet_datasets():
        stream = datasets.load_dataset(source.builder, data_files={shipped: data_files(source, shipped)}, split=shipped,
                                       streaming=True, **options)
    return iter(stream)


@lru_cache(maxsize=None)
def _mapped(source: HubSource, shipped: str, mapper: Callable) -> tuple[dict, ...]:
    return tuple(mapper(records(source, shipped), shipped))


def shipped_rows(source_key: str, shipped: str, mapper: Callable) -> Callable[[], tuple[dict, ...]]:
    """A ``Task.shipped`` entry: the mapped rows of ``shipped``, read from the source the key names *now*
    (so a test that points the key at a fixture reads the fixture), cached per source."""
    return lambda: _mapped(SOURCES[source_key], shipped, mapper)


class _quiet_datasets:
    """datasets logs a line per resolved data file pattern; keep a stage's output to its own lines."""

    def __enter__(self):
        import datasets

        self._level = datasets.logging.get_verbosity()
        datasets.logging.set_verbosity_error()

    def __exit__(self, *exc):
        import datasets

        datasets.logging.set_verbosity(self._level)


# ---------------------------------------------------------------------------------------------
# Origin: what the MLflow dataset input records


def origin(hub_task: HubTask, split: str) -> dict:
    """Repo, revision (the resolved commit where known), config, the files read and the hub splits behind ``split``."""
    source = hub_task.source
    shipped = shipped_behind(hub_task.task, split) if hub_task.stream is None else [split]
    revision = "local" if source.local else _RESOLVED.get((source.repo, source.revision), source.revision or "main")
    return {"source": source.repo, "revision": revision, "config": source.config,
            "files": sorted({source.files[name] for name in shipped}), "splits": shipped, "streaming": source.streaming}


def dataset_info(origin_: dict):
    import datasets

    return datasets.DatasetInfo(builder_name=ORIGIN_BUILDER, dataset_name=origin_["source"],
                                config_name=origin_["config"], description=json.dumps(origin_, sort_keys=True),
                                homepage=f"https://huggingface.co/datasets/{origin_['source']}")


def origin_of(ds) -> dict | None:
    """The hub origin a dataset from ``load_task(..., source="hub")`` carries; None for offline data."""
    info = getattr(ds, "info", None)
    if info is None or info.builder_name != ORIGIN_BUILDER:
        return None
    try:
        return json.loads(info.description)
    except (TypeError, ValueError):
        return None
