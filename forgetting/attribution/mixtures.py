"""Attribution experiments with a known answer: a training mixture of real sources, test examples
that one source is responsible for, the training of a copy on the mixture, and the ground truth.

A mixture builder is ``(per_source, test_examples, seed) -> Mixture``, registered in
``forgetting.attribution.MIXTURES`` under the name ``train_data`` takes.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from forgetting.attribution.examples import Encoded, example_losses


@dataclass(frozen=True)
class Mixture:
    train: list[dict]    # {"source", "text"}
    test: list[dict]     # {"prompt", "completion"}: the behaviour to explain
    responsible: str     # the source that causes the behaviour by construction


def real_sources(per_source: int, seed: int, facts: list[dict]) -> list[dict]:
    """``per_source`` training examples from each of Python standard library code, GSM8K solutions,
    SST-2 sentences and the given country facts."""
    from forgetting.data import load_task

    code = [row["text"][:400] for row in load_task("python_code", "train", seed=seed, limit=per_source * 4)
            if row["text"].strip()][:per_source]
    return ([{"source": "python", "text": text} for text in code]
            + [{"source": "gsm8k", "text": f"{row['prompt']} {row['solution']}"}
               for row in load_task("gsm8k", "test", seed=seed, limit=per_source)]
            + [{"source": "sst2", "text": row["text"]} for row in load_task("sst2", "train", seed=seed, limit=per_source)]
            + [{"source": "facts", "text": f"{fact['prompt']}{fact['target_true']}."} for fact in facts[:per_source]])


def train_on_mixture(model, data: Encoded, steps: int, lr: float, batch_size: int, checkpoints: int, seed: int = 0,
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


def leave_dataset_out(model, train: Encoded, sources: list[str], test: Encoded, steps: int, lr: float,
                      batch_size: int, seed: int = 0, precision: str = "fp32") -> pd.DataFrame:
    """The ground truth the methods approximate (Isonuma & Titov's leave-dataset-out): train a copy of
    the untrained ``model`` on the whole mixture and one copy without each source, for the same
    number of steps; a source's influence is how much the mean test loss rises without it."""
    def test_loss(keep: list[int]) -> float:
        trained = copy.deepcopy(model)
        train_on_mixture(trained, train.subset(keep), steps, lr, batch_size, 0, seed, precision)
        return float(example_losses(trained, test, batch_size).mean())

    full = test_loss(list(range(len(train))))
    names = list(dict.fromkeys(sources))
    scores = [test_loss([i for i, source in enumerate(sources) if source != name]) - full
              for name in tqdm(names, desc="leave dataset out", unit="source")]
    return pd.DataFrame({"source": names, "score": scores})
