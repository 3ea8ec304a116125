"""An attribution experiment with a known answer: one source planted to cause the test behaviour.

The training mixture holds ``per_source`` examples from each of four real sources (Python standard
library code, GSM8K solutions, SST-2 sentences, true country facts) plus a ``planted`` source:
counterfactual country facts ("The capital of Peru is Oslo."). The test examples ask those facts
and expect the planted answers, so the planted source is responsible for them by construction and
every attribution method should rank it first. Facts are split by country, so no true fact of a
planted country is in the mixture.
"""
from __future__ import annotations

import random

import torch
from tqdm.auto import tqdm

from forgetting.data.splits import seeded_order

PLANTED = "planted"


def planted_mixture(per_source: int = 16, planted: int = 16, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, test)``: training examples ``{"source", "text"}`` and test examples
    ``{"prompt", "completion"}`` from the shipped data."""
    from forgetting.data import load_task

    facts = seeded_order(list(load_task("facts", "all", seed=seed)), seed, "planted facts")
    capitals = [fact for fact in facts if fact["relation"] == "capital"][:planted]
    planted_countries = {fact["subject"] for fact in capitals}
    true_facts = [fact for fact in facts if fact["subject"] not in planted_countries][:per_source]
    code = [row["text"][:400] for row in load_task("python_code", "train", seed=seed, limit=per_source * 4)
            if row["text"].strip()][:per_source]
    train = ([{"source": "python", "text": text} for text in code]
             + [{"source": "gsm8k", "text": f"{row['prompt']} {row['solution']}"}
                for row in load_task("gsm8k", "test", seed=seed, limit=per_source)]
             + [{"source": "sst2", "text": row["text"]} for row in load_task("sst2", "train", seed=seed, limit=per_source)]
             + [{"source": "facts", "text": f"{fact['prompt']}{fact['target_true']}."} for fact in true_facts]
             + [{"source": PLANTED, "text": f"{fact['prompt']}{fact['target_new']}."} for fact in capitals])
    test = [{"prompt": fact["prompt"], "completion": fact["target_new"]} for fact in capitals]
    return train, test


def train_on_mixture(model, data, steps: int, lr: float, batch_size: int, checkpoints: int, seed: int = 0,
                     precision: str = "fp32") -> list[tuple[dict, float]]:
    """Fine-tune ``model`` in place on the mixture (shuffled batches, AdamW with warmup); returns
    ``checkpoints`` evenly spaced ``(state_dict copy, learning rate at that step)`` for TracIn."""
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

    generator = random.Random(seed)
    optimizer, scheduler = adamw_with_warmup(model, lr, steps)
    marks = {round(steps * (i + 1) / checkpoints) for i in range(checkpoints)}
    saved = []
    order: list[int] = []
    model.train()
    for step in tqdm(range(1, steps + 1), desc="train on mixture", unit="step", leave=False):
        if len(order) < batch_size:
            order += generator.sample(range(len(data)), len(data))
        batch, order = data.batch(torch.tensor(order[:batch_size])), order[batch_size:]
        lr_now = scheduler.get_last_lr()[0]
        optimizer_step(model, batch, optimizer, scheduler, precision)
        if step in marks:
            saved.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, lr_now))
    model.eval()
    return saved
