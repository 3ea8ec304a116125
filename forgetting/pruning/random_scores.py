"""Random neuron scores: the baseline every informed criterion has to beat."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from forgetting.pruning.scores import NeuronScores, mlp_widths


def check_options() -> None:
    """``random`` takes no options beyond the seed."""


def score_weights(model: nn.Module, statistics=None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Uniform [0, 1) scores per prunable weight, drawn on the CPU from ``seed`` alone."""
    from forgetting.models.weights import prunable_weights

    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(weight.shape, generator=generator).to(weight.device)
            for name, weight in prunable_weights(model).items()}


def score_neurons(model: nn.Module, batches: Iterable | None = None, *, seed: int = 0) -> NeuronScores:
    """Uniform [0, 1) scores drawn from ``seed`` alone (on the CPU, so a seed gives the same scores on
    every device), placed on the model's device; ``batches`` is not read."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.rand(width, generator=generator).to(model.device) for width in mlp_widths(model)]
    return NeuronScores(scores=scores, model=model)
