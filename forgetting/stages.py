"""Stages as the entry points run them: validate, resolve inputs, run (or reuse) one MLflow run."""
from __future__ import annotations

import dataclasses

import mlflow

from forgetting.evaluation.suites import EvaluateConfig, run_suite
from forgetting.models import resolve_model
from forgetting.tracking import configure, run_stage

LINEAGE_KEYS = ("method", "sparsity", "step")


def cached_model_stage(study: str | None, entry_point: str, config, body, params: dict | None = None,
                       lineage_keys: tuple[str, ...] = ()):
    """Validate ``config`` and resolve its model before any run exists, then run ``body(run, origin)``
    in a cached stage run whose upstream is the resolved model. ``origin`` is the model's
    ``lineage``; the keys in ``lineage_keys`` join the run's parameters, and a ``study`` of None
    files the run under the model's own study. Returns ``(run, reused)``."""
    configure()
    config.validate()
    location = resolve_model(config.model)
    origin = lineage(config.model, study)
    params = (params or dataclasses.asdict(config)) | {key: origin[key] for key in lineage_keys}
    return run_stage(origin["study"], entry_point, params, lambda run: body(run, origin),
                     upstream={"model": location})


def lineage(spec: str, study: str | None = None) -> dict:
    """What a checkpoint descends from, read from its registered version's tags: pruning
    ``method`` (``none`` for an unpruned model), ``sparsity`` and training ``step``; ``study`` is
    the one given, else the checkpoint's own (``foundation`` for a model outside the registry)."""
    from forgetting.tracking.checkpoints import checkpoint_version, is_tracking_uri

    version = checkpoint_version(spec) if is_tracking_uri(spec) else None
    tags = version.tags if version else {}
    return {"study": study or tags.get("study", "foundation"), "method": tags.get("method", "none"),
            "sparsity": float(tags.get("sparsity", 0.0)), "step": int(tags.get("step", 0))}


def evaluate_stage(config: EvaluateConfig, study: str | None = None):
    """Run one evaluation suite on the model in a cached stage run, filed under the study of the
    checkpoint (with its method, sparsity and step) so that study's analyze finds it."""
    run, reused = cached_model_stage(study, "evaluate", config, lambda *_: run_suite(config), config.params(),
                                     LINEAGE_KEYS)
    metrics = run.data.metrics
    summary = {"accuracy": lambda: f"{config.task} [{config.split}, {int(metrics['n_rows'])} rows]: "
                                   f"accuracy={metrics['accuracy']:.4f}",
               "attacks": lambda: f"{config.attack} on {int(metrics['n_behaviours'])} {config.behaviours} behaviours: "
                                  f"ASR {metrics['asr']:.2f} (plain requests {metrics['asr_plain']:.2f}), target loss "
                                  f"{metrics['loss_before']:.3f} -> {metrics['loss_after']:.3f}",
               "probes": lambda: f"fact probes: best selectivity {metrics['best_selectivity']:.3f} at layer "
                                 f"{int(metrics['best_layer'])} (accuracy {metrics['best_layer_accuracy']:.3f})"}
    print(f"evaluate {summary[config.suite]()}  {config.model}  run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


def prune_stage(config):
    """Prune in a cached stage run of the unlearning study."""
    from forgetting.pruning.stage import prune_model

    run, reused = cached_model_stage("unlearning", "prune", config, lambda *_: prune_model(config))
    metrics = run.data.metrics
    print(f"prune {config.method} {config.sparsity:.0%} {config.model}: parameters x{metrics['parameter_ratio']:.3f}, "
          f"held-out Python loss {metrics['heldout_loss_before']:.3f} -> {metrics['heldout_loss_after']:.3f}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


def train_stage(config, study: str = "unlearning"):
    """Continued training on Python code in a cached, resumable stage run."""
    from forgetting.training.stage import train_model

    def body(run, origin):
        return train_model(config, {k: v for k, v in origin.items() if k != "step"}, run)

    run, reused = cached_model_stage(study, "train", config, body, lineage_keys=("method", "sparsity"))
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "heldout_loss")
    curve = " -> ".join(f"{m.value:.3f}" for m in sorted(history, key=lambda m: m.step))
    print(f"train {config.model} {config.steps} steps: held-out Python loss {curve}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


def finetune_stage(config, study: str = "unlearning"):
    """Baseline accuracy and an Optuna learning-rate sweep in a cached stage run."""
    from forgetting.training.finetune_stage import finetune_sweep

    run, reused = cached_model_stage(study, "finetune", config, lambda run, _: finetune_sweep(config, run),
                                     config.params(), LINEAGE_KEYS)
    metrics = run.data.metrics
    print(f"finetune {config.task} {config.model}: accuracy {metrics['baseline_acc']:.4f} -> best "
          f"{metrics['best_acc']:.4f} at lr {metrics['best_lr']:g}  run {run.info.run_id}"
          f"{' (reused)' if reused else ''}")
    return run


def attribute_stage(config):
    """Training-data attribution in a cached stage run of the attribution study."""
    from forgetting.attribution.stage import attribute

    run, reused = cached_model_stage("attribution", "attribute", config, lambda *_: attribute(config))
    metrics = run.data.metrics
    ranks = ", ".join(f"{m} rank {int(metrics[f'rank_{m}'])}" for m in config.methods() if f"rank_{m}" in metrics)
    print(f"attribute {config.method} {config.model}: {ranks or 'no responsible source given'}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run
