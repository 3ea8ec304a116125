"""Stages as the entry points run them: validate, resolve inputs, run (or reuse) one MLflow run.

Each stage resolves a model spec once (``each_spec_resolved_once``): its checks, its cache key and its
body read the same checkpoint, however often they ask."""
from __future__ import annotations

import dataclasses

import mlflow

from forgetting.evaluation.suites import EvaluateConfig, run_suite, summary_line
from forgetting.models import resolve_model
from forgetting.tracking import configure, run_stage
from forgetting.tracking.checkpoints import lineage
from forgetting.tracking.pinned import each_spec_resolved_once
from forgetting.tracking.studies import study_of

LINEAGE_KEYS = ("method", "sparsity", "step", "granularity", "source_stage", "domain", "start")


def cached_model_stage(study: str | None, entry_point: str, config, body, params: dict | None = None,
                       lineage_keys: tuple[str, ...] = ()):
    """Validate ``config`` and resolve its model before any run exists, then run ``body(run, origin)``
    in a cached stage run whose upstream is the resolved model, with the weights of each local model
    directory among the parameters (``local_weights``). ``origin`` is the model's ``lineage``; the
    keys in ``lineage_keys`` join the run's parameters, and a ``study`` of None files the run under
    the study of the entry point and config (``study_of``: for an evaluation, the model's own).
    Returns ``(run, reused)``."""
    configure()
    config.validate()
    select_device(config)
    location = resolve_model(config.model)
    origin = lineage(config.model, study or study_of(entry_point, config))
    params = (params or dataclasses.asdict(config)) | {key: origin[key] for key in lineage_keys}
    return run_stage(origin["study"], entry_point, params, lambda run: body(run, origin),
                     upstream={"model": location, **local_weights(params)})


def local_weights(params: dict) -> dict[str, str]:
    """``<name>_weights`` for each parameter naming a local checkpoint directory (the ``model``, an
    evaluation's ``reference``, a distillation's ``teacher`` and ``student``): a fingerprint of its
    weight files, so other weights saved into the same folder make a new run, not a reuse of the old."""
    from forgetting.models.fingerprint import local_weights_fingerprint

    return {f"{name}_weights": fingerprint for name, value in params.items()
            if (fingerprint := local_weights_fingerprint(value))}


def select_device(config) -> None:
    """The stage's device policy from its ``device``, ``precision`` and ``gpus`` (checked before any run)."""
    from forgetting import device

    device.select(getattr(config, "device", "auto"), getattr(config, "precision", "auto"), getattr(config, "gpus", 1))


