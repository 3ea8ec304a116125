"""Greedy generation: the evaluate stage's loop (finished rows leave the KV cache) vs ``model.generate``.

Both sides decode the same GSM8K test prompts in the same batches, precision and stop strings, in
one run; the script prints each side's wall time, the ratio and how many completions are identical.

    python benchmarks/bench_generation.py --prompts 32 --batch-size 16
"""
from __future__ import annotations

import argparse
import time

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from forgetting.data import load_task
from forgetting.scoring.generation import STOP_STRINGS, cut_at_stop, generate
from forgetting.models import DEFAULT_MODEL, load_model
from forgetting.device import PRECISIONS, autocast


class StopOnStrings(StoppingCriteria):
    """Per-row stop strings for ``model.generate``, checked on the last few decoded tokens."""

    def __init__(self, tokenizer, prompt_length: int, window: int = 8):
        self.tokenizer, self.prompt_length, self.window = tokenizer, prompt_length, window

    def __call__(self, input_ids, scores, **kwargs):
        tails = self.tokenizer.batch_decode(input_ids[:, max(self.prompt_length, input_ids.shape[1] - self.window):])
        return torch.tensor([any(s in tail for s in STOP_STRINGS) for tail in tails])


@torch.no_grad()
def hf_generate(model, tokenizer, prompts, max_new_tokens, batch_size, precision) -> list[str]:
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    completions = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        length = inputs["input_ids"].shape[1]
        with autocast(precision):
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    stopping_criteria=StoppingCriteriaList([StopOnStrings(tokenizer, length)]),
                                    pad_token_id=tokenizer.pad_token_id)
        for row, index in enumerate(batch):
            ids = output[row, length:]
            ids = ids[ids != tokenizer.pad_token_id]
            completions[index] = cut_at_stop(tokenizer.decode(ids), STOP_STRINGS)
    return completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--precision", default="bf16-autocast", choices=PRECISIONS)
    args = parser.parse_args()

    prompts = [row["prompt"] for row in load_task("gsm8k", "test", limit=args.prompts)]
    model, tokenizer = load_model(args.model)
    model.eval()
    started = time.perf_counter()
    ours, _ = generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, precision=args.precision)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference = hf_generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, args.precision)
    hf_seconds = time.perf_counter() - started
    same = sum(a == b for a, b in zip(ours, reference))
    print(f"{len(prompts)} GSM8K prompts, batch {args.batch_size}, {args.precision}, max {args.max_new_tokens} tokens")
    print(f"model.generate      {hf_seconds:8.1f} s")
    print(f"evaluate's loop     {ours_seconds:8.1f} s   ({hf_seconds / ours_seconds:.2f}x faster)")
    print(f"identical completions: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
