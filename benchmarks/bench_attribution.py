"""Attribution costs, side by side in one run on the same model and planted-mixture data:

1. TracIn's cost per (training, test) pair: the project's way (per-example training gradients,
   batched with ``torch.func.vmap`` over ``grad``, dotted with one gradient of the whole test set)
   vs a naive loop with a backward for each side of every pair (timed on the first
   ``--naive-examples`` training examples); then the same per-example gradients from a plain
   backward per example, to show what ``vmap`` itself adds. Scores are checked to agree;
2. UnTrac (one gradient-ascent run per source) vs UnTrac-Inv (one run on the test examples) wall time.

    python benchmarks/bench_attribution.py --per-source 4 --planted 4 --parameters mlp
"""
from __future__ import annotations

import argparse
import time

import torch

from forgetting.attribution.examples import Encoded, encode_examples, token_losses
from forgetting.attribution.gradients import naive_dot, per_example_dot
from forgetting.attribution.methods import Budget, untrac, untrac_inv
from forgetting.attribution.planted import planted_mixture
from forgetting.models import DEFAULT_MODEL, load_model


def pairwise_naive(model, train, test, contains: str) -> torch.Tensor:
    """``sum_j <grad l(train_i), grad l(test_j)>`` with two backward passes per pair."""
    names = {name for name, _ in model.named_parameters() if contains in name}

    def gradient(data, index):
        model.zero_grad(set_to_none=True)
        batch = data.batch(slice(index, index + 1))
        token_losses(model(input_ids=batch["input_ids"]).logits, batch["labels"])[0].backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if n in names}

    scores = []
    for i in range(len(train)):
        total = 0.0
        for j in range(len(test)):
            left, right = gradient(train, i), gradient(test, j)
            total += sum((left[n] * right[n]).sum() for n in names) / len(test)
        scores.append(total)
    model.zero_grad(set_to_none=True)
    return torch.stack(scores).detach()


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--per-source", type=int, default=4)
    parser.add_argument("--planted", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--parameters", default="mlp", help="TracIn parameter-name filter ('' = all)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--naive-examples", type=int, default=2)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    mixture = planted_mixture(args.per_source, args.planted)
    rows, test_rows = mixture.train, mixture.test
    train = encode_examples(tokenizer, rows, args.max_length)
    test = encode_examples(tokenizer, test_rows, args.max_length)
    sources = [row["source"] for row in rows]

    pairs = len(rows) * len(test_rows)
    batched, batched_s = timed(per_example_dot, model, train, test, args.batch_size, args.parameters)
    subset = train.subset(slice(args.naive_examples))
    pairwise, pairwise_s = timed(pairwise_naive, model, subset, test, args.parameters)
    looped, looped_s = timed(naive_dot, model, train, test, args.batch_size, args.parameters)
    per_pair_naive = pairwise_s / (len(subset) * len(test_rows))
    print(f"{len(rows)} training examples, {len(test_rows)} test examples, {args.max_length} tokens, "
          f"TracIn parameters {args.parameters or 'all'!r}")
    print(f"TracIn naive pair loop   {1000 * per_pair_naive:8.1f} ms per pair (on {len(subset)} training examples)")
    print(f"TracIn project           {1000 * batched_s / pairs:8.1f} ms per pair ({per_pair_naive * pairs / batched_s:.1f}x "
          f"faster), same scores: {torch.allclose(batched[:len(subset)], pairwise, rtol=1e-3, atol=1e-6)}")
    print(f"  per-example gradients: vmap {batched_s:.1f} s vs a backward per example {looped_s:.1f} s "
          f"({looped_s / batched_s:.2f}x), same scores: {torch.allclose(batched, looped, rtol=1e-3, atol=1e-6)}")

    budget = Budget(steps=args.steps, batch_size=args.batch_size)
    _, untrac_s = timed(untrac, model, train, sources, test, budget)
    _, inverse_s = timed(untrac_inv, model, train, sources, test, budget)
    print(f"UnTrac      {untrac_s:8.1f} s ({len(set(sources))} unlearning runs of {args.steps} steps)")
    print(f"UnTrac-Inv  {inverse_s:8.1f} s (1 unlearning run; {untrac_s / inverse_s:.2f}x faster)")


if __name__ == "__main__":
    main()
