"""Held-out causal-LM loss (mean over tokens)."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from forgetting.device import autocast, on_device


@torch.no_grad()
def heldout_loss(model, batches, precision: str = "fp32", device=None) -> float:
    """On ``device`` (default: the model's; give it for a DDP or FSDP wrapper, which has none)."""
    total, tokens = 0.0, 0
    device = device or model.device
    model.eval()
    with autocast(precision, device):  # one context for every batch: the weights are cast once
        for batch in tqdm(list(batches), desc="held-out loss", unit="batch", leave=False):
            loss = model(**on_device(batch, device)).loss.float()
            count = int(batch["attention_mask"][:, 1:].sum())
            total, tokens = total + loss.item() * count, tokens + count
    return total / max(tokens, 1)
