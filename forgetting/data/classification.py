"""Sentence-classification tasks: the bare sentence (``text``) and its ``label``, as padded batches."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from forgetting.errors import check_choice

CLASSIFICATION_LABELS = {"sst2": 2, "imdb": 2}
"""Task -> number of labels. ``imdb`` has hub data only (``source="hub"``)."""
MAX_TOKENS = 128


def check_classification_task(task: str, source: str = "offline", split: str | None = None) -> None:
    """A classification task that ``source`` serves (and, with a ``split``, has that split; from the hub,
    whose files can be read)."""
    from forgetting.data.loading import check_source, check_task, get_task

    check_choice("task", task, sorted(CLASSIFICATION_LABELS))
    check_source(source)
    get_task(task, source)
    if split is not None:
        check_task(task, split, source=source)


def classification_rows(task: str, split: str, seed: int = 0, limit: int = 0, source: str = "offline") -> list[dict]:
    from forgetting.data import load_task

    check_classification_task(task, source)
    return load_task(task, split, seed=seed, limit=limit or None, source=source)


def classification_batches(tokenizer, rows: Sequence[dict], batch_size: int,
                           generator: torch.Generator | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Right-padded ``input_ids``/``attention_mask``/``labels``; shuffled when a generator is given."""
    order = torch.randperm(len(rows), generator=generator).tolist() if generator else range(len(rows))
    order = list(order)
    for start in range(0, len(order), batch_size):
        chunk = [rows[i] for i in order[start:start + batch_size]]
        encoded = tokenizer([row["text"] for row in chunk], padding=True, truncation=True, max_length=MAX_TOKENS,
                            return_tensors="pt", padding_side="right")
        yield {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
               "labels": torch.tensor([row["label"] for row in chunk])}
