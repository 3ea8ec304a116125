"""The unlearning study out of the tracking store, as pandas frames.

Only FINISHED stage runs count; when a key was run several times (reruns with other settings)
the run that started last wins. Runs are matched on the ``forgetting.entry_point`` tag, so the
analyze runs and the nested Optuna trials (no such tag) never count as stage results.
"""
from __future__ import annotations

from typing import Iterable

import mlflow
import pandas as pd
from mlflow.entities import Run

FINETUNE_COLUMNS = ["method", "sparsity", "step", "task", "baseline_acc", "best_acc", "best_lr", "run_id"]
CURVE_COLUMNS = ["method", "sparsity", "step", "heldout_loss", "run_id"]
CHECKPOINT_COLUMNS = ["name", "version", "stage", "method", "sparsity", "step", "run_id"]
TRIAL_COLUMNS = ["parent_run_id", "trial", "lr", "accuracy", "run_id"]
ATTACK_COLUMNS = ["method", "sparsity", "step", "attack", "asr", "asr_plain", "task", "accuracy", "model", "run_id"]


def stage_runs(experiment_ids: Iterable[str], entry_point: str, study: str | None = None) -> list[Run]:
    """FINISHED runs of one stage, newest first."""
    query = f"tags.`forgetting.entry_point` = '{entry_point}' and attributes.status = 'FINISHED'"
    if study:
        query += f" and tags.`forgetting.study` = '{study}'"
    return mlflow.search_runs(sorted(set(experiment_ids)), query, order_by=["attributes.start_time DESC"],
                              output_format="list")


def finetune_results(experiment_ids: Iterable[str], study: str | None = None) -> pd.DataFrame:
    """One row per (method, sparsity, step, task): accuracy before fine-tuning and the best of the sweep."""
    rows = [{"method": run.data.params.get("method"), "sparsity": run.data.params.get("sparsity"),
             "step": run.data.params.get("step"), "task": run.data.params.get("task"),
             "baseline_acc": run.data.metrics.get("baseline_acc"), "best_acc": run.data.metrics.get("best_acc"),
             "best_lr": run.data.metrics.get("best_lr"), "run_id": run.info.run_id,
             "start_time": run.info.start_time}
            for run in stage_runs(experiment_ids, "finetune", study)]
    return _newest(rows, ["method", "sparsity", "step", "task"], FINETUNE_COLUMNS)


def training_curves(experiment_ids: Iterable[str], study: str | None = None) -> pd.DataFrame:
    """Held-out Python loss against training step, from the newest train run of each (method, sparsity)."""
    runs = [{"method": run.data.params.get("method"), "sparsity": run.data.params.get("sparsity"),
             "run_id": run.info.run_id, "start_time": run.info.start_time}
            for run in stage_runs(experiment_ids, "train", study)]
    latest = _newest(runs, ["method", "sparsity"], ["method", "sparsity", "run_id"])
    client = mlflow.MlflowClient()
    rows = []
    for method, sparsity, run_id in latest.itertuples(index=False):
        last_per_step = {}  # a resumed run may log a step twice: the later value stands
        for point in sorted(client.get_metric_history(run_id, "heldout_loss"), key=lambda m: m.timestamp):
            last_per_step[point.step] = point.value
        rows += [{"method": method, "sparsity": sparsity, "step": step, "heldout_loss": value, "run_id": run_id}
                 for step, value in sorted(last_per_step.items())]
    return _frame(rows, CURVE_COLUMNS)


def checkpoint_versions(study: str) -> pd.DataFrame:
    """Registered checkpoints of the study (prune and train stages) with their step."""
    client = mlflow.MlflowClient()
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"tags.study = '{study}'", page_token=token)
        versions += page
        token = page.token
        if not token:
            break
    rows = [{"name": v.name, "version": int(v.version), "stage": v.tags.get("stage"), "method": v.tags.get("method"),
             "sparsity": v.tags.get("sparsity"), "step": v.tags.get("step"),
             "run_id": v.tags.get("parent_run") or v.run_id} for v in versions]
    return _frame(rows, CHECKPOINT_COLUMNS).sort_values(["name", "version"], ignore_index=True)


def trials(experiment_ids: Iterable[str], parent_run_ids: Iterable[str]) -> pd.DataFrame:
    """The learning-rate trials (nested runs) of the given fine-tune runs."""
    parents = set(parent_run_ids)
    found = mlflow.search_runs(sorted(set(experiment_ids)),
                               "tags.`forgetting.trial` LIKE '%' and attributes.status = 'FINISHED'",
                               output_format="list") if parents else []
    rows = [{"parent_run_id": run.data.tags.get("mlflow.parentRunId"), "trial": run.data.tags.get("forgetting.trial"),
             "lr": run.data.params.get("lr"), "accuracy": run.data.metrics.get("accuracy"),
             "run_id": run.info.run_id} for run in found if run.data.tags.get("mlflow.parentRunId") in parents]
    frame = _frame(rows, TRIAL_COLUMNS)
    frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce").astype("Int64")
    frame["lr"] = pd.to_numeric(frame["lr"], errors="coerce")
    return frame.sort_values(["parent_run_id", "trial"], ignore_index=True)


def attack_results(study: str) -> pd.DataFrame:
    """Attack success per checkpoint and attack (the newest attacks run of each), next to every task
    accuracy the same checkpoint was evaluated on (``task``/``accuracy`` empty where none was).
    Evaluate runs are filed under their checkpoint's study, in whichever experiment launched them."""
    query = (f"tags.`forgetting.entry_point` = 'evaluate' and tags.`forgetting.study` = '{study}' "
             "and attributes.status = 'FINISHED'")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=query,
                              order_by=["attributes.start_time DESC"], output_format="list")
    accuracy: dict[str, dict[str, float]] = {}
    for run in runs:
        if "accuracy" in run.data.metrics and run.data.params.get("suite", "accuracy") == "accuracy":
            accuracy.setdefault(run.data.params.get("upstream_model"), {}).setdefault(
                run.data.params.get("task"), run.data.metrics["accuracy"])
    rows = []
    for run in runs:
        if "asr" not in run.data.metrics:
            continue
        params, model = run.data.params, run.data.params.get("upstream_model")
        base = {"method": params.get("method"), "sparsity": params.get("sparsity"), "step": params.get("step"),
                "attack": params.get("attack"), "asr": run.data.metrics["asr"],
                "asr_plain": run.data.metrics.get("asr_plain"), "model": model, "run_id": run.info.run_id,
                "start_time": run.info.start_time}
        tasks = accuracy.get(model) or {None: None}
        rows += [base | {"task": task, "accuracy": value} for task, value in tasks.items()]
    frame = _frame(rows, [*ATTACK_COLUMNS, "start_time"])
    frame = frame.drop_duplicates(["model", "attack", "task"])  # runs come newest first
    return frame.sort_values(["attack", "method", "sparsity", "step"], ignore_index=True)[ATTACK_COLUMNS]


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame; sparsity and step (strings in MLflow) as numbers; rows without a key value dropped."""
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(rows[0] if rows else [])])))
    for column in ("sparsity", "step"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=[c for c in ("method", "sparsity", "step", "task") if c in frame])
    if "step" in frame:
        frame["step"] = frame["step"].astype(int)
    return frame.reset_index(drop=True)


def _newest(rows: list[dict], key: list[str], columns: list[str]) -> pd.DataFrame:
    frame = _frame(rows, [*columns, "start_time"])
    frame = frame.sort_values("start_time", ascending=False, kind="stable").drop_duplicates(key)
    return frame.sort_values(key, ignore_index=True)[columns]
