"""The weights of a Llama that pruning works on: the Linear layers of its decoder layers.

``prunable_weights`` names them; keep-masks (``Weights``, True = kept) are applied with
``apply_masks`` and held at zero during training with ``mask_gradients``. Embeddings, norms and
the task head are never pruned, as in Wanda and SparseGPT. Choosing the masks is pruning's job
(``forgetting.pruning.weights``); training only applies them.
"""
from __future__ import annotations

import torch
from torch import nn

from forgetting.errors import UsageError

LLAMA_MODEL_TYPES = ("llama", "variable_llama")

Weights = dict[str, torch.Tensor]


def check_llama(model: nn.Module) -> None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LLAMA_MODEL_TYPES or not hasattr(getattr(model, "model", None), "layers"):
        raise UsageError(f"pruning needs a Llama causal LM ({', '.join(LLAMA_MODEL_TYPES)}), "
                         f"got {type(model).__name__} with model_type={model_type!r}")


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{parameter name: weight}`` of every ``nn.Linear`` in the decoder layers, in model order."""
    check_llama(model)
    return {f"{name}.weight": module.weight for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith("model.layers.")}


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


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(parameter.numel() for parameter in model.parameters())
