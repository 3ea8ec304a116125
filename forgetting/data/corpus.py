"""The running interpreter's standard library as a Python-code corpus, one row per ``.py`` file.

``python_code`` ships one split, ``all`` (every ``.py`` file under ``sysconfig``'s stdlib directory,
site-packages excluded: about 1,800 files, 31 MB on CPython 3.11); "train"/"eval" are a seeded
95/5 partition by file. Only the paths are listed up front; a file is read when its row is returned,
so a small ``limit`` or the eval split reads little.
"""
from __future__ import annotations

import os
import sysconfig
import tokenize
from functools import lru_cache
from pathlib import Path

from forgetting.data.task import single_split

_SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=None)
def stdlib_files() -> tuple[dict, ...]:
    root = stdlib_root()
    rows = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name not in _SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                rows.append({"id": Path(directory, name).relative_to(root).as_posix()})
    return tuple(rows)


def _read_source(path: Path) -> str:
    """Decode as Python would (coding cookie, else UTF-8); the few deliberately broken test files keep
    their undecodable bytes as U+FFFD instead of being dropped, so the file list never changes."""
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(iter(data.splitlines(keepends=True)).__next__)
    except SyntaxError:
        encoding = "utf-8"
    return data.decode(encoding, errors="replace")


def with_text(rows: list[dict], seed: int) -> list[dict]:
    root = stdlib_root()
    return [{"id": row["id"], "text": _read_source(root / row["id"])} for row in rows]


PYTHON_CODE = single_split("corpus", None, "all", stdlib_files, eval_fraction=0.05, finish=with_text)
