"""A model spec loaded as a sequence classifier (``AutoModelForSequenceClassification``).

A causal-LM checkpoint becomes a classifier with a new, seeded linear head (``score``) over the
last non-padding token; a classifier checkpoint loads as it was saved. Llama classifiers find
that token through ``config.pad_token_id``, so it is always set.
"""
from __future__ import annotations

import json
from pathlib import Path

from forgetting.errors import UsageError


def is_classifier(location: str) -> bool:
    """Whether the checkpoint directory holds a sequence classifier (by its saved architecture)."""
    config = Path(location) / "config.json"
    if not config.exists():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


def load_classifier(spec: str, num_labels: int = 2, seed: int = 0, *, dtype=None):
    """``(model, tokenizer)`` in eval mode on the stage's device; a new head is initialised from ``seed``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import forgetting.models.variable_llama  # noqa: F401 - registers pruned (variable-size) Llamas
    from forgetting.device import current
    from forgetting.models import resolve_model
    from forgetting.models.attention import use_on

    location = resolve_model(spec)
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        location, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id, dtype=dtype or torch.float32)
    if model.config.num_labels != num_labels:
        raise UsageError(f"model={spec!r} classifies into {model.config.num_labels} labels, the task has {num_labels}")
    return use_on(model).to(current().device).eval(), tokenizer
