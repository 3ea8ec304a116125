"""Which weights of a fine-tuned model are useless: magnitude, movement, gradient, combined.

- ``magnitude``: |w| small;
- ``movement``: |w_finetuned - w_pretrained| small (fine-tuning did not need it);
- ``gradient``: mean |dL/dw| over fine-tuning small (the task loss did not pull on it);
- ``combined``: useless only when all three say so. Its score is a weight's highest per-matrix
  percentile under the three, so the lowest combined scores are exactly the weights every
  criterion ranks low.

The ``*_weights`` functions give one score per weight (unstructured pruning); the ``*_neurons``
functions are ``PRUNING_METHODS`` entries that sum a neuron's gate row, up row and down column
(structured pruning through ``remove_neurons``). Movement and gradient need the
``FinetuneStatistics`` that classification fine-tuning saves beside its checkpoint.
"""
from __future__ import annotations

import torch
from torch import nn

from forgetting.errors import UsageError
from forgetting.models.weights import Weights, prunable_weights
from forgetting.pruning.scores import NeuronScores, mlp_widths


def check_options(statistics=None) -> None:
    """Nothing to range-check: whether statistics are needed is the criterion's (``needs_statistics``)."""


def magnitude_weights(model: nn.Module, statistics=None, seed: int = 0) -> Weights:
    return {name: weight.detach().abs() for name, weight in prunable_weights(model).items()}


def movement_weights(model: nn.Module, statistics=None, seed: int = 0) -> Weights:
    weights = prunable_weights(model)
    _check_statistics("movement", weights, statistics)  # statistics load onto the CPU
    return {name: statistics.movement[name].to(weight.device).abs() for name, weight in weights.items()}


def gradient_weights(model: nn.Module, statistics=None, seed: int = 0) -> Weights:
    weights = prunable_weights(model)
    _check_statistics("gradient", weights, statistics)
    return {name: statistics.gradient[name].to(weight.device, copy=True) for name, weight in weights.items()}


def combined_weights(model: nn.Module, statistics=None, seed: int = 0) -> Weights:
    _check_statistics("combined", prunable_weights(model), statistics)
    parts = [scorer(model, statistics) for scorer in (magnitude_weights, movement_weights, gradient_weights)]
    return {name: torch.stack([_percentiles(part[name]) for part in parts]).amax(0) for name in parts[0]}


def _check_statistics(method: str, weights: Weights, statistics) -> None:
    if statistics is None:
        raise UsageError(f"method={method!r} needs fine-tuning statistics: prune a checkpoint made by "
                         "`finetune -P mode=classification`, which saves them beside the weights")
    missing = [name for name, weight in weights.items()
               if name not in statistics.movement or statistics.movement[name].shape != weight.shape]
    if missing:
        raise UsageError(f"method={method!r}: the fine-tuning statistics do not match the model's weights "
                         f"({missing[0]}); was it pruned after fine-tuning?")


def _percentiles(score: torch.Tensor) -> torch.Tensor:
    """The fraction of its matrix that scores strictly lower than each entry (ties share a rank)."""
    flat = score.flatten().float()
    return (torch.searchsorted(flat.sort().values, flat) / flat.numel()).view_as(score)


def neuron_scores(weight_scores: Weights, model: nn.Module) -> list[torch.Tensor]:
    """A neuron's score: the sum over its gate row, up row and down column."""
    scores = []
    for layer, width in enumerate(mlp_widths(model)):
        prefix = f"model.layers.{layer}.mlp."
        score = weight_scores[prefix + "down_proj.weight"].float().sum(0)
        for name in ("gate_proj.weight", "up_proj.weight"):
            score = score + weight_scores[prefix + name].float().sum(1)
        scores.append(score)
    return scores


def _neurons(weight_scores: Weights, model: nn.Module) -> NeuronScores:
    return NeuronScores(neuron_scores(weight_scores, model), model)


def magnitude_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons(magnitude_weights(model), model)


def movement_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons(movement_weights(model, statistics), model)


def gradient_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons(gradient_weights(model, statistics), model)


def combined_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons(combined_weights(model, statistics), model)
