"""The ``collect`` stage: run a model through a domain's environment and keep what post-training needs.

Artifacts of the run (JSON lines):

- ``trajectories.jsonl``: every episode: id, domain, prompt, response, reward, terminated,
  truncated, sample index and metadata (model, engine, temperature, task);
- ``sft.jsonl``: ``{"prompt", "completion"}`` of the correct responses (distinct per prompt);
- ``ground_truth.jsonl``: ``{"prompt", "completion"}`` with the reference solution of every prompt;
- ``preferences.jsonl``: ``{"prompt", "chosen", "rejected"}``, a correct and an incorrect response
  of the same prompt (as many distinct pairs as the prompt allows).

Trajectories hold the prompt the model saw; the exports hold the domain's prompt, which a chat
domain (``safety``) frames in the trained model's own chat template at ``posttrain``.

Metrics: ``mean_reward``, ``pass_at_<samples>``, ``n_trajectories``, ``n_sft``, ``n_pairs``,
``generated_tokens``, ``tokens_per_second`` (generation only).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import check_choice, check_range
from forgetting.models import DEFAULT_MODEL

ARTIFACTS = ("trajectories", "sft", "ground_truth", "preferences")


@dataclass(frozen=True)
class CollectConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "the policy or teacher (model spec)"})
    domain: str = field(default="math", metadata={"help": "math, code, qa or safety"})
    n: int = field(default=64, metadata={"help": "training prompts (a seeded subset of the domain's train split)"})
    samples: int = field(default=4, metadata={"help": "responses sampled per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (0 = greedy, one sample)"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per response"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generation batch (hf)"})
    engine: str = field(default="hf", metadata={"help": "hf (transformers) or vllm (where installed)"})
    precision: str = field(default="fp32", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    seed: int = field(default=0, metadata={"help": "seed of the prompt subset and of sampling"})

    def validate(self) -> None:
        from forgetting.scoring.engines import check_engine
        from forgetting.rewards.domains import get_domain

        get_domain(self.domain)
        check_engine(self.engine)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("n", "samples", "max_new_tokens", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("temperature", self.temperature, 0)
        if self.temperature == 0 and self.samples > 1:
            from forgetting.errors import UsageError

            raise UsageError(f"samples={self.samples} with temperature=0 repeats one greedy response; use samples=1")


def preference_pairs(prompt: str, responses: list[str], rewards: list[float]) -> list[dict]:
    """Distinct (correct, incorrect) responses of one prompt, zipped into pairs."""
    chosen = list(dict.fromkeys(r for r, reward in zip(responses, rewards) if reward >= 1))
    rejected = list(dict.fromkeys(r for r, reward in zip(responses, rewards) if reward < 1))
    return [{"prompt": prompt, "chosen": c, "rejected": r} for c, r in zip(chosen, rejected)]


def collect(config: CollectConfig) -> dict[str, float]:
    """Inside the active run: sample, score through the environment, log the four artifacts."""
    from transformers import AutoTokenizer

    from forgetting.scoring.engines import ENGINES
    from forgetting.models import resolve_model
    from forgetting.rewards.environment import DomainEnv, VectorEnv

    location = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(location)  # a chat domain's prompts are in the model's template
    env = VectorEnv(DomainEnv(config.domain, "train", config.seed, limit=config.n), config.n)
    requests, _ = env.reset()
    prompts = [env.env.domain.frame(request, tokenizer) for request in requests]
    started = time.perf_counter()
    completions, tokens = ENGINES.get(config.engine).sample(
        location, prompts, config.samples, config.temperature, config.max_new_tokens,
        env.env.domain.stop_strings, config.seed, config.batch_size, config.precision)
    seconds = time.perf_counter() - started
    rewards = []
    for sample in range(config.samples):
        env.reset()  # the environment cycles through the same n prompts
        _, sample_rewards, *_ = env.step([c[sample] for c in completions])
        rewards.append(sample_rewards)
    metadata = {"model": config.model, "engine": config.engine, "temperature": config.temperature,
                "task": env.env.domain.train_task}
    records = {name: [] for name in ARTIFACTS}
    for index, (row, request, prompt) in enumerate(zip(env.rows, requests, prompts)):
        responses = [completions[index][s] for s in range(config.samples)]
        scores = [rewards[s][index] for s in range(config.samples)]
        records["trajectories"] += [
            {"id": row["id"], "domain": config.domain, "prompt": prompt, "response": response, "reward": reward,
             "terminated": True, "truncated": False, "sample": sample, "metadata": metadata}
            for sample, (response, reward) in enumerate(zip(responses, scores))]
        records["sft"] += [{"prompt": request, "completion": response}
                           for response in dict.fromkeys(r for r, s in zip(responses, scores) if s >= 1)]
        records["ground_truth"].append({"prompt": request, "completion": env.env.domain.reference(row)})
        records["preferences"] += preference_pairs(request, responses, scores)
    with tempfile.TemporaryDirectory() as directory:
        for name, rows in records.items():
            path = Path(directory) / f"{name}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            mlflow.log_artifact(str(path), "data")
    solved = sum(any(rewards[s][i] >= 1 for s in range(config.samples)) for i in range(len(prompts)))
    metrics = {"mean_reward": sum(map(sum, rewards)) / (len(prompts) * config.samples),
               f"pass_at_{config.samples}": solved / len(prompts), "n_prompts": len(prompts),
               "n_trajectories": len(records["trajectories"]), "n_sft": len(records["sft"]),
               "n_pairs": len(records["preferences"]), "generated_tokens": tokens,
               "generation_s": seconds, "tokens_per_second": tokens / seconds}
    mlflow.log_metrics(metrics)
    return metrics


def collected(run_id: str, name: str) -> list[dict]:
    """One of a collect run's artifacts as rows."""
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"data/{name}.jsonl")
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
