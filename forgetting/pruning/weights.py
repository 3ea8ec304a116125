"""Weight-level (unstructured) pruning of the Linear layers inside a Llama's decoder layers.

Scores are one tensor per weight matrix, shaped like it, higher = more important. Selection
turns them into keep-masks (True = kept); ``apply_masks`` zeroes the rest in place. Embeddings,
norms and the task head are never pruned, as in Wanda and SparseGPT.
"""
from __future__ import annotations

import torch
from torch import nn

from forgetting.errors import check_choice, check_range
from forgetting.pruning.remove import SCOPES, removed_count
from forgetting.pruning.scores import check_llama

Weights = dict[str, torch.Tensor]


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{parameter name: weight}`` of every ``nn.Linear`` in the decoder layers, in model order."""
    check_llama(model)
    return {f"{name}.weight": module.weight for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith("model.layers.")}


def select_weights(scores: Weights, sparsity: float, scope: str = "layer") -> Weights:
    """Keep-masks dropping the ``round(sparsity * n)`` lowest scores of each matrix (``layer``)
    or of all matrices together (``global``). Ties go lowest index first."""
    check_range("sparsity", sparsity, 0, 1, high_open=True)
    check_choice("scope", scope, SCOPES)
    if scope == "layer":
        return {name: _keep_mask(score.flatten(), removed_count(score.numel(), sparsity)).view_as(score)
                for name, score in scores.items()}
    flat = torch.cat([score.flatten().float() for score in scores.values()])
    mask = _keep_mask(flat, removed_count(flat.numel(), sparsity))
    return {name: part.view_as(score) for (name, score), part in
            zip(scores.items(), mask.split([score.numel() for score in scores.values()]))}


def _keep_mask(score: torch.Tensor, dropped: int) -> torch.Tensor:
    if torch.isnan(score).any():
        raise ValueError("weight scores contain NaN")
    mask = torch.ones(score.numel(), dtype=torch.bool, device=score.device)
    mask[torch.argsort(score.float(), stable=True)[:dropped]] = False
    return mask


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Weights) -> None:
    """Zero every pruned weight of ``model`` in place."""
    weights = prunable_weights(model)
    for name, mask in masks.items():
        weights[name].mul_(mask.to(weights[name].device, weights[name].dtype))


def mask_gradients(model: nn.Module, masks: Weights) -> list:
    """Hooks that zero the gradient of every pruned weight, so training keeps them at zero
    (AdamW with no weight decay then never moves them). Remove the returned handles to stop."""
    weights = prunable_weights(model)

    def zero_pruned(mask: torch.Tensor):
        def hook(parameter: torch.Tensor) -> None:
            parameter.grad.mul_(mask)
        return hook

    return [weights[name].register_post_accumulate_grad_hook(zero_pruned(mask.to(weights[name].device)))
            for name, mask in masks.items()]


def sparsity_metrics(masks: Weights) -> dict[str, float]:
    """Pruned fraction overall and per decoder layer (``weight_sparsity/layer_00`` ...)."""
    pruned, total, per_layer = 0, 0, {}
    for name, mask in masks.items():
        layer = int(name.split(".")[2])
        counts = per_layer.setdefault(layer, [0, 0])
        counts[0] += int((~mask).sum())
        counts[1] += mask.numel()
        pruned, total = pruned + int((~mask).sum()), total + mask.numel()
    return {"weight_sparsity": pruned / max(total, 1),
            **{f"weight_sparsity/layer_{layer:02d}": p / t for layer, (p, t) in sorted(per_layer.items())}}
