"""Checkpoints in the tracking store: log a Hugging Face directory, register it, resolve it back.

A checkpoint is logged with ``log_artifacts`` and registered with
``MlflowClient.create_model_version(source="runs:/<id>/<path>")``: MLflow 3's
``register_model("runs:/…")`` needs a LoggedModel, and ``from_pretrained`` on the downloaded
directory is the most robust way back.

Identical checkpoints are stored once. Every registered version carries the sha256 of its files
(``forgetting.digest``). A directory that already is a stored artifact (a resolved ``models:/`` or
``runs:/`` spec: the ``train`` stage's step 0 is its input model's own folder), or whose digest a
registered version carries, is not logged again: the new version's source is the stored artifact
(tag ``forgetting.same_weights_as``) and the run maps the artifact path to it (run tag
``forgetting.same_weights``), so ``resolve_checkpoint`` of either gives the one stored directory.
``dtype="bf16"`` stores a checkpoint's floating-point weights as bfloat16, half the bytes of fp32.

``log_model`` writes a model in memory once, straight in its storage dtype, into a scratch folder beside the
store; a local artifact store takes that folder by a rename. Saving in full precision, converting, then
copying into the store wrote a 135M model's weights three times (1 GB for 270 MB stored).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlparse

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from forgetting.errors import UsageError
from forgetting.tracking.pinned import pinned
from forgetting.tracking.store import configure, home

CHECKPOINT_TAG = "forgetting.checkpoint"
VERSION_KEY_TAG = "forgetting.version_key"
DIGEST_TAG = "forgetting.digest"  # version tag: sha256 of the checkpoint's files (``checkpoint_digest``)
ARTIFACT_PATH_TAG = "forgetting.artifact_path"  # version tag: the path it was logged under in its parent run
SAME_WEIGHTS_AS_TAG = "forgetting.same_weights_as"  # version tag: the models:/ (or runs:/) URI whose files it reuses
SAME_WEIGHTS_TAG = "forgetting.same_weights"  # run tag: JSON {artifact path: runs:/ URI of the stored copy}
CHECKPOINT_DTYPES = ("fp32", "bf16")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
RUN_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})/(?P<path>.+)$")
_SAFETENSORS_DTYPES = {"fp32": "F32", "bf16": "BF16"}
_FLOATING = {"F64", "F32", "F16", "BF16"}
_HF_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def is_tracking_uri(spec: str) -> bool:
    return bool(MODEL_URI.match(spec) or RUN_URI.match(spec) or RUN_ID.match(spec))


def log_checkpoint(directory: str | Path, artifact_path: str = "checkpoint", *,
                   register_as: str | None = None, alias: str | None = None,
                   tags: Mapping[str, object] | None = None,
                   version_key: str | None = None, dtype: str | None = None,
                   move: bool = False) -> ModelVersion | None:
    """Log ``directory`` to the active run and, with ``register_as``, register it as a model version.

    Registration is idempotent: per (run, artifact path), and per ``version_key`` across runs, so a
    resumed stage that reaches a checkpoint its killed attempt already registered gets that
    version back (nothing logged again) instead of a duplicate.

    Storage is deduplicated: a checkpoint equal to one already stored (``directory`` is a stored
    artifact, or a registered version has its digest) logs no files; its version's source is the
    stored artifact. ``dtype`` (``fp32`` or ``bf16``) stores the floating-point weights in that
    dtype, from a converted copy (``directory`` is left as it is); None stores them as they are.
    ``move``: ``directory`` is the caller's ``scratch_folder``, which a local artifact store takes as it is.
    """
    run_id = _active_run_id()
    if dtype is not None:
        check_dtype(dtype)
    if found := _registered_before(register_as, version_key, artifact_path):
        return _with_alias(mlflow.MlflowClient(), found, alias)
    return _store(directory, artifact_path, run_id, register_as=register_as, alias=alias, tags=tags,
                  version_key=version_key, dtype=dtype, move=move)


def _store(directory: str | Path, artifact_path: str, run_id: str, *, register_as: str | None = None,
           alias: str | None = None, tags: Mapping[str, object] | None = None, version_key: str | None = None,
           dtype: str | None = None, move: bool = False) -> ModelVersion | None:
    """``log_checkpoint`` once it found no version to return: store (or reference) the files and register them."""
    client = mlflow.MlflowClient()
    own = f"runs:/{run_id}/{artifact_path}"
    with scratch_folder() as converted:
        folder, movable = Path(directory), move
        if dtype is not None and needs_cast(folder, dtype):
            folder, movable = cast_checkpoint(folder, converted, dtype), True
        stored, same_as, digest = _stored_copy(client, folder, cache=not movable)
        if stored is None or stored == own:
            stored, same_as = None, None
            _log_files(folder, artifact_path, movable)
        else:
            _record_same_weights(run_id, artifact_path, stored)
    mlflow.set_tag(CHECKPOINT_TAG, artifact_path)
    if register_as is None:
        return None
    from forgetting.tracking.runs import TAG

    study = client.get_run(run_id).data.tags.get(f"{TAG}study")  # the registering stage's, so declared once
    tags = ({"study": study} if study else {}) | {k: str(v) for k, v in (tags or {}).items()} | {
        "parent_run": run_id, DIGEST_TAG: digest, ARTIFACT_PATH_TAG: artifact_path}
    if version_key is not None:
        tags[VERSION_KEY_TAG] = version_key
    if same_as is not None:
        tags[SAME_WEIGHTS_AS_TAG] = same_as
    try:
        client.create_registered_model(register_as)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return _with_alias(client, _create_version(client, register_as, stored or own, run_id, tags), alias)


def log_model(model, tokenizer, artifact_path: str = "checkpoint", *, weights: Mapping | None = None,
              dtype: str | None = None, add_files=None, **options) -> ModelVersion | None:
    """Save ``model`` (with ``weights``, a full state dict, instead of its own) and ``tokenizer`` as a Hugging
    Face checkpoint, its floating-point weights in ``dtype`` (None: as they are), ``add_files(folder)`` adding
    any other file, then store and register it as ``log_checkpoint`` does with ``options``; nothing is written for a version a killed attempt
    already registered."""
    if found := _registered_before(options.get("register_as"), options.get("version_key"), artifact_path):
        return _with_alias(mlflow.MlflowClient(), found, options.get("alias"))
    with scratch_folder() as folder:
        save_checkpoint(model, tokenizer, folder, dtype, weights)
        if add_files:
            add_files(folder)
        return _store(folder, artifact_path, _active_run_id(), move=True, **options)


def save_checkpoint(model, tokenizer, folder: str | Path, dtype: str | None = None,
                    weights: Mapping | None = None) -> Path:
    """``model`` (or its state dict ``weights``) and ``tokenizer`` written to ``folder``, floating-point weights
    converted to ``dtype`` in memory first (``config.json``'s dtype follows)."""
    import torch

    weights = dict(model.state_dict() if weights is None else weights)
    if dtype is not None:
        check_dtype(dtype)
        target, converted = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype], {}
        for key, tensor in weights.items():  # tensors sharing storage (tied embeddings) stay shared: stored once
            slot = (tensor.data_ptr(), tensor.shape, tensor.stride())
            converted[slot] = converted[slot] if slot in converted else _cast(tensor, target)
            weights[key] = converted[slot]
    model.save_pretrained(folder, state_dict=weights)
    tokenizer.save_pretrained(folder)
    if dtype is not None and (config := Path(folder) / "config.json").exists():
        config.write_text(json.dumps(_with_dtype(json.loads(config.read_text()), _HF_DTYPES[dtype]), indent=2) + "\n")
    return Path(folder)


