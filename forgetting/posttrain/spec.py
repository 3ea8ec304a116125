"""What a post-training method is: one record holding all the stages need to know about it.

A method's trainer is ``(model, tokenizer, data, config, work_dir) -> metrics``, registered in
``POSTTRAIN_METHODS`` as a ``PosttrainMethod`` naming that trainer, the collected data it learns from
and whose, whether it samples groups of responses per prompt, and the verl trainer that runs it on
``backend=cluster``. The posttrain stage, the forgetting grid and the verl backend read the record and
never test a method's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from forgetting.registry import load

COLLECTED = ("", "sft", "preferences")  # '' = none: the method builds its data from the domain itself
# Whose collected data: none, the start model's own, or a teacher's of the start model's family or another.
TEACHERS = ("", "start", "same-family", "cross-family")


@dataclass(frozen=True)
class PosttrainMethod:
    trainer: str              # "module:function" of its trainer, imported on first use
    collected: str = ""       # the collect artifact it trains on (COLLECTED)
    teacher: str = ""         # whose collect run that is (TEACHERS)
    grouped: bool = False     # samples num_generations responses per prompt, so a step holds whole groups
    verl_trainer: str = ""    # backend=cluster: the verl trainer that runs it ('' = local only)

    @property
    def train(self) -> Callable:
        return load(self.trainer)
