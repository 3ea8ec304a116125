"""Which weights of a fine-tuned model are useless: magnitude, movement, gradient, combined.

- ``magnitude``: |w| small;
- ``movement``: |w_finetuned - w_pretrained| small (fine-tuning did not need it);
- ``gradient``: mean |dL/dw| over fine-tuning small (the task loss did not pull on it);
- ``combined``: useless only when all three say so. Its score is a weight's highest per-matrix
  percentile under the three, so the lowest combined scores are exactly the weights every
  criterion ranks low.

``score_weights`` gives one score per weight (unstructured pruning); the ``*_neurons``
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

NEEDS_STATISTICS = ("movement", "gradient", "combined")
WEIGHT_CRITERIA = ("magnitude", *NEEDS_STATISTICS, "random")


def check_options(statistics=None) -> None:
    """Nothing to range-check: whether statistics are needed depends on the method (see ``score_weights``)."""


def score_weights(method: str, model: nn.Module, statistics=None, seed: int = 0) -> Weights:
    """One score per prunable weight, shaped like it and on its device; higher = more important."""
    weights = prunable_weights(model)
    if method in NEEDS_STATISTICS:
        _check_statistics(method, weights, statistics)
    if method == "magnitude":
        return {name: weight.detach().abs() for name, weight in weights.items()}
    if method == "movement":  # statistics load onto the CPU
        return {name: statistics.movement[name].to(weight.device).abs() for name, weight in weights.items()}
    if method == "gradient":
        return {name: statistics.gradient[name].to(weight.device, copy=True) for name, weight in weights.items()}
    if method == "combined":
        parts = [score_weights(part, model, statistics) for part in ("magnitude", "movement", "gradient")]
        return {name: torch.stack([_percentiles(part[name]) for part in parts]).amax(0) for name in weights}
    if method == "random":  # drawn on the CPU: a seed gives the same scores on every device
        generator = torch.Generator().manual_seed(seed)
        return {name: torch.rand(weight.shape, generator=generator).to(weight.device)
                for name, weight in weights.items()}
    raise UsageError(f"method={method!r} has no weight-level scores; use one of: {', '.join(WEIGHT_CRITERIA)}")


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


def _neurons(method: str, model: nn.Module, seed: int, statistics) -> NeuronScores:
    return NeuronScores(neuron_scores(score_weights(method, model, statistics, seed), model), model)


def magnitude_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons("magnitude", model, seed, statistics)


def movement_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons("movement", model, seed, statistics)


def gradient_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons("gradient", model, seed, statistics)


def combined_neurons(model, batches=None, *, seed: int = 0, statistics=None) -> NeuronScores:
    return _neurons("combined", model, seed, statistics)