@each_spec_resolved_once
def evaluate_stage(config: EvaluateConfig, study: str | None = None):
    """Run one evaluation suite on the model in a cached stage run, filed under the study of the
    checkpoint (with its method, sparsity and step) so that study's analyze finds it."""
    run, reused = cached_model_stage(study, "evaluate", config, lambda *_: run_suite(config), config.params(),
                                     LINEAGE_KEYS)
    print(f"evaluate {summary_line(config, run.data.metrics)}  {config.model}  run {run.info.run_id}"
          f"{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def prune_stage(config):
    """Prune in a cached stage run of the unlearning study (the selective study for a classifier)."""
    from forgetting.pruning.selective import prune_classifier
    from forgetting.pruning.stage import prune_model

    if config.classifier:
        run, reused = cached_model_stage(None, "prune", config, lambda *_: prune_classifier(config),
                                         config.params())
        metrics = run.data.metrics
        recovered = (f", recovered {metrics['recovered_accuracy']:.4f} after {config.recovery_steps} steps"
                     if "recovered_accuracy" in metrics else "")
        print(f"prune {config.method} {config.granularity}s {config.sparsity:.0%} {config.model}: {config.task} "
              f"accuracy {metrics['before_accuracy']:.4f} -> {metrics['pruned_accuracy']:.4f}{recovered}  "
              f"run {run.info.run_id}{' (reused)' if reused else ''}")
        return run
    run, reused = cached_model_stage(None, "prune", config, lambda *_: prune_model(config), config.params())
    metrics = run.data.metrics
    print(f"prune {config.method} {config.sparsity:.0%} {config.model}: parameters x{metrics['parameter_ratio']:.3f}, "
          f"held-out Python loss {metrics['heldout_loss_before']:.3f} -> {metrics['heldout_loss_after']:.3f}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def train_stage(config, study: str | None = None):
    """Continued training on Python code in a cached, resumable stage run."""
    from forgetting.training.stage import train_model

    run, reused = cached_model_stage(study, "train", config, lambda run, origin: train_model(config, origin, run),
                                     lineage_keys=("method", "sparsity"))
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "heldout_loss")
    curve = " -> ".join(f"{m.value:.3f}" for m in sorted(history, key=lambda m: m.step))
    print(f"train {config.model} {config.steps} steps: held-out Python loss {curve}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def finetune_stage(config, study: str | None = None):
    """Baseline accuracy and an Optuna learning-rate sweep in a cached stage run (of the unlearning
    study, or the selective study for a classifier)."""
    from forgetting.training.finetune_stage import finetune_sweep

    run, reused = cached_model_stage(study, "finetune", config,
                                     lambda run, _: finetune_sweep(config, run), config.params(), LINEAGE_KEYS)
    metrics = run.data.metrics
    print(f"finetune {config.task} {config.model}: accuracy {metrics['baseline_acc']:.4f} -> best "
          f"{metrics['best_acc']:.4f} at lr {metrics['best_lr']:g}  run {run.info.run_id}"
          f"{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def attribute_stage(config):
    """Training-data attribution in a cached stage run of the attribution study."""
    from forgetting.attribution.stage import GROUND_TRUTH, attribute

    run, reused = cached_model_stage(None, "attribute", config, lambda *_: attribute(config), config.params())
    metrics = run.data.metrics
    methods = config.methods() + [GROUND_TRUTH]
    ranks = ", ".join(f"{m} rank {int(metrics[f'rank_{m}'])}" for m in methods if f"rank_{m}" in metrics)
    print(f"attribute {config.method} {config.model}: {ranks or 'no responsible source given'}  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def distill_stage(config):
    """Knowledge distillation of a classifier into a smaller student in a cached stage run."""
    from forgetting.training.distill_stage import distill_student

    run, reused = cached_model_stage(None, "distill", config, lambda *_: distill_student(config))
    metrics = run.data.metrics
    print(f"distill {config.teacher} -> {config.student}: {config.task} accuracy teacher "
          f"{metrics['teacher_accuracy']:.4f}, student {metrics['student_before_accuracy']:.4f} -> "
          f"{metrics['student_accuracy']:.4f} with x{metrics['parameter_ratio']:.3f} parameters  "
          f"run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def collect_stage(config):
    """Trajectories of a model in a domain's environment, with SFT and preference exports."""
    from forgetting.posttrain.collect import collect

    run, reused = cached_model_stage(None, "collect", config, lambda *_: collect(config))
    metrics = run.data.metrics
    print(f"collect {config.domain} {config.model}: {int(metrics['n_trajectories'])} trajectories, mean reward "
          f"{metrics['mean_reward']:.3f}, {int(metrics['n_sft'])} correct, {int(metrics['n_pairs'])} pairs, "
          f"{metrics['tokens_per_second']:.1f} tok/s  run {run.info.run_id}{' (reused)' if reused else ''}")
    return run


@each_spec_resolved_once
def posttrain_stage(config):
    """One post-training method on one domain, registered with its method, domain, start and scale.
    On the cluster backend, ``launch=dry-run`` prints the verl job and ``launch=sbatch`` submits it;
    neither opens a run here (the submitted job runs this stage with ``launch=here``)."""
    from forgetting.posttrain import cluster
    from forgetting.posttrain.stage import posttrain

    if config.backend == "cluster" and config.launch != "here":
        configure()
        config.validate()
        print(cluster.dry_run(config) if config.launch == "dry-run" else
              f"posttrain {config.method} {config.domain}: submitted Slurm job {cluster.submit(config)}")
        return None

    run, reused = cached_model_stage(None, "posttrain", config, lambda *_: posttrain(config))
    metrics = run.data.metrics
    print(f"posttrain {config.method} {config.domain} from {config.start} {config.model}: objective "
          f"{metrics['objective_start']:.4f} -> {metrics['objective_end']:.4f}  run {run.info.run_id}"
          f"{' (reused)' if reused else ''}")
    return run
