"""A cheap fingerprint of a local checkpoint directory's weight files, for stage cache keys.

Of the model specs (``forgetting.models.resolve``) only a local directory can hold other weights
under the same name: a bundled model is named by its conversion, and a registered version or a run's
artifact never changes. A stage given a directory therefore keys its run on the directory's weight
files as well: their names, sizes and modification times (``stat`` only: nothing is read, so a
checkpoint of many gigabytes costs nothing). A same-size rewrite within the filesystem's timestamp
granularity would go unnoticed; saving or copying a checkpoint does not.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from forgetting.models.bundled import BUNDLED

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_files(directory: Path) -> list[Path]:
    """The weights in ``directory`` and their shard indexes (``model.safetensors.index.json``)."""
    return sorted(path for path in directory.iterdir()
                  if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name.endswith(".index.json")))


def local_weights_fingerprint(spec) -> str | None:
    """A digest of the weight files' names, sizes and modification times where ``spec`` names a local
    directory holding weights (as ``resolve_model`` reads it); None for any other value."""
    if not isinstance(spec, str) or not spec or spec in BUNDLED:
        return None
    directory = Path(spec).expanduser()
    if not directory.is_dir():
        return None
    stats = [(path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in weight_files(directory)]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16] if stats else None
