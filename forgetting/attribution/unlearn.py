"""Gradient ascent: the unlearning step UnTrac and UnTrac-Inv share.

It runs on a deep copy, so the model handed to ``attribute`` is never changed. The optimiser is
Adam, as in Isonuma & Titov (2024); ascent is descent on the negated loss.
"""
from __future__ import annotations

import copy

import torch

from forgetting.attribution.examples import Encoded, token_losses


def unlearned_copy(model, data: Encoded, lr: float, steps: int, batch_size: int,
                   gradient_checkpointing: bool = False):
    """A copy of ``model`` after ``steps`` gradient-ascent steps on ``data`` (cycling its batches)."""
    copy_ = copy.deepcopy(model)
    copy_.train()
    if gradient_checkpointing:
        copy_.gradient_checkpointing_enable()
    optimizer = torch.optim.Adam(copy_.parameters(), lr=lr)
    batches = list(data.batches(batch_size, copy_.device))
    for step in range(steps):
        batch = batches[step % len(batches)]
        logits = copy_(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = -token_losses(logits, batch["labels"]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    copy_.eval()
    return copy_
