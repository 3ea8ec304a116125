"""The collect stage's sampling throughput: transformers vs vLLM, side by side in one run.

Both engines sample the same domain prompts (``samples`` each, same temperature, token budget and
stop strings) through ``forgetting.scoring.engines``, the code ``collect`` runs. The script prints
each engine's wall time, generated tokens per second and mean reward, and the vLLM / transformers
throughput ratio. Where vLLM is not installed it says so and times transformers alone.

    python benchmarks/bench_collect.py --domain qa --prompts 64 --samples 4 --max-new-tokens 64
"""
from __future__ import annotations

import argparse
import importlib.util
import time

from transformers import AutoTokenizer

from forgetting.scoring.engines import ENGINES
from forgetting.models import DEFAULT_MODEL, resolve_model
from forgetting.device import PRECISIONS
from forgetting.rewards import REWARDS
from forgetting.rewards.domains import DOMAINS, get_domain


def time_engine(engine: str, location: str, prompts: list[str], rows: list[dict], args) -> dict[str, float]:
    domain = get_domain(args.domain)
    started = time.perf_counter()
    completions, tokens = ENGINES.get(engine).sample(location, prompts, args.samples, args.temperature,
                                                     args.max_new_tokens, domain.stop_strings, args.seed,
                                                     args.batch_size, args.precision)
    seconds = time.perf_counter() - started
    rewards = [reward for sample in range(args.samples)
               for reward in REWARDS.get(domain.reward)([c[sample] for c in completions], rows)]
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds,
            "mean_reward": sum(rewards) / len(rewards)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--domain", default="qa", choices=sorted(DOMAINS))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers: prompts per batch")
    parser.add_argument("--precision", default="bf16-autocast", choices=PRECISIONS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    location = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(location)
    domain = get_domain(args.domain)
    rows = domain.rows("train", args.seed, args.prompts)
    prompts = [domain.frame(row["prompt"], tokenizer) for row in rows]
    engines = ["hf"] + ["vllm"] * (importlib.util.find_spec("vllm") is not None)
    print(f"{args.model}, {args.domain}: {len(prompts)} prompts x {args.samples} samples, "
          f"{args.max_new_tokens} new tokens at most, temperature {args.temperature}", flush=True)
    results = {}
    for engine in engines:
        result = results[engine] = time_engine(engine, location, prompts, rows, args)
        print(f"  {engine:5s} {result['seconds']:8.1f} s  {result['tokens']:7d} tokens  "
              f"{result['tokens_per_second']:8.1f} tokens/s  mean reward {result['mean_reward']:.3f}", flush=True)
    if "vllm" in results:
        ratio = results["vllm"]["tokens_per_second"] / results["hf"]["tokens_per_second"]
        print(f"  vLLM / transformers throughput: {ratio:.2f}x")
    else:
        print("  vLLM is not installed here (pip install vllm on a GPU machine): transformers only")


if __name__ == "__main__":
    main()
