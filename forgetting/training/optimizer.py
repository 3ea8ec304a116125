"""AdamW with linear warmup and decay, and one optimisation step under the chosen precision."""
from __future__ import annotations

import torch
from transformers import get_linear_schedule_with_warmup

from forgetting.device import autocast, on_device


def adamw_with_warmup(model, lr: float, total_steps: int, warmup_fraction: float = 0.1,
                      weight_decay: float = 0.0):
    """``(optimizer, scheduler)``; the schedule is transformers' linear warmup then linear decay."""
    optimizer = adamw(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = int(warmup_fraction * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))


def adamw(parameters, **options):
    """``torch.optim.AdamW``, fused where torch has a fused kernel for the parameters' device (CPU and
    CUDA): the same update in one kernel per step instead of a loop over tensors, about 4x faster on a
    CPU for a 135M model (0.07 s vs 0.30 s a step)."""
    parameters = list(parameters)
    devices = {p.device.type for p in parameters if p.requires_grad}
    fused = bool(devices) and devices <= {"cpu", "cuda"} and all(
        p.dtype.is_floating_point for p in parameters if p.requires_grad)
    return torch.optim.AdamW(parameters, fused=fused or None, **options)


def optimizer_step(model, batch: dict, optimizer, scheduler, precision: str = "fp32",
                   max_grad_norm: float = 1.0, loss_of=None) -> float:
    """Forward, backward, clip, step on the model's device; returns the batch loss (the model's own, or
    ``loss_of(model, batch)``)."""
    model.train()
    with autocast(precision, model.device):
        batch = on_device(batch, model.device)
        loss = loss_of(model, batch) if loss_of else model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
