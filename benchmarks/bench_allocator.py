"""Step times with glibc's default malloc against ``keep_freed_host_memory`` (freed memory kept for reuse).

Each side runs in its own fresh process (the allocator setting lasts for a process), one after the other,
on the same model: seconds per step of the train stage's loop (Python-code blocks) and of answer
fine-tuning (CounterFact, 16 rows a batch), after warm-up steps. Prints both and their ratio.

    python benchmarks/bench_allocator.py --steps 6 --warmup 2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(kept: bool, model: str, steps: int, warmup: int, precision: str) -> dict[str, float]:
    """In this process: seconds per train and per fine-tuning step."""
    import torch

    from forgetting.data import load_task
    from forgetting.device import keep_freed_host_memory
    from forgetting.models import load_model
    from forgetting.training.corpus import lm_batches, python_code_blocks
    from forgetting.training.finetune import answer_batches, answer_examples, answer_loss
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

    if kept and not keep_freed_host_memory():
        raise SystemExit("keep_freed_host_memory did not apply (not glibc, or the allocator is tuned in the environment)")
    network, tokenizer = load_model(model, device="cpu")
    train = list(lm_batches(python_code_blocks(tokenizer, "train", 128, 4 * (steps + warmup), 0), 4))
    examples = answer_examples(tokenizer, load_task("counterfact", "train", limit=16 * (steps + warmup)))
    answers = list(answer_batches(examples, 16, tokenizer.pad_token_id, torch.Generator().manual_seed(0)))
    seconds = {}
    for name, batches, loss_of in (("train_step_s", train, None), ("finetune_step_s", answers, answer_loss)):
        optimizer, scheduler = adamw_with_warmup(network, 1e-5, steps + warmup)
        for step in range(steps + warmup):
            if step == warmup:
                started = time.perf_counter()
            optimizer_step(network, batches[step], optimizer, scheduler, precision, loss_of=loss_of)
        seconds[name] = (time.perf_counter() - started) / steps
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="bf16-autocast")
    parser.add_argument("--side", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side == "kept", args.model, args.steps, args.warmup, args.precision)))
        return
    results = {}
    for side in ("default", "kept"):
        command = [sys.executable, __file__, "--side", side, "--model", args.model, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--precision", args.precision]
        results[side] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    for key in results["default"]:
        default, kept = results["default"][key], results["kept"][key]
        print(f"{key}: default malloc {default:.3f} s, freed memory kept {kept:.3f} s ({kept / default:.2f}x)")


if __name__ == "__main__":
    main()
