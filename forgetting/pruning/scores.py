"""What every neuron scorer shares: the result type and access to a Llama's MLP neurons.

A *neuron* is one unit of a layer's gated MLP: row ``j`` of ``gate_proj`` and ``up_proj`` and
column ``j`` of ``down_proj``. Scores are one 1-D tensor per layer, higher = more important.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn

from forgetting.device import on_device
from forgetting.models.weights import check_llama


@dataclass
class NeuronScores:
    """Scores for every MLP neuron, and the model they describe, which is the model to prune.

    For ``random`` and ``attribution`` ``model`` is the model that was scored; for
    ``tuneprune`` it is the group-lasso-tuned copy, because the method prunes the tuned model
    (its small-norm neurons were pushed towards zero so that removing them costs little).
    ``metrics`` holds numbers worth logging that the scorer measured on the way.
    """

    scores: list[torch.Tensor]
    model: nn.Module
    metrics: dict[str, float] = field(default_factory=dict)


def mlp_modules(model: nn.Module) -> list[nn.Module]:
    """The MLP of every decoder layer of a (variable) Llama causal LM, in layer order."""
    check_llama(model)
    return [layer.mlp for layer in model.model.layers]


def mlp_widths(model: nn.Module) -> list[int]:
    return [mlp.down_proj.in_features for mlp in mlp_modules(model)]


def batches_on(device: torch.device, batches: Iterable[Mapping[str, torch.Tensor]]
               ) -> Iterator[dict[str, torch.Tensor]]:
    for batch in batches:
        yield on_device(batch, device)
