"""A sequence classifier's predictions and what they score: accuracy (with its interval), F1, and the
majority-label baseline."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

from forgetting.data.classification import classification_batches


@torch.inference_mode()
def predict(model, tokenizer, rows: Sequence[dict], batch_size: int = 32, precision: str = "fp32") -> list[int]:
    from forgetting.device import autocast, on_device

    model.eval()
    predictions: list[int] = []
    for batch in classification_batches(tokenizer, rows, batch_size):
        inputs = on_device({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, model.device)
        with autocast(precision, model.device):
            logits = model(**inputs).logits
        predictions += logits.argmax(-1).cpu().tolist()
    return predictions


def majority_accuracy(train_rows: Sequence[dict], eval_rows: Sequence[dict]) -> float:
    """Accuracy of always answering the train split's most frequent label."""
    majority = Counter(row["label"] for row in train_rows).most_common(1)[0][0]
    return sum(row["label"] == majority for row in eval_rows) / len(eval_rows)


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    from forgetting.scoring.intervals import rate

    correct = sum(int(label == prediction) for label, prediction in zip(labels, predictions))
    return {**rate("accuracy", correct, len(labels)),
            "f1": float(f1_score(labels, predictions, average="binary" if len(set(labels)) <= 2 else "macro")),
            "f1_macro": float(f1_score(labels, predictions, average="macro"))}


def score_classifier(model, tokenizer, rows: Sequence[dict], batch_size: int, precision: str,
                     prefix: str = "") -> dict[str, float]:
    """``classification_metrics`` of ``model`` on ``rows``, named ``<prefix>_<metric>`` with a prefix."""
    found = classification_metrics([row["label"] for row in rows],
                                   predict(model, tokenizer, rows, batch_size, precision))
    return {f"{prefix}_{name}" if prefix else name: value for name, value in found.items()}
