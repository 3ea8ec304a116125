"""Losing the tracking server in the middle of a stage.

MLflow's HTTP client already retries every request with exponential backoff: up to
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (default 7) retries, the n-th waiting
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR * 2**(n-1)`` seconds (default factor 2, at most 120 s, plus up
to ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` s), about four minutes in all; a server back within that
time loses nothing. ``on_server_loss`` handles what comes after: once the retries are spent it
stops the stage at once with one message naming the server, the local checkpoint and the command
that resumes, instead of waiting through the retries again for each run it would end and
printing MLflow's traceback. Nothing is registered half-way: a checkpoint's version is created
only after its artifacts were uploaded, and a resumed stage registers each step once.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from forgetting.errors import TrackingServerLost


def is_connection_loss(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a failed connection to an HTTP tracking server."""
    import requests
    import urllib3

    lost = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            urllib3.exceptions.MaxRetryError, urllib3.exceptions.NewConnectionError, ConnectionError)
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, lost):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def on_server_loss(local_checkpoint: str | Path, resume_command: str) -> Iterator[None]:
    """Turn a lost tracking server inside the block into ``TrackingServerLost`` with resume instructions.

    Other errors pass through unchanged. Active runs are ended without further retries (the
    server keeps them RUNNING; the resumed stage marks its killed attempt KILLED)."""
    from forgetting.tracking.store import tracking_uri

    try:
        yield
    except Exception as error:
        if not is_connection_loss(error):
            raise
        _forget_active_runs()
        uri = tracking_uri()
        raise TrackingServerLost(
            f"tracking server {uri} lost: its requests still failed after MLflow's retries "
            f"(MLFLOW_HTTP_REQUEST_MAX_RETRIES={os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '7')}). "
            f"The last checkpoint is kept on local disk in {local_checkpoint}. Once the server answers "
            f"again, resume from it with the same command:\n  MLFLOW_TRACKING_URI={uri} {resume_command}"
        ) from error


def _forget_active_runs() -> None:
    """End every active run locally, failing each server call at once rather than after the retries."""
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    try:
        while mlflow.active_run() is not None:
            with contextlib.suppress(Exception):
                mlflow.end_run("FAILED")  # pops the run first, then fails to reach the server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
