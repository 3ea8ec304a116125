"""Unstructured sparsity on this CPU: a magnitude-pruned model run dense vs with ``SparseLinear`` (CSR),
next to the same fraction of MLP neurons physically removed.

For each sparsity the script prunes the default model's decoder Linear weights by magnitude (per
matrix), then measures side by side in one run: bytes the model holds, forward time per batch of
real SST-2 sentences (median of ``--repeats`` after a warm-up) and the largest logit difference
between the dense and the sparse path.

    python benchmarks/bench_sparse.py --sparsities 0.5,0.9 --repeats 5
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from forgetting.data.classification import classification_batches, classification_rows
from forgetting.models import DEFAULT_MODEL
from forgetting.models.classifier import load_classifier
from forgetting.models.weights import apply_masks
from forgetting.pruning import prune
from forgetting.pruning import score_weights
from forgetting.pruning.sparse import parameter_bytes, sparsify_linears
from forgetting.pruning.weights import select_weights


@torch.inference_mode()
def forward_seconds(model, batches, repeats: int) -> tuple[float, torch.Tensor]:
    model(**batches[0])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        logits = [model(**batch).logits for batch in batches]
        times.append(time.perf_counter() - started)
    return statistics.median(times) / len(batches), torch.cat(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--sparsities", default="0.5,0.9")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    dense, tokenizer = load_classifier(args.model)
    rows = classification_rows("sst2", "eval", limit=args.batch_size * args.batches)
    batches = [{k: v for k, v in batch.items() if k != "labels"}
               for batch in classification_batches(tokenizer, rows, args.batch_size)]
    base_seconds, _ = forward_seconds(dense, batches, args.repeats)
    print(f"{args.model}: {parameter_bytes(dense) / 2**20:.0f} MB, {1000 * base_seconds:.0f} ms per batch of "
          f"{args.batch_size}, {torch.get_num_threads()} threads")
    print(f"{'sparsity':>8} {'path':<16} {'MB':>7} {'x bytes':>8} {'ms/batch':>9} {'x time':>7} {'max |dlogit|':>12}")
    for sparsity in (float(value) for value in args.sparsities.split(",")):
        masked = copy.deepcopy(dense)
        apply_masks(masked, select_weights(score_weights("magnitude", masked), sparsity))
        masked_seconds, reference = forward_seconds(masked, batches, args.repeats)
        sparse = copy.deepcopy(masked)
        sparsify_linears(sparse)
        sparse_seconds, logits = forward_seconds(sparse, batches, args.repeats)
        removed = prune(dense, "magnitude", None, sparsity).model
        removed_seconds, _ = forward_seconds(removed, batches, args.repeats)
        for path, model, seconds, difference in (
                ("dense, zeros", masked, masked_seconds, 0.0),
                ("SparseLinear", sparse, sparse_seconds, (logits - reference).abs().max().item()),
                ("MLP neurons cut", removed, removed_seconds, float("nan"))):
            size = parameter_bytes(model)
            print(f"{sparsity:>8.0%} {path:<16} {size / 2**20:>7.0f} {size / parameter_bytes(dense):>8.3f} "
                  f"{1000 * seconds:>9.0f} {seconds / base_seconds:>7.2f} {difference:>12.2e}")
    print("x bytes and x time are against the unpruned dense model; 'MLP neurons cut' removes that fraction of "
          "MLP neurons only (attention untouched), so it is a structured reference, not the same weights.")


if __name__ == "__main__":
    main()
