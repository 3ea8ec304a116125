"""The ``prune`` stage on a sequence classifier (the selective study): prune, register, recover, register.

Weight granularity zeroes single weights of the decoder's Linear layers (kept at zero through
recovery by gradient masks); neuron granularity removes whole MLP neurons through the same
``prune``/``remove_neurons`` path as the unlearning study. Accuracy is measured before pruning,
after it and after recovery; both the pruned and the recovered model are registered (aliases
``pruned`` and ``recovered``) so evaluate and distill can take either.
"""
from __future__ import annotations

import copy
from pathlib import Path

import mlflow

from forgetting.errors import UsageError, check_choice, check_range

GRANULARITIES = ("neuron", "weight")


def check_selective_pruning(config, location: str) -> None:
    """A classifier prune request: criterion, fraction, granularity, recovery budget, statistics."""
    from forgetting.data.classification import check_classification_task
    from forgetting.pruning import PRUNING_METHODS, check_pruning
    from forgetting.training.statistics import STATISTICS_FILE

    check_choice("granularity", config.granularity, GRANULARITIES)
    criterion = PRUNING_METHODS.get(config.method)
    if config.granularity == "weight":
        check_choice("method", config.method, PRUNING_METHODS.names_where(lambda spec: spec.weight_level))
    check_pruning(config.method, config.sparsity, config.scope)
    if not criterion.classifier:
        classifiers = PRUNING_METHODS.names_where(lambda spec: spec.classifier)
        raise UsageError(f"method={config.method!r} scores neurons by the language-model loss; a classifier "
                         f"takes one of: {', '.join(classifiers)}")
    check_classification_task(config.task)
    check_range("recovery_steps", config.recovery_steps, 0)
    check_range("recovery_lr", config.recovery_lr, 0, low_open=True)
    check_range("batch_size", config.batch_size, 1)
    if criterion.needs_statistics and not (Path(location) / STATISTICS_FILE).exists():
        raise UsageError(f"method={config.method!r} needs the fine-tuning statistics that `finetune -P "
                         f"mode=classification` saves beside its checkpoint; model={config.model!r} has none")


def prune_classifier(config) -> dict[str, float]:
    """Inside the active run: accuracy before/after pruning and after recovery, both checkpoints registered."""
    from forgetting.data.classification import CLASSIFICATION_LABELS, classification_rows
    from forgetting.scoring.classification import score_classifier
    from forgetting.models import resolve_model
    from forgetting.models.classifier import load_classifier
    from forgetting.models.weights import apply_masks, count_parameters
    from forgetting.pruning import PRUNING_METHODS, counts_as_metrics, prune, score_weights
    from forgetting.pruning.weights import select_weights, sparsity_metrics
    from forgetting.training.classifier import train_classifier
    from forgetting.training.statistics import FinetuneStatistics

    model, tokenizer = load_classifier(config.model, CLASSIFICATION_LABELS[config.task], config.seed)
    statistics = FinetuneStatistics.load(resolve_model(config.model))
    train_rows = classification_rows(config.task, "train", config.seed)
    eval_rows = classification_rows(config.task, "eval", config.seed)

    def evaluate(candidate, prefix: str) -> dict[str, float]:
        return score_classifier(candidate, tokenizer, eval_rows, config.batch_size, config.precision, prefix)

    metrics = evaluate(model, "before")
    masks = None
    if config.granularity == "weight":
        masks = select_weights(score_weights(config.method, model, statistics, config.seed), config.sparsity,
                               config.scope)
        pruned = copy.deepcopy(model)
        apply_masks(pruned, masks)
        metrics |= sparsity_metrics(masks)
    else:
        options = {"statistics": statistics} if PRUNING_METHODS.get(config.method).needs_statistics else {}
        result = prune(model, config.method, None, config.sparsity, scope=config.scope, seed=config.seed, **options)
        pruned = result.model
        metrics |= counts_as_metrics(result.counts)
    metrics |= evaluate(pruned, "pruned") | {"parameters_before": count_parameters(model),
                                             "parameters_after": count_parameters(pruned)}
    name = config.model_name()
    tags = {"method": config.method, "sparsity": config.sparsity,
            "granularity": config.granularity, "task": config.task}
    _register(pruned, tokenizer, "pruned", name, tags | {"stage": "prune", "step": 0})
    if config.recovery_steps:
        losses = train_classifier(pruned, tokenizer, train_rows, lr=config.recovery_lr,
                                  max_steps=config.recovery_steps, batch_size=config.batch_size,
                                  precision=config.precision, seed=config.seed, masks=masks,
                                  on_step=lambda step, loss: mlflow.log_metric("recovery_loss", loss, step=step)
                                  ).losses
        metrics |= evaluate(pruned, "recovered") | {"recovery_loss_first": losses[0],
                                                    "recovery_loss_last": losses[-1]}
        if masks is not None:
            metrics["recovered_weight_sparsity"] = _zero_fraction(pruned, masks)
        _register(pruned, tokenizer, "recovered", name, tags | {"stage": "recover", "step": config.recovery_steps})
    mlflow.log_metrics(metrics)
    return metrics


def _register(model, tokenizer, alias: str, name: str, tags: dict) -> None:
    """Log and register ``model``; a rerun of a killed stage gets its earlier version back, not a twin."""
    from forgetting.tracking.checkpoints import log_model
    from forgetting.tracking.runs import active_cache_key

    log_model(model, tokenizer, alias, register_as=name, alias=alias, tags=tags,
              version_key=f"{active_cache_key()}:{alias}")


def _zero_fraction(model, masks) -> float:
    """Measured on the weights (not the masks): recovery must not bring pruned weights back."""
    from forgetting.models.weights import prunable_weights

    weights = prunable_weights(model)
    zeros = sum(int((weights[name] == 0).sum()) for name in masks)
    return zeros / sum(mask.numel() for mask in masks.values())
