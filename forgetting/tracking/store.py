"""Where runs go: the embedded SQLite store by default, ``MLFLOW_TRACKING_URI`` when set.

MLflow's own default depends on the working directory, so the embedded store is always an
absolute ``sqlite:////…`` path inside the project's working folder (``FORGETTING_HOME``,
default ``<project>/.forgetting``) with an absolute artifact location per experiment.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

from forgetting.errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Offline unless the user says otherwise: HF_HUB_OFFLINE=0 alone takes data sets and models online too.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])


def home() -> Path:
    """The project's working folder for the embedded store, caches and reports."""
    path = Path(os.environ.get("FORGETTING_HOME", PROJECT_ROOT / ".forgetting")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri()


def is_embedded(uri: str | None = None) -> bool:
    return (uri or tracking_uri()) == embedded_uri()


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail with one line when a remote tracking server does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
    raise UsageError(f"MLFLOW_TRACKING_URI={uri} is unreachable ({reason}); start the server or unset it")


@lru_cache(maxsize=None)
def configure() -> str:
    """Point MLflow at the store (once per process) and return its URI."""
    import mlflow

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # children (mlflow run, workers) use the same store
    return uri


def experiment_id(study: str) -> str:
    """The experiment of a study, created with an absolute artifact location in the embedded store."""
    import mlflow

    configure()
    from forgetting.tracking.studies import check_study

    check_study(study)
    existing = mlflow.get_experiment_by_name(study)
    if existing is not None:
        return existing.experiment_id
    location = (home() / "artifacts" / study).as_uri() if is_embedded() else None
    return mlflow.create_experiment(study, artifact_location=location)
