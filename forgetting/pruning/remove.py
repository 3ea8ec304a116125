"""Turn neuron scores into a physically smaller model.

``select_neurons`` decides which neurons survive, ``remove_neurons`` builds a
``VariableLlamaForCausalLM`` holding only their weights, and ``mask_neurons`` builds the dense
model that should compute the same function (used to check the removal, never to run).
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn
from transformers.initialization import no_init_weights

from forgetting.errors import check_choice, check_range
from forgetting.models.variable_llama import (VariableLlamaConfig, VariableLlamaForCausalLM,
                                              VariableLlamaForSequenceClassification)
from forgetting.pruning.scores import mlp_modules, mlp_widths

SCOPES = ("layer", "global")


class LayerCount(NamedTuple):
    layer: int
    kept: int
    removed: int


def check_selection(sparsity: float, scope: str = "layer") -> None:
    check_range("sparsity", sparsity, 0, 1, high_open=True)
    check_choice("scope", scope, SCOPES)


def removed_count(width: int, sparsity: float) -> int:
    """How many of ``width`` neurons a layer loses at ``sparsity``: ``round(sparsity * width)``."""
    return round(sparsity * width)


def select_neurons(scores: list[torch.Tensor], sparsity: float, scope: str = "layer") -> list[torch.Tensor]:
    """The indices (sorted, int64) of the neurons to keep in each layer.

    ``scope="layer"``: every layer drops its ``round(sparsity * width)`` lowest-scoring neurons.
    ``scope="global"``: the ``round(sparsity * total)`` lowest scores over all layers go, except
    that each layer keeps its best neuron (so the count can fall short at extreme sparsity);
    only meaningful when scores are comparable across layers. Ties go lowest index first.
    """
    check_selection(sparsity, scope)
    scores = [score.detach().float().cpu() for score in scores]
    if any(torch.isnan(score).any() for score in scores):
        raise ValueError("neuron scores contain NaN")
    if scope == "layer":
        return [_keep_highest(score, score.numel() - removed_count(score.numel(), sparsity)) for score in scores]
    return _select_globally(scores, sparsity)


def _keep_highest(score: torch.Tensor, keep: int) -> torch.Tensor:
    dropped = torch.argsort(score, stable=True)[: score.numel() - keep]
    mask = torch.ones(score.numel(), dtype=torch.bool)
    mask[dropped] = False
    return mask.nonzero().flatten()


def _select_globally(scores: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    widths = [score.numel() for score in scores]
    total = sum(widths)
    to_remove = min(removed_count(total, sparsity), total - len(scores))
    protected = [score.clone().index_fill_(0, score.argmax().view(1), float("inf")) for score in scores]
    dropped = torch.argsort(torch.cat(protected), stable=True)[:to_remove]
    mask = torch.ones(total, dtype=torch.bool)
    mask[dropped] = False
    return [layer_mask.nonzero().flatten() for layer_mask in mask.split(widths)]


def _checked_keep(model: nn.Module, keep: list[torch.Tensor]) -> list[torch.Tensor]:
    widths = mlp_widths(model)
    if len(keep) != len(widths):
        raise ValueError(f"keep has {len(keep)} entries for {len(widths)} layers")
    checked = []
    for layer, (indices, width) in enumerate(zip(keep, widths)):
        indices = torch.as_tensor(indices, dtype=torch.long).flatten().cpu().sort().values
        if indices.numel() == 0:
            raise ValueError(f"layer {layer} would keep no neurons")
        if indices[0] < 0 or indices[-1] >= width or indices.unique().numel() != indices.numel():
            raise ValueError(f"layer {layer}: keep indices must be distinct and in [0, {width})")
        checked.append(indices)
    return checked


def _sliced_state_dict(model: nn.Module, keep: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    for layer, indices in enumerate(keep):
        prefix = f"model.layers.{layer}.mlp."
        indices = indices.to(state[prefix + "down_proj.weight"].device)
        for name in ("gate_proj.weight", "up_proj.weight", "gate_proj.bias", "up_proj.bias"):
            if prefix + name in state:
                state[prefix + name] = state[prefix + name].index_select(0, indices)
        state[prefix + "down_proj.weight"] = state[prefix + "down_proj.weight"].index_select(1, indices)
    return state


def remove_neurons(model: nn.Module, keep: list[torch.Tensor]) -> VariableLlamaForCausalLM:
    """A new model holding only the kept neurons of each MLP; ``model`` is left as it was.

    Works from a dense or variable Llama causal LM or sequence classifier (the copy has the same
    head). The copy keeps
    the dtype, device, training mode, ``requires_grad`` flags and generation config of ``model``.
    """
    keep = _checked_keep(model, keep)
    config = VariableLlamaConfig.from_llama_config(model.config, [indices.numel() for indices in keep])
    reference = next(model.parameters())
    variable_class = VariableLlamaForSequenceClassification if hasattr(model, "score") else VariableLlamaForCausalLM
    with no_init_weights(), torch.device(reference.device):  # built where it will live
        pruned = variable_class(config)
    pruned.tie_weights()
    pruned.to(device=reference.device, dtype=reference.dtype)
    pruned.load_state_dict(_sliced_state_dict(model, keep), strict=True)
    requires_grad = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    for name, parameter in pruned.named_parameters():
        parameter.requires_grad_(requires_grad.get(name, True))
    pruned.generation_config = copy.deepcopy(getattr(model, "generation_config", None))
    pruned.train(model.training)
    return pruned


def mask_neurons(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    """A dense copy of ``model`` whose removed neurons write nothing (``down_proj`` columns zeroed).

    For checking ``remove_neurons`` only: it should compute the same logits as the pruned model.
    """
    keep = _checked_keep(model, keep)
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for mlp, indices in zip(mlp_modules(masked), keep):
            removed = torch.ones(mlp.down_proj.in_features, dtype=torch.bool, device=mlp.down_proj.weight.device)
            removed[indices.to(removed.device)] = False
            mlp.down_proj.weight[:, removed] = 0
    return masked


def layer_counts(model: nn.Module, keep: list[torch.Tensor]) -> list[LayerCount]:
    """Kept and removed neurons per layer when ``keep`` is applied to ``model``."""
    return [LayerCount(layer, len(indices), width - len(indices))
            for layer, (indices, width) in enumerate(zip(keep, mlp_widths(model)))]


def counts_as_metrics(counts: list[LayerCount]) -> dict[str, int]:
    """``{"kept_neurons/layer_00": ..., "removed_neurons/layer_00": ..., "kept_neurons": total, ...}``."""
    metrics = {}
    for count in counts:
        metrics[f"kept_neurons/layer_{count.layer:02d}"] = count.kept
        metrics[f"removed_neurons/layer_{count.layer:02d}"] = count.removed
    metrics["kept_neurons"] = sum(count.kept for count in counts)
    metrics["removed_neurons"] = sum(count.removed for count in counts)
    return metrics
