"""The studies, declared once: each is one MLflow experiment of its name holding the runs of its stages.

A run of an entry point belongs to the study its config names (``study``: ``analyze``, ``launch``, and a
classifier's ``prune`` and ``finetune``, which belong to the study with ``classifiers``), else to the
first study listing the entry point. ``FORGETTING_STUDY`` overrides both for a run started by hand.
``./run`` files the ``mlflow run`` launcher under that study (``python -m forgetting.tracking``), and
the stages file their runs there, so a run's experiment is its study in the MLflow UI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from forgetting.errors import check_choice
from forgetting.registry import Registry


@dataclass(frozen=True)
class Study:
    description: str
    entry_points: tuple[str, ...]  # the entry points whose runs it holds unless their config names another study
    classifiers: bool = False      # holds the stages of sequence classifiers (the selective study)


STUDIES = Registry("study")
STUDIES.register("foundation", Study("models outside the registry and their evaluations", ("evaluate",)))
STUDIES.register("unlearning", Study("prune -> train on Python code -> fine-tune, per pruning method and sparsity",
                                     ("main", "prune", "train", "finetune", "analyze", "launch")))
STUDIES.register("forgetting", Study("collect -> post-train -> evaluate, per method, domain and start",
                                     ("collect", "posttrain")))
STUDIES.register("selective", Study("pruning and distillation of sequence classifiers", ("distill",),
                                    classifiers=True))
STUDIES.register("attribution", Study("which training source a behaviour comes from", ("attribute",)))


def study_names() -> list[str]:
    return STUDIES.in_registration_order()


def check_study(name: str) -> None:
    check_choice("study", name, study_names())


def classifier_study() -> str:
    return STUDIES.names_where(lambda study: study.classifiers)[0]


def study_of(entry_point: str, config=None) -> str:
    """The study a run of ``entry_point`` with ``config`` belongs to (see the module docstring)."""
    chosen = os.environ.get("FORGETTING_STUDY") or getattr(config, "study", None)
    if chosen:
        check_study(chosen)
        return chosen
    return next(name for name in STUDIES.in_registration_order() if entry_point in STUDIES.get(name).entry_points)
