"""A pruning criterion written as a user would add one: this file plus one registration line.

``keep-first`` keeps the lowest-numbered neurons of every layer (``reverse`` keeps the highest); its
one option comes from the prune stage's ``seed`` field, only so that the test can see a config field
reach a criterion's options.
"""
import torch

from forgetting.errors import UsageError
from forgetting.pruning.scores import NeuronScores, mlp_widths


def check_options(*, reverse: bool = False) -> None:
    if not isinstance(reverse, bool):
        raise UsageError(f"reverse={reverse!r} is not true or false")


def stage_options(config) -> dict:
    return {"reverse": config.seed % 2 == 1}


def score_neurons(model, batches=None, *, seed: int = 0, reverse: bool = False) -> NeuronScores:
    scores = [torch.arange(width, 0, -1, dtype=torch.float32) for width in mlp_widths(model)]
    return NeuronScores(scores=[s.flip(0) for s in scores] if reverse else scores, model=model)
