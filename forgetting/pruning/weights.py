"""Weight-level (unstructured) pruning of the Linear layers inside a Llama's decoder layers.

Scores are one tensor per weight matrix, shaped like it, higher = more important. Selection
turns them into keep-masks (True = kept); ``forgetting.models.weights.apply_masks`` zeroes the
rest in place.
"""
from __future__ import annotations

import torch

from forgetting.errors import check_choice, check_range
from forgetting.models.weights import Weights
from forgetting.pruning.remove import SCOPES, removed_count


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
