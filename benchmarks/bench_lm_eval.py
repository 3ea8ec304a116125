"""evaluate's multiple-choice path vs lm-evaluation-harness (HF backend) on the same rows, in one run.

Both score the same local rows with the same model: lm-eval through a generated offline task
YAML, the project through ``score_multiple_choice``. Prints both accuracies (``accuracy_norm``
against lm-eval's ``acc_norm``), how many per-question predictions agree, and the throughput
ratio (questions/s, project / lm-eval). Both sides are timed the same way: from the model
checkpoint on disk to the scores, model loading included (lm-eval loads the model inside
``simple_evaluate``; the project's ``load_model`` is inside its timer too).

    python benchmarks/bench_lm_eval.py --task arc_easy --limit 200
"""
from __future__ import annotations

import argparse
import tempfile
import time

from forgetting.data import load_task
from forgetting.evaluation.lm_eval_bridge import run_lm_eval, write_multiple_choice_task
from forgetting.scoring.multiple_choice import accuracy, score_multiple_choice
from forgetting.models import DEFAULT_MODEL, load_model, resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--task", default="arc_easy")
    parser.add_argument("--split", default="eval")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    rows = load_task(args.task, args.split, limit=args.limit)
    resolve_model(args.model)  # a first use de-quantises the bundled model: not part of either timing
    started = time.perf_counter()
    model, tokenizer = load_model(args.model)
    ours, _ = score_multiple_choice(model, tokenizer, rows, args.batch_size)
    ours_seconds = time.perf_counter() - started
    del model

    with tempfile.TemporaryDirectory() as task_dir:
        task = write_multiple_choice_task(args.task, rows, task_dir)
        started = time.perf_counter()
        output = run_lm_eval(resolve_model(args.model), task_dir, [task], args.batch_size, log_samples=True)
        theirs_seconds = time.perf_counter() - started
    results = output["results"][task]
    samples = sorted(output["samples"][task], key=lambda s: s["doc_id"])
    theirs_pred = [max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0]) for s in samples]
    agree = sum(o["pred"] == p for o, p in zip(ours, theirs_pred))

    print(f"{args.task} [{args.split}] {len(rows)} questions, model {args.model}")
    print(f"accuracy       project {accuracy(ours):.4f}   lm-eval {results['acc,none']:.4f}   "
          f"difference {100 * abs(accuracy(ours) - results['acc,none']):.2f} points")
    agree_norm = sum(o["pred_norm"] == max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0]
                                           / max(1, len(s["arguments"][i][1].lstrip(" "))))
                     for o, s in zip(ours, samples))
    print(f"accuracy_norm  project {accuracy(ours, 'correct_norm'):.4f}   lm-eval {results['acc_norm,none']:.4f}   "
          f"same normalised prediction on {agree_norm}/{len(rows)} questions")
    print(f"same prediction on {agree}/{len(rows)} questions")
    print(f"questions/s    project {len(rows) / ours_seconds:.2f}   lm-eval {len(rows) / theirs_seconds:.2f}   "
          f"ratio {theirs_seconds / ours_seconds:.2f}x")


if __name__ == "__main__":
    main()
