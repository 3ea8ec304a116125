"""Checkpoints in the tracking store: log a Hugging Face directory, register it, resolve it back.

A checkpoint is logged with ``log_artifacts`` and registered with
``MlflowClient.create_model_version(source="runs:/<id>/<path>")``: MLflow 3's
``register_model("runs:/…")`` needs a LoggedModel, and ``from_pretrained`` on the downloaded
directory is the most robust way back.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlparse
from typing import Mapping

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from forgetting.errors import UsageError
from forgetting.tracking.store import configure, home

CHECKPOINT_TAG = "forgetting.checkpoint"
VERSION_KEY_TAG = "forgetting.version_key"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
RUN_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})/(?P<path>.+)$")


def is_tracking_uri(spec: str) -> bool:
    return bool(MODEL_URI.match(spec) or RUN_URI.match(spec) or RUN_ID.match(spec))


def log_checkpoint(directory: str | Path, artifact_path: str = "checkpoint", *,
                   register_as: str | None = None, alias: str | None = None,
                   tags: Mapping[str, object] | None = None,
                   version_key: str | None = None) -> ModelVersion | None:
    """Log ``directory`` to the active run and, with ``register_as``, register it as a model version.

    Registration is idempotent: per (run, artifact path), and per ``version_key`` across runs, so a
    resumed stage that reaches a checkpoint its killed attempt already registered gets that
    version back (nothing logged again) instead of a duplicate.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_checkpoint needs an active MLflow run")
    client = mlflow.MlflowClient()
    if register_as is not None and version_key is not None:
        if found := version_by_key(register_as, version_key):
            return _with_alias(client, found, alias)
    mlflow.log_artifacts(str(directory), artifact_path)
    mlflow.set_tag(CHECKPOINT_TAG, artifact_path)
    if register_as is None:
        return None
    source = f"runs:/{run.info.run_id}/{artifact_path}"
    tags = {k: str(v) for k, v in (tags or {}).items()} | {"parent_run": run.info.run_id}
    if version_key is not None:
        tags[VERSION_KEY_TAG] = version_key
    try:
        client.create_registered_model(register_as)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = [v for v in client.search_model_versions(f"name = '{register_as}' and run_id = '{run.info.run_id}'")
                if v.source == source]
    version = existing[0] if existing else client.create_model_version(
        register_as, source=source, run_id=run.info.run_id, tags=tags)
    return _with_alias(client, version, alias)


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
    """The registered version behind ``models:/…`` (or a ``runs:/`` URI that one was registered from)."""
    client = mlflow.MlflowClient()
    if match := MODEL_URI.match(spec):
        try:
            return (client.get_model_version_by_alias(match["name"], match["alias"]) if match["alias"]
                    else client.get_model_version(match["name"], match["version"]))
        except MlflowException:
            raise UsageError(f"model={spec!r} is not in the model registry") from None
    if match := RUN_URI.match(spec):
        found = [v for v in client.search_model_versions(f"run_id = '{match['run_id']}'") if v.source == spec]
        return found[0] if found else None
    return None


def resolve_checkpoint(spec: str) -> Path:
    """A local directory for ``models:/name@alias``, ``models:/name/version``, ``runs:/id/path`` or a run ID.

    Downloads go to ``<home>/downloads`` keyed on the immutable version or run, once.
    """
    configure()
    client = mlflow.MlflowClient()
    if MODEL_URI.match(spec):
        found = checkpoint_version(spec)
        source = RUN_URI.match(found.source)
        if source and (local := _local_artifacts(client.get_run(source["run_id"]).info.artifact_uri,
                                                 source["path"])):
            return local
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
        done.touch()
    return cache
