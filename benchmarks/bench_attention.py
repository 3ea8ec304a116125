"""Seconds per call with transformers' SDPA against ``sdpa_or_eager`` (``forgetting.models.attention``), on the
same model in one process, the two sides alternated and each timed twice (the faster kept): a train step on
Python-code blocks (4 x 128 tokens, the quick grid's, and 2 x 512, near the eager path's bound), answer
fine-tuning (CounterFact, 16 rows), the held-out loss (8 x 128) and multiple-choice scoring (CounterFact eval
rows, block-masked packed questions). Also how far the summed log-probabilities of the choices move and how many
predictions change.

    python benchmarks/bench_attention.py --steps 4 --rows 196
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=196, help="CounterFact eval rows scored")
    parser.add_argument("--precision", default="bf16-autocast")
    args = parser.parse_args()

    import torch

    from forgetting.data import load_task
    from forgetting.device import keep_freed_host_memory
    from forgetting.models import load_model
    from forgetting.models.attention import NAME
    from forgetting.scoring.multiple_choice import question_logprobs
    from forgetting.training.corpus import lm_batches, python_code_blocks
    from forgetting.training.finetune import answer_batches, answer_examples, answer_loss
    from forgetting.training.loss import heldout_loss
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

    keep_freed_host_memory()  # as every stage runs
    model, tokenizer = load_model(args.model, device="cpu")
    if model.config._attn_implementation != NAME:
        raise SystemExit(f"{args.model} does not use SDPA, so {NAME} does not apply to it")
    short = list(lm_batches(python_code_blocks(tokenizer, "train", 128, 4 * (args.steps + 1), 0), 4))
    long = list(lm_batches(python_code_blocks(tokenizer, "train", 512, 2 * (args.steps + 1), 0), 2))
    held_out = python_code_blocks(tokenizer, "eval", 128, 8, 0)
    examples = answer_examples(tokenizer, load_task("counterfact", "train", limit=16 * (args.steps + 1)))
    answers = list(answer_batches(examples, 16, tokenizer.pad_token_id, torch.Generator().manual_seed(0)))
    questions = [(row["prompt"], list(row["choices"])) for row in load_task("counterfact", "eval", limit=args.rows)]
    state = {key: value.clone() for key, value in model.state_dict().items()}

    def steps(batches, loss_of=None):
        optimizer, scheduler = adamw_with_warmup(model, 1e-5, len(batches))
        optimizer_step(model, batches[0], optimizer, scheduler, args.precision, loss_of=loss_of)  # warm-up
        started = time.perf_counter()
        for batch in batches[1:]:
            optimizer_step(model, batch, optimizer, scheduler, args.precision, loss_of=loss_of)
        model.load_state_dict(state)
        return (time.perf_counter() - started) / (len(batches) - 1)

    def timed(call):
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    workloads = {
        "train step 4x128": lambda: steps(short),
        "train step 2x512": lambda: steps(long),
        "fine-tuning step 16 rows": lambda: steps(answers, answer_loss),
        "held-out loss 8x128": lambda: timed(lambda: heldout_loss(model, lm_batches(held_out, 4), args.precision)),
        f"scoring {len(questions)} questions": lambda: timed(
            lambda: question_logprobs(model, tokenizer, questions, 16, args.precision)),
    }
    seconds: dict[str, dict[str, float]] = {}
    for side in ("sdpa", NAME, "sdpa", NAME):
        model.set_attn_implementation(side)
        for name, workload in workloads.items():
            seconds.setdefault(name, {})[side] = min(seconds.get(name, {}).get(side, float("inf")), workload())
    for name, by_side in seconds.items():
        print(f"{name}: sdpa {by_side['sdpa']:.3f} s, {NAME} {by_side[NAME]:.3f} s "
              f"({by_side[NAME] / by_side['sdpa']:.2f}x)")
    scores = {}
    for side in ("sdpa", NAME):
        model.set_attn_implementation(side)
        scores[side] = question_logprobs(model, tokenizer, questions, 16, args.precision)[0]
    moved = max(abs(a - b) for x, y in zip(scores["sdpa"], scores[NAME]) for a, b in zip(x, y))
    changed = sum(max(range(len(x)), key=x.__getitem__) != max(range(len(y)), key=y.__getitem__)
                  for x, y in zip(scores["sdpa"], scores[NAME]))
    print(f"summed choice log-probabilities: largest difference {moved:.2e}; predictions changed: {changed} "
          f"of {len(questions)}")


if __name__ == "__main__":
    main()
