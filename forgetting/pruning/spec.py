"""What a pruning criterion is: one record holding all the prune stage needs to know about it.

A criterion is a module with ``score_neurons(model, batches, *, seed, **options) -> NeuronScores`` and
``check_options(**options)``, registered in ``PRUNING_METHODS`` as a ``PruningCriterion`` naming that
scorer, the ``PruneConfig`` fields it reads (they enter the stage's cache key and its run's parameters),
the function that turns those fields into its options, and the models it applies to. The stage reads the
record and never tests a criterion's name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from forgetting.registry import load


@dataclass(frozen=True)
class PruningCriterion:
    scorer: str                      # "module:function" of its score_neurons, imported on first use
    fields: tuple[str, ...] = ()     # the PruneConfig fields it alone reads (the stage reads the others)
    options: str = ""                # "module:function": PruneConfig -> the scorer's keyword options
    language_model: bool = True      # scores a causal LM's neurons on Python code (the unlearning study)
    classifier: bool = False         # prunes the selective study's sequence classifiers
    weight_scorer: str = ""          # "module:function": (model, statistics, seed) -> one score per weight
    #                                  (granularity=weight; '' = neurons only)
    needs_statistics: bool = False   # reads the fine-tuning statistics saved beside a classifier

    @property
    def score(self) -> Callable:
        return load(self.scorer)

    @property
    def check(self) -> Callable:
        """The scorer module's ``check_options``."""
        return importlib.import_module(self.scorer.partition(":")[0]).check_options

    @property
    def weight_level(self) -> bool:
        return bool(self.weight_scorer)

    def score_weights(self, model, statistics=None, seed: int = 0):
        """One score per prunable weight, shaped like it and on its device; higher = more important."""
        return load(self.weight_scorer)(model, statistics, seed)

    def options_of(self, config) -> dict:
        return load(self.options)(config) if self.options else {}
