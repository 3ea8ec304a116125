"""What an evaluation suite is: one record holding all the evaluate stage needs to know about it.

A suite is a function ``(EvaluateConfig) -> metrics`` that measures a model and logs its metrics in the
stage's MLflow run, registered in ``EVALUATION_SUITES`` as an ``EvaluationSuite`` naming that function,
the config fields it reads beyond the common ones (with the common ones they are its run's parameters and
its cache key, so a field it reads but does not declare would let it reuse runs made with another value),
its checks of a config, and the line the stage prints from its metrics. The stage reads the record and
never tests a suite's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from forgetting.registry import load


@dataclass(frozen=True)
class EvaluationSuite:
    runner: str = ""               # "module:function": EvaluateConfig -> metrics, inside the active run
    fields: tuple[str, ...] = ()   # the EvaluateConfig fields it reads besides the common ones
    checker: str = ""              # "module:function": EvaluateConfig -> None, raising UsageError before any run
    summarizer: str = ""           # "module:function": (EvaluateConfig, metrics) -> the stage's one-line summary
    in_all: bool = False           # one of the suites suite=all runs (the forgetting study's evaluation)
    combined: bool = False         # suite=all itself: runs every in_all suite, with their fields, checks and lines

    @property
    def run(self) -> Callable[..., dict[str, float]]:
        return load(self.runner)

    def check(self, config) -> None:
        if self.checker:
            load(self.checker)(config)

    def summary(self, config, metrics: dict) -> str:
        return load(self.summarizer)(config, metrics) if self.summarizer else f"{config.suite}: {len(metrics)} metrics"