def check_dtype(dtype: str) -> None:
    if dtype not in CHECKPOINT_DTYPES:
        raise UsageError(f"dtype={dtype!r} is not one of: {', '.join(CHECKPOINT_DTYPES)}")


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A new folder (not yet created) under ``<home>/tmp``, on the default local artifact store's file system,
    removed afterwards unless the store took it."""
    scratch = home() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        yield Path(directory) / "checkpoint"


def _log_files(folder: Path, artifact_path: str, movable: bool) -> None:
    """``mlflow.log_artifacts(folder, artifact_path)``; a ``movable`` folder is renamed into a local artifact
    store instead (the same files where MLflow would copy them, without writing the weights again)."""
    uri = urlparse(mlflow.get_artifact_uri(artifact_path))
    if movable and uri.scheme in ("", "file"):
        target = Path(uri.path)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                folder.rename(target)
                return
            except OSError:  # another file system: copied below
                pass
    mlflow.log_artifacts(str(folder), artifact_path)


def _create_version(client, name: str, source: str, run_id: str, tags: dict) -> ModelVersion:
    """The version with ``run_id`` the registering run; a tracking server accepts a ``runs:/`` source only
    from the run that holds it, so a reused artifact is then registered with its own run's ID (the
    registering run stays in the ``parent_run`` tag)."""
    source_run = RUN_URI.match(source)["run_id"]
    try:
        return client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    except MlflowException as error:
        if source_run == run_id or error.error_code != "INVALID_PARAMETER_VALUE":
            raise
    return client.create_model_version(name, source=source, run_id=source_run, tags=tags)


def _registered_before(register_as: str | None, version_key: str | None, artifact_path: str) -> ModelVersion | None:
    """The version of ``register_as`` that ``version_key`` names, or that the active run registered from
    ``artifact_path``: what registering again would duplicate."""
    run_id = _active_run_id()
    if register_as is None:
        return None
    found = version_by_key(register_as, version_key) if version_key is not None else None
    return found or _registered_in_run(mlflow.MlflowClient(), register_as, run_id, artifact_path)


def _active_run_id() -> str:
    if (run := mlflow.active_run()) is None:
        raise RuntimeError("log_checkpoint needs an active MLflow run")
    return run.info.run_id


def _registered_in_run(client, name: str, run_id: str, artifact_path: str) -> ModelVersion | None:
    """The version of ``name`` that run ``run_id`` registered from ``artifact_path``, if any."""
    found = _logged_as(client.search_model_versions(f"name = '{name}' and tags.parent_run = '{run_id}'"),
                       run_id, artifact_path)
    return found[0] if found else None


def _logged_as(versions, run_id: str, artifact_path: str) -> list[ModelVersion]:
    """The versions among ``versions`` registered from ``artifact_path`` of run ``run_id`` (the tag, or the
    source of a version registered before the tag existed)."""
    return [v for v in versions if v.tags.get(ARTIFACT_PATH_TAG) == artifact_path
            or (ARTIFACT_PATH_TAG not in v.tags and v.source == f"runs:/{run_id}/{artifact_path}")]


def _stored_copy(client, folder: Path, cache: bool) -> tuple[str | None, str | None, str]:
    """``(runs:/ URI of a stored equal artifact, the models:/ URI naming it, digest)``; None, None when
    no equal checkpoint is stored."""
    if origin := _artifact_origin(client, folder):
        versions = [v for v in client.search_model_versions(f"run_id = '{RUN_URI.match(origin)['run_id']}'")
                    if v.source == origin]
        originals = sorted((v for v in versions if SAME_WEIGHTS_AS_TAG not in v.tags), key=lambda v: int(v.version))
        digest = next((v.tags[DIGEST_TAG] for v in versions if DIGEST_TAG in v.tags), None)
        named = f"models:/{originals[0].name}/{originals[0].version}" if originals else origin
        return origin, named, digest or checkpoint_digest(folder, cache=cache)
    digest = checkpoint_digest(folder, cache=cache)
    equal = client.search_model_versions(f"tags.`{DIGEST_TAG}` = '{digest}'")
    for version in sorted(equal, key=lambda v: (SAME_WEIGHTS_AS_TAG in v.tags, v.creation_timestamp)):
        if (source := RUN_URI.match(version.source)) and _active(client, source["run_id"]):
            return version.source, version.tags.get(SAME_WEIGHTS_AS_TAG, f"models:/{version.name}/{version.version}"), digest
    return None, None, digest


def _artifact_origin(client, folder: Path) -> str | None:
    """``runs:/<id>/<path>`` when ``folder`` is a stored artifact: read in place from a local artifact
    store, or downloaded by ``resolve_checkpoint`` (whose marker names what it downloaded)."""
    folder = folder.resolve()
    marker = folder / ".complete"
    if marker.is_file() and (uri := marker.read_text().strip()):
        if MODEL_URI.match(uri):
            try:
                uri = checkpoint_version(uri).source
            except UsageError:
                return None
        match = RUN_URI.match(uri)
        return uri if match and _active(client, match["run_id"]) else None
    parts = folder.parts
    for index in range(len(parts) - 3, 0, -1):
        if RUN_ID.match(parts[index]) and parts[index + 1] == "artifacts":
            run_id, path = parts[index], "/".join(parts[index + 2:])
            try:
                run = client.get_run(run_id)
            except MlflowException:
                return None
            local = _local_artifacts(run.info.artifact_uri, path)
            if run.info.lifecycle_stage == "active" and local is not None and local.resolve() == folder:
                return f"runs:/{run_id}/{path}"
            return None
    return None


def _active(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _record_same_weights(run_id: str, artifact_path: str, stored: str) -> None:
    same = json.loads(mlflow.get_run(run_id).data.tags.get(SAME_WEIGHTS_TAG, "{}"))
    mlflow.set_tag(SAME_WEIGHTS_TAG, json.dumps(same | {artifact_path: stored}, sort_keys=True))


def checkpoint_digest(directory: str | Path, *, cache: bool = True) -> str:
    """sha256 of a checkpoint directory: every file's relative path, size and bytes (weights, config,
    tokenizer; hidden files such as a download's marker left out). Cached in ``<home>/digests`` per
    folder, valid while its files keep their sizes and modification times."""
    folder = Path(directory).resolve()
    files = sorted((path for path in folder.rglob("*") if path.is_file()
                    and not any(part.startswith(".") for part in path.relative_to(folder).parts)),
                   key=lambda path: path.relative_to(folder).as_posix())
    signature = [[path.relative_to(folder).as_posix(), path.stat().st_size, path.stat().st_mtime_ns]
                 for path in files]
    entry = home() / "digests" / f"{hashlib.sha256(str(folder).encode()).hexdigest()[:32]}.json"
    if cache and entry.exists():
        try:
            cached = json.loads(entry.read_text())
            if cached["files"] == signature:
                return cached["digest"]
        except (ValueError, KeyError):
            pass
    digest = hashlib.sha256()
    for path, (name, size, _) in zip(files, signature):
        digest.update(f"{name}\0{size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    value = digest.hexdigest()
    if cache:
        entry.parent.mkdir(exist_ok=True)
        partial = entry.with_name(f"{entry.name}.{os.getpid()}")
        partial.write_text(json.dumps({"folder": str(folder), "files": signature, "digest": value}))
        partial.replace(entry)
    return value


def needs_cast(directory: str | Path, dtype: str) -> bool:
    """Whether a floating-point tensor in the directory's safetensors files is not ``dtype``."""
    from safetensors import safe_open

    for path in Path(directory).glob("*.safetensors"):
        with safe_open(path, "pt") as weights:
            if any((found := weights.get_slice(key).get_dtype()) in _FLOATING and found != _SAFETENSORS_DTYPES[dtype]
                   for key in weights.keys()):
                return True
    return False


