"""Fine-tuning on a multiple-choice task: each prompt followed by its correct choice, loss on the
choice tokens only (tokenised the way the evaluation scores them).

A small loop rather than TRL's SFTTrainer: it is the loop continued training uses, and building
a Trainer per Optuna trial costs more than a CPU trial's training.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from forgetting.evaluation.multiple_choice import encode_pair
from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

IGNORE = -100


def answer_examples(tokenizer, rows) -> list[tuple[list[int], list[int]]]:
    return [encode_pair(tokenizer, row["prompt"], row["choices"][row["label"]]) for row in rows]


def answer_batches(examples, batch_size: int, pad_id: int, generator: torch.Generator) -> Iterator[dict]:
    """Right-padded batches in a seeded order; labels are -100 outside the answer."""
    order = torch.randperm(len(examples), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start:start + batch_size]]
        width = max(len(context) + len(answer) for context, answer in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        mask = torch.zeros_like(ids)
        for row, (context, answer) in enumerate(chunk):
            length = len(context) + len(answer)
            ids[row, :length] = torch.tensor(context + answer)
            labels[row, len(context):length] = torch.tensor(answer)
            mask[row, :length] = 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": labels}


def finetune_on_answers(model, tokenizer, rows, lr: float, epochs: int = 1, batch_size: int = 8,
                        precision: str = "fp32", seed: int = 0,
                        after_epoch: Callable[[int, float], None] | None = None) -> float:
    """Train ``model`` in place; ``after_epoch(epoch, mean loss)`` runs after each epoch (for
    intermediate evaluation and pruning). Returns the last epoch's mean loss."""
    examples = answer_examples(tokenizer, rows)
    optimizer, scheduler = adamw_with_warmup(model, lr, epochs * math.ceil(len(examples) / batch_size))
    generator = torch.Generator().manual_seed(seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mean_loss = math.nan
    for epoch in range(epochs):
        losses = [optimizer_step(model, batch, optimizer, scheduler, precision)
                  for batch in answer_batches(examples, batch_size, pad_id, generator)]
        mean_loss = sum(losses) / len(losses)
        if after_epoch:
            after_epoch(epoch, mean_loss)
    return mean_loss
