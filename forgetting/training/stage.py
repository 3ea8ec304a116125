"""The ``train`` stage: continued causal-LM training on Python code, with registered checkpoints.

Checkpoints at step 0, every ``checkpoint_every`` steps and at the end are logged, registered
(tag ``step``, alias ``step-<n>``) and scored by held-out Python loss; the run's tag
``forgetting.checkpoints`` maps each step to its ``models:/name/version``. A killed stage resumes from
its last checkpoint's local state and registers no version twice. Step 0 is the input model itself:
a reference to its stored copy when it is a registered model (no files of its own), else stored like
the others. ``checkpoint_dtype=bf16`` stores the weights as bfloat16 while the resume state keeps fp32
weights and the optimizer.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import mlflow
import torch
from tqdm.auto import tqdm

from forgetting.device import DEVICE_HELP, GPUS_HELP, PRECISIONS
from forgetting.errors import check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.tracking.checkpoints import CHECKPOINT_DTYPES
from forgetting.training.distributed import check_batch, check_parallel

CHECKPOINTS_TAG = "forgetting.checkpoints"  # JSON {step: "models:/name/version"}


@dataclass(frozen=True)
class TrainConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec to train (e.g. models:/name/version)"})
    steps: int = field(default=200, metadata={"help": "optimizer steps"})
    checkpoint_every: int = field(default=50, metadata={"help": "steps between checkpoints, in [1, steps]"})
    checkpoint_dtype: str = field(default="fp32", metadata={
        "help": "dtype of the registered checkpoints' weights: fp32, or bf16 (half the bytes; training keeps fp32 "
                "weights and its resume state stays fp32; step 0 of a registered model is its own stored copy)"})
    lr: float = field(default=5e-5, metadata={"help": "peak learning rate (AdamW, linear warmup and decay)"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "fraction of steps spent warming up"})
    batch_size: int = field(default=4, metadata={"help": "blocks per step"})
    block_size: int = field(default=256, metadata={"help": "tokens per block"})
    eval_blocks: int = field(default=16, metadata={"help": "held-out Python-code blocks for the loss"})
    precision: str = field(default="bf16-autocast", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    gpus: int = field(default=1, metadata={"help": GPUS_HELP})
    parallel: str = field(default="ddp", metadata={
        "help": "gpus > 1: ddp (a full copy on each GPU) or fsdp (parameters, gradients and optimizer state "
                "sharded over the GPUs, for a model that does not fit one)"})
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
        check_choice("checkpoint_dtype", self.checkpoint_dtype, CHECKPOINT_DTYPES)
        check_batch(self.batch_size, self.gpus)
        check_parallel(self.parallel, self.gpus, self.device)

    def model_name(self) -> str:
        from forgetting.tracking.checkpoints import registered_name

        return self.register_as or f"{registered_name(self.model)}-python"

    def checkpoint_steps(self) -> list[int]:
        return sorted({0, *range(self.checkpoint_every, self.steps + 1, self.checkpoint_every), self.steps})


def train_model(config: TrainConfig, lineage: dict, run) -> dict[str, float]:
    """Inside the active run: train, checkpoint, register; resume from a killed attempt's state.
    With ``gpus > 1`` the loop runs in that many torchrun processes (``train_process``).

    A tracking server lost for longer than MLflow's retries stops the stage with the local
    checkpoint's folder and the command that resumes from it."""
    from forgetting.backends.commands import rerun_command
    from forgetting.models import resolve_model
    from forgetting.tracking.retry import on_server_loss
    from forgetting.tracking.runs import TAG
    from forgetting.training.distributed import in_processes
    from forgetting.training.resume import state_dir

    run = mlflow.get_run(run.info.run_id)
    key = run.data.tags[f"{TAG}cache_key"]
    location = resolve_model(config.model)
    with on_server_loss(state_dir(key), rerun_command("train", config, lineage["study"])):
        if config.gpus > 1:
            return in_processes("forgetting.training.stage:train_process", config, key, lineage=lineage,
                                location=location)
        return _train(config, location, state_dir(key), Checkpointer(config, lineage, run, key))


