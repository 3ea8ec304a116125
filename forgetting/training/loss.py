"""Held-out causal-LM loss (mean over tokens)."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from forgetting.device import autocast, on_device


@torch.no_grad()
def heldout_loss(model, batches, precision: str = "fp32") -> float:
    total, tokens = 0.0, 0
    model.eval()
    for batch in tqdm(list(batches), desc="held-out loss", unit="batch", leave=False):
        with autocast(precision, model.device):
            loss = model(**on_device(batch, model.device)).loss.float()
        count = int(batch["attention_mask"][:, 1:].sum())
        total, tokens = total + loss.item() * count, tokens + count
    return total / max(tokens, 1)
