"""UnTrac, UnTrac-Inv and TracIn: each scores training data by its influence on the test loss.

Every method returns per-source scores (higher = more responsible for the test behaviour) and,
where it scores single examples, per-example scores; ``per_source`` of an example-level method is
the mean over the source's examples (``by_source``). Each takes only the options it reads; the
``*_options`` functions here turn an ``AttributeConfig`` into them (see ``forgetting.attribution``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from forgetting.attribution.examples import Encoded, example_losses
from forgetting.attribution.unlearn import unlearned_copy


@dataclass(frozen=True)
class Budget:
    """One gradient-ascent unlearning run: UnTrac's and UnTrac-Inv's options."""

    lr: float = 5e-5
    steps: int = 5
    batch_size: int = 8
    gradient_checkpointing: bool = False


@dataclass
class Attribution:
    per_source: pd.DataFrame            # source, score
    per_example: pd.DataFrame | None    # index, source, score


def _subset(data: Encoded, rows: list[int]) -> Encoded:
    index = torch.tensor(rows)
    return Encoded(data.input_ids[index], data.attention_mask[index], data.labels[index])


def by_source(sources: list[str], scores: torch.Tensor) -> Attribution:
    """Per-example scores and their mean per source."""
    examples = pd.DataFrame({"index": range(len(sources)), "source": sources, "score": scores.tolist()})
    per_source = examples.groupby("source", sort=True)["score"].mean().reset_index()
    return Attribution(per_source, examples)


def untrac(model, train: Encoded, sources: list[str], test: Encoded, budget: Budget) -> Attribution:
    """Unlearn each source in turn; its score is how much the mean test loss rises."""
    before = example_losses(model, test, budget.batch_size).mean()
    scores = {}
    for source in tqdm(sorted(set(sources)), desc="untrac", unit="source", leave=False):
        rows = [i for i, s in enumerate(sources) if s == source]
        unlearned = unlearned_copy(model, _subset(train, rows), budget.lr, budget.steps, budget.batch_size,
                                   budget.gradient_checkpointing)
        scores[source] = float(example_losses(unlearned, test, budget.batch_size).mean() - before)
        del unlearned
    return Attribution(pd.DataFrame({"source": list(scores), "score": list(scores.values())}), None)


def untrac_inv(model, train: Encoded, sources: list[str], test: Encoded, budget: Budget) -> Attribution:
    """Unlearn the test examples once; each training example scores by how much its loss rises."""
    before = example_losses(model, train, budget.batch_size)
    unlearned = unlearned_copy(model, test, budget.lr, budget.steps, budget.batch_size, budget.gradient_checkpointing)
    return by_source(sources, example_losses(unlearned, train, budget.batch_size) - before)


def tracin(model, train: Encoded, sources: list[str], test: Encoded, *, batch_size: int, lr: float,
           parameters: str = "", checkpoints: list[tuple[dict, float]] | None = None) -> Attribution:
    """TracIn-CP: ``sum_c lr_c * <grad loss(train_i), grad loss(test set)>`` over checkpoints given as
    ``(state_dict, learning rate)`` and loaded into one scratch copy (default: the model itself with
    ``lr``). Per-example gradients come from ``torch.func`` (``vmap`` over ``grad``), a batch
    at a time; ``parameters`` keeps the named parameters containing that string (all when empty)."""
    from forgetting.attribution.gradients import per_example_dot

    scratch = copy.deepcopy(model) if checkpoints else model
    scores = torch.zeros(len(train), device=scratch.device)
    for state, lr in tqdm(checkpoints or [(None, lr)], desc="tracin", unit="checkpoint", leave=False):
        if state is not None:
            scratch.load_state_dict(state)
        scores += lr * per_example_dot(scratch, train, test, batch_size, parameters)
    return by_source(sources, scores)


def unlearning_options(config) -> dict:
    return {"budget": Budget(config.unlearning_rate, config.unlearning_steps, config.batch_size,
                             config.gradient_checkpointing)}


def tracin_options(config) -> dict:
    """Without checkpoints (JSONL data) the model itself is the one checkpoint, weighted by the
    unlearning rate."""
    return {"batch_size": config.batch_size, "lr": config.unlearning_rate, "parameters": config.tracin_parameters}