def train_process(job: dict) -> None:
    """One torchrun process of a data-parallel ``train``: rank 0 logs to the job's run."""
    from forgetting.training.distributed import is_main
    from forgetting.training.resume import state_dir

    config = TrainConfig(**job["config"])
    checkpointer = Checkpointer(config, job["lineage"], mlflow.get_run(job["run_id"]), job["key"]) if is_main() else None
    _train(config, job["location"], state_dir(job["key"]), checkpointer)


class Checkpointer:
    """Rank 0's bookkeeping: the held-out loss logged, checkpoints logged and registered, the curves of a
    killed attempt."""

    def __init__(self, config: TrainConfig, lineage: dict, run, key: str):
        self.config, self.lineage, self.run, self.key = config, lineage, run, key

    def resume(self, start: int) -> None:
        from forgetting.tracking.runs import continue_history, previous_attempt

        if previous := previous_attempt(self.run.info.run_id):
            # the loss of step ``start`` was logged before its state; its held-out loss is logged again
            continue_history(previous, self.run, {"train_loss": start + 1, "heldout_loss": start})

    def __call__(self, step: int, loss: float, folder=None, model=None, tokenizer=None, weights=None) -> None:
        """Log ``loss`` and register step ``step``'s checkpoint: the ``folder`` it is in (the input model's at
        step 0, a resume state's), or ``model`` with the full state dict ``weights`` and ``tokenizer``, written
        once in ``checkpoint_dtype``."""
        from forgetting.tracking import log_checkpoint
        from forgetting.tracking.checkpoints import is_tracking_uri, log_model

        mlflow.log_metric("heldout_loss", loss, step=step)
        options = dict(artifact_path=f"checkpoints/step-{step:06d}", register_as=self.config.model_name(),
                       alias=f"step-{step}", version_key=f"{self.key}:{step}", dtype=self.config.checkpoint_dtype,
                       tags={**{k: v for k, v in self.lineage.items() if k != "step"}, "stage": "train",
                             "step": step})
        if folder is None:
            log_model(model, tokenizer, weights=weights, **options)
        else:
            # step 0's folder is the input model's own: a reference to its stored copy when it is in the registry
            # (stored once, as it is), else stored in checkpoint_dtype like the later ones
            if step == 0 and is_tracking_uri(self.config.model):
                options["dtype"] = None
            log_checkpoint(folder, **options)
        print(f"  step {step}: held-out Python loss {loss:.4f}")

    def finish(self, checkpoints: list[int]) -> None:
        from forgetting.tracking.checkpoints import version_by_key

        name = self.config.model_name()
        versions = {step: version_by_key(name, f"{self.key}:{step}") for step in checkpoints}
        mlflow.set_tag(CHECKPOINTS_TAG, json.dumps({s: f"models:/{v.name}/{v.version}" for s, v in versions.items()}))


