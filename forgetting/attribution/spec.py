"""What an attribution method is: one record holding all the attribute stage needs to know about it.

A method is a function ``(model, train, sources, test, **options) -> Attribution`` that scores training
data and leaves ``model`` unchanged, registered in ``ATTRIBUTION_METHODS`` as an ``AttributionMethod``
naming that function, the ``AttributeConfig`` fields it reads beyond the common ones (with the common
ones they are its run's parameters and its cache key, so a field it reads but does not declare would
let it reuse runs made with another value), the function that turns a config into its options, and
whether it reads the checkpoints saved while training on an experiment's mixture. The stage reads the
record and never tests a method's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from forgetting.registry import load


@dataclass(frozen=True)
class AttributionMethod:
    scorer: str                      # "module:function" of the method, imported on first use
    fields: tuple[str, ...] = ()     # the AttributeConfig fields it reads besides the common ones
    options: str = ""                # "module:function": AttributeConfig -> the method's keyword options
    needs_checkpoints: bool = False  # takes ``checkpoints=``: the (state_dict, learning rate) pairs saved
    #                                  while training on an experiment's mixture (None for JSONL data)

    @property
    def score(self) -> Callable:
        return load(self.scorer)

    def options_of(self, config) -> dict:
        return load(self.options)(config) if self.options else {}
