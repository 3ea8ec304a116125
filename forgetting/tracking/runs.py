"""Stage runs: one MLflow run per stage, reused when an identical stage already FINISHED.

The cache key is the entry point, its parameters, the run IDs of its upstream stages and a
digest of the project's code, so a changed upstream or changed code invalidates what follows
(MLflow's multistep-workflow idea keyed on upstream run IDs). A stage started by ``mlflow run -e
<stage>`` (``MLFLOW_RUN_ID`` set, no active run) makes the launcher run its own stage run; a stage
called inside another run (the ``main`` grid) always gets its own run nested under that one, never
the launcher's: ``mlflow.start_run`` would otherwise resume the run ``MLFLOW_RUN_ID`` names.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from typing import Any, Callable, Mapping

import mlflow
from mlflow.entities import Run

from forgetting.tracking.store import PROJECT_ROOT, configure, experiment_id

TAG = "forgetting."


@lru_cache(maxsize=None)
def code_version() -> str:
    """Digest of the library and entry-point sources (works without git)."""
    digest = hashlib.sha256()
    for folder in ("forgetting", "entrypoints"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# Where a stage runs is not what it computes: these parameters stay out of the cache key, and the
# precision they resolve to (``precision=auto`` is fp32 on a CPU, bf16 autocast on a GPU) goes in.
PLACEMENT_PARAMS = ("device", "gpus")


def cache_key(entry_point: str, params: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    from forgetting.device import current

    payload = {"entry_point": entry_point,
               "params": {k: str(v) for k, v in params.items() if k not in PLACEMENT_PARAMS},
               "upstream": dict(upstream), "code": code_version(), "compute_precision": current().precision}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def find_runs(key: str, experiment_ids: list[str], status: str | None = None) -> list[Run]:
    query = f"tags.`{TAG}cache_key` = '{key}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return mlflow.search_runs(experiment_ids, query, order_by=["attributes.start_time DESC"],
                              output_format="list")


def run_stage(study: str, entry_point: str, params: Mapping[str, Any],
              body: Callable[[Run], None], upstream: Mapping[str, str] | None = None,
              ) -> tuple[Run, bool]:
    """Run ``body`` inside the stage's MLflow run, or return the FINISHED run it would repeat.

    Returns ``(run, reused)``. Parameters are logged before ``body`` starts; ``body`` logs
    metrics and artifacts to the active run.
    """
    from forgetting.device import current, usage_metrics

    configure()
    upstream = dict(upstream or {})
    key = cache_key(entry_point, params, upstream)
    experiments = sorted({experiment_id(study), *_launcher_experiment()})
    finished = find_runs(key, experiments, "FINISHED")
    nested = mlflow.active_run() is not None
    launcher_id = None if nested else os.environ.get("MLFLOW_RUN_ID")
    if finished:
        if launcher_id:
            mlflow.MlflowClient().set_tag(launcher_id, f"{TAG}reused_run_id", finished[0].info.run_id)
        return finished[0], True

    tags = {f"{TAG}study": study, f"{TAG}entry_point": entry_point, f"{TAG}cache_key": key,
            f"{TAG}code_version": code_version(),
            **{f"{TAG}upstream.{name}": run_id for name, run_id in upstream.items()}}
    # MLflow consumes MLFLOW_RUN_ID only when it reads it itself; left set, a nested stage (or an
    # Optuna trial in the body) would resume the launcher run instead of starting its own.
    os.environ.pop("MLFLOW_RUN_ID", None)
    # A launcher run in another study's experiment (mlflow run's --experiment-name) stays the launcher.
    elsewhere = launcher_id and mlflow.get_run(launcher_id).info.experiment_id != experiment_id(study)
    adopted = None if elsewhere else launcher_id
    with mlflow.start_run(run_id=adopted, experiment_id=None if adopted else experiment_id(study),
                          run_name=_run_name(entry_point, params), nested=nested, tags=tags) as run:
        if elsewhere:
            mlflow.MlflowClient().set_tag(launcher_id, f"{TAG}stage_run_id", run.info.run_id)
        supersede_attempts(run.info.run_id, key, experiments)
        log_unlogged_params(run.info.run_id, {**params, **{f"upstream_{k}": v for k, v in upstream.items()}})
        mlflow.set_tags({f"{TAG}{name}": value for name, value in current().tags().items()})
        body(run)
        logged = mlflow.get_run(run.info.run_id).data.metrics  # a data-parallel body logs its busiest process
        mlflow.log_metrics({k: v for k, v in usage_metrics().items() if k not in logged})
    return mlflow.get_run(run.info.run_id), False


def supersede_attempts(run_id: str, key: str, experiment_ids: list[str]) -> None:
    """The earlier attempts of this stage (same cache key) that did not finish: the newest is this run's
    ``previous_attempt``, and those still RUNNING become KILLED (a killed process never ends its run, so
    the UI would show it running for ever)."""
    client = mlflow.MlflowClient()
    earlier = [r for r in find_runs(key, experiment_ids) if r.info.run_id != run_id and r.info.status != "FINISHED"]
    if earlier:
        client.set_tag(run_id, f"{TAG}previous_attempt", earlier[0].info.run_id)
    for attempt in earlier:
        if attempt.info.status == "RUNNING":
            client.set_terminated(attempt.info.run_id, "KILLED")


def active_cache_key() -> str:
    """The cache key of the active stage run: a stable name for what it registers or studies."""
    return mlflow.get_run(mlflow.active_run().info.run_id).data.tags[f"{TAG}cache_key"]


def log_unlogged_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log the parameters the run does not have yet. ``mlflow run`` logs the MLproject parameters
    itself, shell-quoted (an empty string as ``''``), and MLflow refuses to change a logged value."""
    logged = mlflow.get_run(run_id).data.params
    mlflow.log_params({key: value for key, value in params.items() if key not in logged})


def _launcher_experiment() -> list[str]:
    launcher = os.environ.get("MLFLOW_EXPERIMENT_ID")
    return [launcher] if launcher else []


def _run_name(entry_point: str, params: Mapping[str, Any]) -> str:
    shown = [f"{v}" for k, v in params.items() if k in ("model", "task", "method", "sparsity", "domain")]
    return "-".join([entry_point, *shown])[:120]


def previous_attempt(run_id: str) -> Run | None:
    """The newest earlier run of the stage run ``run_id`` (same cache key) that did not finish, killed or
    failed, as ``run_stage`` found it (``supersede_attempts``)."""
    previous = mlflow.get_run(run_id).data.tags.get(f"{TAG}previous_attempt")
    return mlflow.get_run(previous) if previous else None


def continue_history(previous: Run, run: Run, before_step: Mapping[str, int]) -> None:
    """Copy ``previous``'s history of each metric below its ``before_step`` into ``run``, so the resumed
    run holds the whole curve (``run_stage`` has marked ``previous`` KILLED if it was left RUNNING)."""
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    history = [Metric(m.key, m.value, m.timestamp, m.step) for key, bound in before_step.items()
               for m in client.get_metric_history(previous.info.run_id, key) if m.step < bound]
    for start in range(0, len(history), 1000):
        client.log_batch(run.info.run_id, metrics=history[start:start + 1000])
    client.set_tag(run.info.run_id, f"{TAG}resumed_from", previous.info.run_id)


def logged_table(run_id: str, artifact_file: str):
    """A table ``mlflow.log_table`` wrote, as a DataFrame, from any experiment (``mlflow.load_table``
    only searches the active one)."""
    import json

    import pandas as pd

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_file)
    table = json.loads(open(path, encoding="utf-8").read())
    return pd.DataFrame(table["data"], columns=table["columns"])