def _train(config: TrainConfig, location: str, directory, checkpointer: Checkpointer | None) -> dict[str, float]:
    """Every rank: the training loop (DDP or FSDP through accelerate when there are several processes);
    ``checkpointer`` is rank 0's, None on the others."""
    from forgetting.device import autocast, on_device
    from forgetting.models import load_model
    from forgetting.training.corpus import lm_batches, python_code_blocks
    from forgetting.training.distributed import accelerator as make_accelerator
    from forgetting.training.distributed import own_share, peak_usage
    from forgetting.training.loss import heldout_loss
    from forgetting.training.optimizer import adamw_with_warmup
    from forgetting.training.resume import clear_state, load_state, save_state

    accelerator = make_accelerator(config.parallel)
    state = load_state(directory)
    model, tokenizer = load_model(str(state[0]) if state else location)
    device = model.device
    train_blocks = python_code_blocks(tokenizer, "train", config.block_size, config.steps * config.batch_size,
                                      config.seed)
    held_out = python_code_blocks(tokenizer, "eval", config.block_size, config.eval_blocks, config.seed)
    optimizer, scheduler = adamw_with_warmup(model, config.lr, config.steps, config.warmup_fraction)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    start = _restore(state, wrapped, optimizer.optimizer, scheduler)

    def checkpoint(step: int, folder=None, weights=None) -> None:  # every rank: FSDP's forward needs them all
        loss = heldout_loss(wrapped, lm_batches(held_out, config.batch_size), config.precision, device)
        if checkpointer:
            checkpointer(step, loss, folder, model, tokenizer, weights)
        accelerator.wait_for_everyone()

    checkpoints = config.checkpoint_steps()
    if checkpointer:
        checkpointer.resume(start)
    if start in checkpoints:
        checkpoint(start, state[0] if state else location)
    trained, seconds = 0, 0.0
    for step in tqdm(range(start, config.steps), desc="train", unit="step", initial=start, total=config.steps,
                     disable=not accelerator.is_main_process):
        batch = own_share(_batch(train_blocks, step, config.batch_size))
        began = time.perf_counter()
        wrapped.train()
        with autocast(config.precision, device):
            loss = wrapped(**on_device(batch, device)).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(wrapped.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss = accelerator.reduce(loss.detach(), "mean").item()
        seconds += time.perf_counter() - began
        trained += batch["input_ids"].numel() * accelerator.num_processes
        if checkpointer:
            mlflow.log_metric("train_loss", loss, step=step + 1)
        if step + 1 in checkpoints:
            last = step + 1 == config.steps
            weights, trainer_state = _full_state(wrapped, optimizer.optimizer, scheduler, step + 1,
                                                 with_optimizer=not last)
            # no state after the last step: its weights go straight to the registry, and a kill before they are
            # registered resumes from the state before (the same batches, so the same weights)
            if checkpointer and not last:
                save_state(directory, model, tokenizer, weights, trainer_state)
            checkpoint(step + 1, weights=weights)
    metrics = {"tokens_per_second": trained / seconds if seconds else 0.0, "train_tokens": trained,
               "processes": accelerator.num_processes, **peak_usage(accelerator)}
    if checkpointer:
        mlflow.log_metrics(metrics)
        checkpointer.finish(checkpoints)
        clear_state(directory)
    return metrics


FULL_STATE = {"full_state_dict": True}  # whole tensors, whatever the sharding: a state any rank count loads


def _full_state(wrapped, optimizer, scheduler, step: int, with_optimizer: bool = True) -> tuple[dict, dict]:
    """Every rank: the model's and (``with_optimizer``) the optimizer's full state dicts (gathered onto rank 0's
    CPU; empty on the others), keyed by parameter name, so one, several DDP or FSDP processes resume from it."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    options = StateDictOptions(**FULL_STATE, cpu_offload=True)
    return get_model_state_dict(wrapped, options=options), {
        "optimizer": get_optimizer_state_dict(wrapped, optimizer, options=options) if with_optimizer else None,
        "scheduler": scheduler.state_dict(), "step": step, "rng": torch.get_rng_state()}


def _restore(state, wrapped, optimizer, scheduler) -> int:
    """The step to start from: 0, or the saved state's step with its optimizer and schedule restored."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not state:
        return 0
    if state[1]["optimizer"] is not None:
        set_optimizer_state_dict(wrapped, optimizer, state[1]["optimizer"], options=StateDictOptions(**FULL_STATE))
    scheduler.load_state_dict(state[1]["scheduler"])
    torch.set_rng_state(state[1]["rng"])
    return state[1]["step"]


def _batch(blocks, step: int, batch_size: int) -> dict:
    """The step's global batch, cycling through the corpus (a pure function of the step, so resuming
    with any number of processes replays the same order)."""
    from forgetting.training.corpus import lm_batches

    rows = torch.arange(step * batch_size, (step + 1) * batch_size) % len(blocks)
    return next(lm_batches(blocks[rows], batch_size))
