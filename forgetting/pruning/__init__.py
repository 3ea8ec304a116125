"""MLP-neuron pruning: score every neuron, keep the best, physically remove the rest.

A pruning method is a module with two functions, registered by name in ``PRUNING_METHODS`` as a
``PruningCriterion`` (``forgetting.pruning.spec``: its fields, options and the models it applies to):

- ``score_neurons(model, batches, *, seed, **options) -> NeuronScores``: one score per MLP
  neuron per layer (higher = more important) and the model to prune, without modifying ``model``;
- ``check_options(**options)``: validate the options without doing any work.

The selective study's criteria (magnitude, movement, gradient, combined, random) also score single
weights for unstructured pruning (their spec's ``weight_scorer``; ``score_weights`` below), selected by
``forgetting.pruning.weights`` and applied as masks by ``forgetting.models.weights``.

``prune`` chains scoring, selection and removal; ``check_pruning`` validates a whole request up
front so an entry point can fail before it creates a run.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from forgetting.errors import UsageError
from forgetting.registry import Registry
from forgetting.pruning.remove import (LayerCount, check_selection, counts_as_metrics, layer_counts, mask_neurons,
                                       remove_neurons, select_neurons)
from forgetting.pruning.scores import NeuronScores, mlp_widths
from forgetting.pruning.spec import PruningCriterion

PRUNING_METHODS = Registry("method")
PRUNING_METHODS.register("random", PruningCriterion("forgetting.pruning.random_scores:score_neurons",
                                                    classifier=True,
                                                    weight_scorer="forgetting.pruning.random_scores:score_weights"))
PRUNING_METHODS.register("attribution", PruningCriterion(
    "forgetting.pruning.attribution:score_neurons", options="forgetting.pruning.attribution:stage_options"))
PRUNING_METHODS.register("tuneprune", PruningCriterion(
    "forgetting.pruning.tuneprune:score_neurons",
    fields=("l1_lambda", "tuneprune_steps", "tuneprune_lr", "tuneprune_penalty_lr"),
    options="forgetting.pruning.tuneprune:stage_options"))
for _criterion in ("magnitude", "movement", "gradient", "combined"):
    PRUNING_METHODS.register(_criterion, PruningCriterion(
        f"forgetting.pruning.criteria:{_criterion}_neurons", language_model=False, classifier=True,
        weight_scorer=f"forgetting.pruning.criteria:{_criterion}_weights", needs_statistics=_criterion != "magnitude"))


def check_method_options(method: str, **options) -> None:
    """Unknown method, unknown option or out-of-range option value: ``UsageError``."""
    check_options = PRUNING_METHODS.get(method).check
    accepted = list(inspect.signature(check_options).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(f"pruning method {method!r} does not take {', '.join(unknown)}; "
                         f"its options: {', '.join(accepted) or 'none'}")
    check_options(**options)


def score_weights(method: str, model: nn.Module, statistics=None, seed: int = 0):
    """``method``'s score of every prunable weight (unstructured pruning)."""
    criterion = PRUNING_METHODS.get(method)
    if not criterion.weight_level:
        raise UsageError(f"method={method!r} has no weight-level scores; use one of: "
                         f"{', '.join(PRUNING_METHODS.names_where(lambda spec: spec.weight_level))}")
    return criterion.score_weights(model, statistics, seed)


def check_pruning(method: str, sparsity: float, scope: str = "layer", **options) -> None:
    check_method_options(method, **options)
    check_selection(sparsity, scope)


def score_neurons(method: str, model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]] | None, *,
                  seed: int = 0, **options) -> NeuronScores:
    check_method_options(method, **options)
    return PRUNING_METHODS.get(method).score(model, batches, seed=seed, **options)


@dataclass
class Pruned:
    """A pruned model and what went into it."""

    model: nn.Module
    keep: list[torch.Tensor]
    counts: list[LayerCount]
    scores: NeuronScores


def prune(model: nn.Module, method: str, batches: Iterable[Mapping[str, torch.Tensor]] | None, sparsity: float, *,
          scope: str = "layer", seed: int = 0, **options) -> Pruned:
    """Score with ``method``, keep the top ``1 - sparsity`` per layer (or globally), remove the rest.

    The neurons are removed from ``NeuronScores.model``: the input model for ``random`` and
    ``attribution``, the group-lasso-tuned copy for ``tuneprune``. ``model`` is not modified.
    """
    check_selection(sparsity, scope)
    scores = score_neurons(method, model, batches, seed=seed, **options)  # checks method and options
    keep = select_neurons(scores.scores, sparsity, scope)
    return Pruned(model=remove_neurons(scores.model, keep), keep=keep,
                  counts=layer_counts(scores.model, keep), scores=scores)


__all__ = ["PRUNING_METHODS", "LayerCount", "NeuronScores", "Pruned", "PruningCriterion", "check_method_options", "check_pruning",
           "counts_as_metrics", "layer_counts", "mask_neurons", "mlp_widths", "prune", "remove_neurons",
           "score_neurons", "select_neurons"]
