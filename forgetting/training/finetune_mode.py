"""What a fine-tune mode is: one record holding all the finetune stage needs to know about it.

A mode is a class built from a ``FinetuneConfig`` that runs the sweep's trials: ``load()`` the model,
``evaluate(model) -> accuracy`` on its ``eval_rows``, ``train(model, lr, after_epoch)`` in place,
``keep(trial, model, score)`` what it wants of a trial and ``finish(base, best_trial) -> metrics``. It is
registered in ``FINETUNE_MODES`` as a ``FinetuneMode`` naming that class, its check of the task, its
default learning-rate grid and whether it fine-tunes a sequence classifier. ``FinetuneConfig`` and the
sweep read the record and never test a mode's name.
"""
from __future__ import annotations

from dataclasses import dataclass

from forgetting.registry import load


@dataclass(frozen=True)
class FinetuneMode:
    runner: str               # "module:Class": FinetuneConfig -> the trials' runner, imported on first use
    task_check: str           # "module:function": task -> None, raising UsageError ("task=... is not one of: ...")
    default_lrs: str          # "module:function": task -> the grid of lrs='' (a tuple of learning rates)
    classifier: bool = False  # fine-tunes a sequence classifier: its sweep belongs to the classifiers' study

    @property
    def runner_class(self) -> type:
        return load(self.runner)

    def check_task(self, task: str) -> None:
        load(self.task_check)(task)

    def learning_rates(self, task: str) -> tuple[float, ...]:
        return tuple(load(self.default_lrs)(task))
