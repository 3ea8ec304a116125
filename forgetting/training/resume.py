"""Resume state of a training stage: model, optimizer, scheduler and step in one local folder.

Registered checkpoints hold weights only (in the stage's ``checkpoint_dtype``); the fp32 weights and the
optimizer state (twice the weights) stay on the worker's disk under ``<home>/resume/<cache key>`` and are
deleted when the stage finishes. A state is written at every checkpoint but the last (whose weights are
registered straight from memory). A new state replaces the old one by renames, so a kill at any moment
leaves one complete state.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from forgetting.tracking import home

TRAINER_FILE = "trainer.pt"


def state_dir(cache_key: str) -> Path:
    return home() / "resume" / cache_key


def save_state(directory: Path, model, tokenizer, weights: dict, trainer_state: dict) -> Path:
    """Write the state (the model's full ``weights``, the optimizer/schedule/step ``trainer_state``);
    returns the folder of its HF checkpoint."""
    partial, previous = directory.with_name(directory.name + ".partial"), directory.with_name(directory.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial / "model", state_dict=weights)
    tokenizer.save_pretrained(partial / "model")
    torch.save(trainer_state, partial / TRAINER_FILE)
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    partial.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory / "model"


def load_state(directory: Path) -> tuple[Path, dict] | None:
    """``(model folder, trainer state)`` of the last complete state, or None."""
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / TRAINER_FILE).exists():
            return candidate / "model", torch.load(candidate / TRAINER_FILE, weights_only=True)
    return None


def clear_state(directory: Path) -> None:
    for suffix in ("", ".partial", ".old"):
        shutil.rmtree(directory.with_name(directory.name + suffix), ignore_errors=True)
