"""Train a sequence classifier: fine-tuning (recording pruning statistics) and recovery after pruning.

A small loop on ``optimizer_step`` rather than ``transformers.Trainer``: the statistics and the
pruning masks are gradient hooks, and a Trainer per Optuna trial costs more than a CPU trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from forgetting.data.classification import classification_batches
from forgetting.models.weights import Weights, apply_masks, mask_gradients
from forgetting.training.optimizer import adamw_with_warmup, optimizer_step
from forgetting.training.statistics import FinetuneStatistics, StatisticsRecorder


@dataclass
class ClassifierTraining:
    losses: list[float]
    statistics: FinetuneStatistics | None = None


def train_classifier(model, tokenizer, rows: Sequence[dict], *, lr: float, epochs: int = 1, max_steps: int = 0,
                     batch_size: int = 16, precision: str = "fp32", seed: int = 0, masks: Weights | None = None,
                     record_statistics: bool = False,
                     on_step: Callable[[int, float], None] | None = None) -> ClassifierTraining:
    """Train ``model`` in place for ``epochs`` passes (or ``max_steps`` steps, when set).

    With ``masks``, pruned weights get zero gradients and stay zero. With ``record_statistics``,
    the result carries the movement and mean |gradient| of every prunable weight.
    """
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max_steps or epochs * steps_per_epoch
    optimizer, scheduler = adamw_with_warmup(model, lr, total)
    generator = torch.Generator().manual_seed(seed)
    handles = mask_gradients(model, masks) if masks else []
    recorder = StatisticsRecorder(model) if record_statistics else None
    losses: list[float] = []
    try:
        with tqdm(total=total, desc="train classifier", unit="step", leave=False) as progress:
            while len(losses) < total:
                for batch in classification_batches(tokenizer, rows, batch_size, generator):
                    losses.append(optimizer_step(model, batch, optimizer, scheduler, precision))
                    if masks:
                        apply_masks(model, masks)
                    if on_step:
                        on_step(len(losses), losses[-1])
                    progress.update()
                    if len(losses) == total:
                        break
    finally:
        for handle in handles:
            handle.remove()
    model.eval()
    return ClassifierTraining(losses, recorder.finish() if recorder else None)