def cast_checkpoint(source: str | Path, destination: str | Path, dtype: str) -> Path:
    """A copy of the checkpoint ``source`` in ``destination`` with its floating-point weights in ``dtype``
    (``fp32`` or ``bf16``); ``config.json``'s ``dtype``/``torch_dtype`` and a shard index's total size
    follow. Tensors are converted one at a time."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    source, destination = Path(source), Path(destination)
    destination.mkdir(parents=True)
    total = 0
    for path in sorted(source.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix == ".safetensors":
            with safe_open(path, "pt") as weights:
                metadata = weights.metadata()
                tensors = {key: _cast(weights.get_tensor(key), target) for key in weights.keys()}
            total += sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
            save_file(tensors, destination / path.name, metadata=metadata)
        elif path.is_dir():
            shutil.copytree(path, destination / path.name)
        else:
            shutil.copy2(path, destination / path.name)
    if (config := destination / "config.json").exists():
        config.write_text(json.dumps(_with_dtype(json.loads(config.read_text()), _HF_DTYPES[dtype]), indent=2) + "\n")
    if (index := destination / "model.safetensors.index.json").exists():
        content = json.loads(index.read_text())
        content.setdefault("metadata", {})["total_size"] = total
        index.write_text(json.dumps(content, indent=2) + "\n")
    return destination


def _cast(tensor, target):
    return tensor.to(target) if tensor.is_floating_point() else tensor


def _with_dtype(config: dict, name: str, top: bool = True) -> dict:
    """``config`` with every ``dtype``/``torch_dtype`` (nested configs too) set to ``name``; the top level
    gets ``dtype`` when it names none."""
    changed = {key: _with_dtype(value, name, False) if isinstance(value, dict) else value
               for key, value in config.items()}
    for key in ("dtype", "torch_dtype"):
        if key in changed:
            changed[key] = name
    if top and "torch_dtype" not in changed:
        changed["dtype"] = name
    return changed


def version_by_key(name: str, version_key: str) -> ModelVersion | None:
    """The version of ``name`` registered under ``version_key`` (see ``log_checkpoint``), if any."""
    found = mlflow.MlflowClient().search_model_versions(
        f"name = '{name}' and tags.`{VERSION_KEY_TAG}` = '{version_key}'")
    return found[0] if found else None


def _with_alias(client, version: ModelVersion, alias: str | None) -> ModelVersion:
    if alias:
        client.set_registered_model_alias(version.name, alias, version.version)
    return version


def registered_name(spec: str) -> str:
    """A registry name derived from a model spec: the registered name of a ``models:/`` URI, the
    folder name of a directory, otherwise the spec with unsafe characters replaced."""
    if match := MODEL_URI.match(spec):
        return match["name"]
    base = Path(spec).name if Path(spec).is_dir() else spec
    return re.sub(r"[^\w.-]+", "-", base).strip("-")


def checkpoint_version(spec: str) -> ModelVersion | None:
    """The registered version behind ``models:/…`` (pinned inside ``resolved_once``, as its directory is)
    or a ``runs:/`` URI that one was registered from."""
    client = mlflow.MlflowClient()
    if match := MODEL_URI.match(spec):
        return pinned("version", spec, lambda: _model_version(client, spec, match))
    if match := RUN_URI.match(spec):
        run_id, path = match["run_id"], match["path"]
        found = (_logged_as(client.search_model_versions(f"tags.parent_run = '{run_id}'"), run_id, path)
                 or [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.source == spec])
        return min(found, key=lambda v: v.creation_timestamp) if found else None
    return None


def _model_version(client, spec: str, match: re.Match) -> ModelVersion:
    try:
        return (client.get_model_version_by_alias(match["name"], match["alias"]) if match["alias"]
                else client.get_model_version(match["name"], match["version"]))
    except MlflowException:
        raise UsageError(f"model={spec!r} is not in the model registry") from None


def resolve_checkpoint(spec: str) -> Path:
    """A local directory for ``models:/name@alias``, ``models:/name/version``, ``runs:/id/path`` or a run ID.

    Downloads go to ``<home>/downloads`` keyed on the immutable run (or version, for a source that is
    not a run's artifact), once. A version or run path that reuses an equal stored checkpoint gives
    that checkpoint's directory.
    """
    configure()
    client = mlflow.MlflowClient()
    if MODEL_URI.match(spec):
        found = checkpoint_version(spec)
        if RUN_URI.match(found.source):  # versions that share a stored checkpoint share its directory
            return resolve_checkpoint(found.source)
        uri = f"models:/{found.name}/{found.version}"
        cache = home() / "downloads" / "models" / found.name / str(found.version)
    else:
        if match := RUN_URI.match(spec):
            run_id, path = match["run_id"], match["path"]
        elif RUN_ID.match(spec):
            run_id, path = spec, None
        else:
            raise UsageError(f"model={spec!r} is not models:/name@alias, models:/name/version, runs:/<id>/<path> or a run ID")
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise UsageError(f"model={spec!r}: run {run_id} is not in the tracking store") from None
        path = path or run.data.tags.get(CHECKPOINT_TAG)
        if path is None:
            raise UsageError(f"model={spec!r}: run {run_id} logged no checkpoint")
        stored = json.loads(run.data.tags.get(SAME_WEIGHTS_TAG, "{}")).get(path)
        if stored and stored != f"runs:/{run_id}/{path}":  # logged as a reference to an equal stored checkpoint
            return resolve_checkpoint(stored)
        if local := _local_artifacts(run.info.artifact_uri, path):
            return local
        uri, cache = f"runs:/{run_id}/{path}", home() / "downloads" / "runs" / run_id / path
    return _download_once(uri, cache)


def _local_artifacts(root: str, path: str) -> Path | None:
    """The logged directory itself when the run's artifact root is a local folder: no copy needed."""
    parsed = urlparse(root)
    if parsed.scheme not in ("", "file"):
        return None
    local = Path(parsed.path if parsed.scheme else root) / path
    return local if (local / "config.json").exists() else None


def _download_once(uri: str, cache: Path) -> Path:
    done = cache / ".complete"
    if not done.exists():
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial)))
        shutil.rmtree(cache, ignore_errors=True)
        local.rename(cache) if local != partial else partial.rename(cache)
        shutil.rmtree(partial, ignore_errors=True)
        done.write_text(uri)  # names what was downloaded: logging this folder again reuses that artifact
    return cache


def lineage(spec: str, study: str | None = None) -> dict:
    """What a checkpoint descends from, read from its registered version's tags: pruning
    ``method`` (``none`` for an unpruned model), ``sparsity``, ``granularity``, training ``step``
    and the ``source_stage`` that made it, a post-trained model's ``domain`` and ``start``; ``study``
    is the one given, else the checkpoint's own (``foundation`` for a model outside the registry)."""
    version = checkpoint_version(spec) if is_tracking_uri(spec) else None
    tags = version.tags if version else {}
    return {"study": study or tags.get("study", "foundation"), "method": tags.get("method", "none"),
            "sparsity": float(tags.get("sparsity", 0.0)), "step": int(tags.get("step", 0)),
            "granularity": tags.get("granularity", "neuron"), "source_stage": tags.get("stage", "none"),
            "domain": tags.get("domain", "none"), "start": tags.get("start", "none")}
