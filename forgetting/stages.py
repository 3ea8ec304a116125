"""Stages as the entry points run them: validate, resolve inputs, run (or reuse) one MLflow run."""
from __future__ import annotations

import dataclasses
import os

import mlflow

from forgetting.evaluation.accuracy import AccuracyConfig, evaluate_accuracy
from forgetting.models import resolve_model
from forgetting.tracking import configure, experiment_id, run_stage

MAIN_PRESETS = {
    # task -> (limit, max_new_tokens); 0 = the whole split. "smoke" checks the plumbing in a minute.
    "smoke": {"arc_easy": (8, 1), "counterfact": (8, 1), "gsm8k": (2, 16)},
    "quick": {"arc_easy": (400, 1), "arc_challenge": (200, 1), "counterfact": (196, 1), "gsm8k": (32, 256)},
    "full": {"arc_easy": (0, 1), "arc_challenge": (0, 1), "counterfact": (0, 1), "gsm8k": (0, 256),
             "naturalqs": (0, 64)},
}


def cached_model_stage(study: str, entry_point: str, config, body):
    """Validate ``config`` and resolve its model before any run exists, then run ``body(config)``
    in a cached stage run whose upstream is the resolved model. Returns ``(run, reused)``."""
    configure()
    config.validate()
    location = resolve_model(config.model)
    return run_stage(study, entry_point, dataclasses.asdict(config), lambda _: body(config),
                     upstream={"model": location})


def evaluate_stage(config: AccuracyConfig, study: str = "foundation"):
    """Score the model on one task in a cached stage run."""
    run, reused = cached_model_stage(study, "evaluate", config, evaluate_accuracy)
    metrics = run.data.metrics
    print(f"evaluate {config.task} [{config.split}, {int(metrics['n_rows'])} rows] {config.model}: "
          f"accuracy={metrics['accuracy']:.4f}  run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


def prune_stage(config):
    """Prune in a cached stage run of the unlearning study."""
    from forgetting.pruning.stage import prune_model

    run, reused = cached_model_stage("unlearning", "prune", config, prune_model)
    metrics = run.data.metrics
    print(f"prune {config.method} {config.sparsity:.0%} {config.model}: parameters x{metrics['parameter_ratio']:.3f}, "
          f"held-out Python loss {metrics['heldout_loss_before']:.3f} -> {metrics['heldout_loss_after']:.3f}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


def main_stage(model: str, preset: str) -> list:
    """The embedded default job: the accuracy suite of ``model`` over a few real tasks."""
    from forgetting.errors import check_choice

    check_choice("preset", preset, tuple(MAIN_PRESETS))
    configs = [AccuracyConfig(model=model, task=task, limit=limit, max_new_tokens=budget)
               for task, (limit, budget) in MAIN_PRESETS[preset].items()]
    configure()
    for config in configs:
        config.validate()
    resolve_model(model)
    launcher = os.environ.get("MLFLOW_RUN_ID")
    with mlflow.start_run(run_id=launcher, experiment_id=None if launcher else experiment_id("foundation"),
                          run_name=None if launcher else f"main-{preset}"):
        mlflow.log_params({"model": model, "preset": preset})
        runs = [evaluate_stage(config) for config in configs]
        mlflow.log_metrics({f"accuracy_{c.task}": r.data.metrics["accuracy"] for c, r in zip(configs, runs)})
    return runs
