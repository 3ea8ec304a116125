"""The train stage's loop vs a plain transformers ``Trainer``, and dense vs 63%-pruned step time.

All in one run on the same machine, model and Python-code blocks, each side timed over the same
number of steps after warm-up steps:

1. tokens/s of ``forgetting.training.optimizer.optimizer_step`` (what ``train`` runs) against
   ``transformers.Trainer`` with the same batch, optimizer, schedule and precision;
2. the train loop's step time on the dense model against the model with 63% of its MLP neurons
   physically removed (random scores), next to the parameter ratio.

    python benchmarks/bench_train.py --steps 8 --warmup 2
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from forgetting.models import DEFAULT_MODEL, load_model
from forgetting.device import PRECISIONS
from forgetting.models.weights import count_parameters
from forgetting.pruning import prune
from forgetting.training.corpus import lm_batches, python_code_blocks
from forgetting.training.optimizer import adamw_with_warmup, optimizer_step


def loop_seconds(model, blocks, batch_size: int, steps: int, warmup: int, precision: str, lr: float) -> float:
    """Seconds per step of the train stage's loop, after ``warmup`` steps."""
    optimizer, scheduler = adamw_with_warmup(model, lr, steps + warmup)
    batches = list(lm_batches(blocks, batch_size))
    for step in range(warmup):
        optimizer_step(model, batches[step % len(batches)], optimizer, scheduler, precision)
    started = time.perf_counter()
    for step in range(warmup, warmup + steps):
        optimizer_step(model, batches[step % len(batches)], optimizer, scheduler, precision)
    return (time.perf_counter() - started) / steps


class StepClock(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.started, self.ended = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def trainer_seconds(model, blocks, batch_size: int, steps: int, warmup: int, precision: str, lr: float) -> float:
    """Seconds per step of ``transformers.Trainer`` on the same blocks (labels = inputs)."""
    dataset = Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, per_device_train_batch_size=batch_size, max_steps=steps + warmup,
            learning_rate=lr, lr_scheduler_type="linear", warmup_steps=int(0.1 * (steps + warmup)),
            weight_decay=0.0, max_grad_norm=1.0, bf16=precision == "bf16-autocast", use_cpu=True,
            save_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, seed=0)
        Trainer(model=model, args=arguments, train_dataset=dataset, callbacks=[clock]).train()
    return (clock.ended - clock.started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--precision", default="bf16-autocast", choices=PRECISIONS)
    parser.add_argument("--sparsity", type=float, default=0.63)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    blocks = python_code_blocks(tokenizer, "train", args.block_size, (args.steps + args.warmup) * args.batch_size)
    tokens_per_step = args.batch_size * args.block_size
    timed = dict(blocks=blocks, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                 precision=args.precision, lr=5e-5)
    ours = loop_seconds(copy.deepcopy(model), **timed)
    theirs = trainer_seconds(copy.deepcopy(model), **timed)
    pruned = prune(model, "random", None, args.sparsity).model
    smaller = loop_seconds(pruned, **timed)

    print(f"model {args.model}, batch {args.batch_size} x {args.block_size} tokens, {args.precision}, "
          f"{args.steps} timed steps after {args.warmup}")
    print(f"train loop   {tokens_per_step / ours:8.1f} tokens/s   ({ours:.2f} s/step)")
    print(f"HF Trainer   {tokens_per_step / theirs:8.1f} tokens/s   ({theirs:.2f} s/step)")
    print(f"train loop / Trainer throughput: {theirs / ours:.2f}x")
    ratio = count_parameters(pruned) / count_parameters(model)
    print(f"{args.sparsity:.0%} MLP neurons removed: step {smaller:.2f} s vs dense {ours:.2f} s -> "
          f"{ours / smaller:.2f}x faster, parameters x{ratio:.3f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
