"""The ``train`` stage: continued causal-LM training on Python code, with registered checkpoints.

Checkpoints at step 0, every ``checkpoint_every`` steps and at the end are logged, registered
(tag ``step``, alias ``step-<n>``) and scored by held-out Python loss; the run's tag
``forgetting.checkpoints`` maps each step to its ``models:/name/version``. A killed stage resumes from
its last checkpoint's local state and registers no version twice.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import mlflow
import torch
from tqdm.auto import tqdm

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.device import DEVICE_HELP, GPUS_HELP, PRECISIONS

CHECKPOINTS_TAG = "forgetting.checkpoints"  # JSON {step: "models:/name/version"}


@dataclass(frozen=True)
class TrainConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec to train (e.g. models:/name/version)"})
    steps: int = field(default=200, metadata={"help": "optimizer steps"})
    checkpoint_every: int = field(default=50, metadata={"help": "steps between checkpoints, in [1, steps]"})
    lr: float = field(default=5e-5, metadata={"help": "peak learning rate (AdamW, linear warmup and decay)"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "fraction of steps spent warming up"})
    batch_size: int = field(default=4, metadata={"help": "blocks per step"})
    block_size: int = field(default=256, metadata={"help": "tokens per block"})
    eval_blocks: int = field(default=16, metadata={"help": "held-out Python-code blocks for the loss"})
    precision: str = field(default="bf16-autocast", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    gpus: int = field(default=1, metadata={"help": GPUS_HELP})
    seed: int = field(default=0, metadata={"help": "seed of the corpus split and order"})
    register_as: str = field(default="", metadata={"help": "registered model name ('' = <model>-python)"})

    def validate(self) -> None:
        check_range("steps", self.steps, 1)
        check_range("checkpoint_every", self.checkpoint_every, 1, self.steps)
        check_range("lr", self.lr, 0, low_open=True)
        check_range("warmup_fraction", self.warmup_fraction, 0, 1, high_open=True)
        for name in ("batch_size", "block_size", "eval_blocks"):
            check_range(name, getattr(self, name), 1)
        check_choice("precision", self.precision, PRECISIONS)

    def model_name(self) -> str:
        from forgetting.tracking.checkpoints import registered_name

        return self.register_as or f"{registered_name(self.model)}-python"

    def checkpoint_steps(self) -> list[int]:
        return sorted({0, *range(self.checkpoint_every, self.steps + 1, self.checkpoint_every), self.steps})


def train_model(config: TrainConfig, lineage: dict, run) -> dict[str, float]:
    """Inside the active run: train, checkpoint, register; resume from a killed attempt's state.

    A tracking server lost for longer than MLflow's retries stops the stage with the local
    checkpoint's folder and the command that resumes from it."""
    from forgetting.backends.commands import rerun_command
    from forgetting.tracking.retry import on_server_loss
    from forgetting.tracking.runs import TAG
    from forgetting.training.resume import state_dir

    run = mlflow.get_run(run.info.run_id)
    key = run.data.tags[f"{TAG}cache_key"]
    directory = state_dir(key)
    with on_server_loss(directory, rerun_command("train", config, lineage["study"])):
        return _train(config, lineage, run, key, directory)


def _train(config: TrainConfig, lineage: dict, run, key: str, directory) -> dict[str, float]:
    from forgetting.models import load_model, resolve_model
    from forgetting.tracking import log_checkpoint
    from forgetting.tracking.checkpoints import version_by_key
    from forgetting.tracking.runs import continue_history, previous_attempt
    from forgetting.training.corpus import lm_batches, python_code_blocks
    from forgetting.training.loss import heldout_loss
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step
    from forgetting.training.resume import clear_state, load_state, save_state

    state = load_state(directory)
    model, tokenizer = load_model(str(state[0]) if state else config.model)
    train_blocks = python_code_blocks(tokenizer, "train", config.block_size, config.steps * config.batch_size,
                                      config.seed)
    held_out = python_code_blocks(tokenizer, "eval", config.block_size, config.eval_blocks, config.seed)
    optimizer, scheduler = adamw_with_warmup(model, config.lr, config.steps, config.warmup_fraction)
    start = 0
    if state:
        optimizer.load_state_dict(state[1]["optimizer"])
        scheduler.load_state_dict(state[1]["scheduler"])
        torch.set_rng_state(state[1]["rng"])
        start = state[1]["step"]
    if previous := previous_attempt(run, lineage["study"]):
        continue_history(previous, run, ["train_loss", "heldout_loss"], start)

    def checkpoint(step: int, folder) -> None:
        loss = heldout_loss(model, lm_batches(held_out, config.batch_size), config.precision)
        mlflow.log_metric("heldout_loss", loss, step=step)
        log_checkpoint(folder, f"checkpoints/step-{step:06d}", register_as=config.model_name(),
                       alias=f"step-{step}", version_key=f"{key}:{step}",
                       tags={**lineage, "stage": "train", "step": step})
        print(f"  step {step}: held-out Python loss {loss:.4f}")

    checkpoints = config.checkpoint_steps()
    if start in checkpoints:
        checkpoint(start, state[0] if state else resolve_model(config.model))
    trained, seconds = 0, 0.0
    for step in tqdm(range(start, config.steps), desc="train", unit="step", initial=start, total=config.steps):
        batch = _batch(train_blocks, step, config.batch_size)
        began = time.perf_counter()
        loss = optimizer_step(model, batch, optimizer, scheduler, config.precision)
        seconds += time.perf_counter() - began
        trained += batch["input_ids"].numel()
        mlflow.log_metric("train_loss", loss, step=step + 1)
        if step + 1 in checkpoints:
            checkpoint(step + 1, save_state(directory, model, tokenizer, optimizer, scheduler, step + 1))
    metrics = {"tokens_per_second": trained / seconds if seconds else 0.0, "train_tokens": trained}
    mlflow.log_metrics(metrics)
    versions = {step: version_by_key(config.model_name(), f"{key}:{step}") for step in checkpoints}
    mlflow.set_tag(CHECKPOINTS_TAG, json.dumps({s: f"models:/{v.name}/{v.version}" for s, v in versions.items()}))
    clear_state(directory)
    return metrics


def _batch(blocks, step: int, batch_size: int) -> dict:
    """The step's blocks, cycling through the corpus (a pure function of the step, so resuming
    replays the same order)."""
    from forgetting.training.corpus import lm_batches

    rows = torch.arange(step * batch_size, (step + 1) * batch_size) % len(blocks)
    return next(lm_batches(blocks[rows], batch_size))
