"""Attribution data as token tensors, and the per-example losses every method compares.

A training example is ``{"source", "text"}`` (its loss covers every token); a test example is
``{"prompt", "completion"}`` (its loss covers the completion only: the behaviour to explain).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from forgetting.device import on_device

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: torch.Tensor       # (n, length), right-padded
    attention_mask: torch.Tensor
    labels: torch.Tensor          # IGNORE on the prompt and the padding

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index],
                "labels": self.labels[index]}

    def subset(self, index) -> "Encoded":
        return Encoded(self.input_ids[index], self.attention_mask[index], self.labels[index])

    def batches(self, batch_size: int, device: torch.device | str):
        """Consecutive batches, each moved to ``device`` (the model's; the data itself stays on the CPU)."""
        for start in range(0, len(self), batch_size):
            yield on_device(self.batch(slice(start, start + batch_size)), device)


def encode_examples(tokenizer, examples: list[dict], max_length: int = 128) -> Encoded:
    """Token tensors for training (``text``) or test (``prompt`` + ``completion``) examples."""
    rows = []
    for example in examples:
        if "text" in example:
            prompt, target = [], tokenizer(example["text"], add_special_tokens=False)["input_ids"]
        else:
            prompt = tokenizer(example["prompt"], add_special_tokens=False)["input_ids"]
            target = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
        ids = (prompt + target)[:max_length]
        rows.append((ids, [IGNORE] * len(prompt) + target))
    length = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, :len(ids)] = torch.tensor(row_labels[:len(ids)])
        mask[row, :len(ids)] = 1
    return Encoded(input_ids, mask, labels)


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per row over the labelled positions."""
    shifted, targets = logits[:, :-1].float(), labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(shifted.transpose(1, 2), targets, ignore_index=IGNORE,
                                               reduction="none")
    counts = (targets != IGNORE).sum(-1).clamp(min=1)
    return losses.sum(-1) / counts


@torch.no_grad()
def example_losses(model, data: Encoded, batch_size: int = 16) -> torch.Tensor:
    """Per-example loss, shape ``(n,)``, on the model's device."""
    losses = []
    for batch in data.batches(batch_size, model.device):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses.append(token_losses(logits, batch["labels"]))
    return torch.cat(losses)
