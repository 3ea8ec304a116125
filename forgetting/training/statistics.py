"""What fine-tuning leaves behind for the movement and gradient pruning criteria.

``movement``: finetuned minus pre-fine-tuning weight, computed against the true pre-fine-tuning
weights held in memory during fine-tuning. ``gradient``: mean |dL/dw| over every fine-tuning step,
accumulated by a hook before clipping (zero for a frozen weight: fine-tuning did not use it).
Both are saved next to the checkpoint in bf16 (the delta, not the weights: bf16 weights would
round away the small moves a fine-tuning makes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from forgetting.models.weights import Weights, prunable_weights

STATISTICS_FILE = "finetune_statistics.safetensors"


@dataclass
class FinetuneStatistics:
    movement: Weights
    gradient: Weights
    steps: int

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"movement/{k}": v.to(torch.bfloat16).cpu().contiguous() for k, v in self.movement.items()}
        tensors |= {f"gradient/{k}": v.to(torch.bfloat16).cpu().contiguous() for k, v in self.gradient.items()}
        save_file(tensors, str(Path(directory) / STATISTICS_FILE), metadata={"steps": str(self.steps)})

    @classmethod
    def load(cls, directory: str | Path) -> "FinetuneStatistics | None":
        """The statistics saved in a checkpoint directory, or None when it has none."""
        from safetensors import safe_open

        path = Path(directory) / STATISTICS_FILE
        if not path.exists():
            return None
        movement, gradient = {}, {}
        with safe_open(str(path), framework="pt") as handle:
            steps = int(handle.metadata()["steps"])
            for key in handle.keys():
                kind, _, name = key.partition("/")
                (movement if kind == "movement" else gradient)[name] = handle.get_tensor(key).float()
        return cls(movement, gradient, steps)


class StatisticsRecorder:
    """Records movement and mean |gradient| of ``model``'s prunable weights from now on."""

    def __init__(self, model: nn.Module):
        self.weights = prunable_weights(model)
        self.pretrained = {name: weight.detach().clone() for name, weight in self.weights.items()}
        self.gradient_sum = {name: torch.zeros_like(weight) for name, weight in self.weights.items()}
        self.backward_passes = {name: 0 for name in self.weights}
        self._handles = [weight.register_post_accumulate_grad_hook(self._hook(name))
                         for name, weight in self.weights.items() if weight.requires_grad]

    def _hook(self, name: str):
        def accumulate(parameter: torch.Tensor) -> None:
            self.gradient_sum[name].add_(parameter.grad.detach().abs())
            self.backward_passes[name] += 1
        return accumulate

    def finish(self) -> FinetuneStatistics:
        for handle in self._handles:
            handle.remove()
        steps = max(self.backward_passes.values(), default=0)
        return FinetuneStatistics(
            movement={name: weight.detach() - self.pretrained[name] for name, weight in self.weights.items()},
            gradient={name: total / max(self.backward_passes[name], 1) for name, total in self.gradient_sum.items()},
            steps=steps)
