"""``evaluate -P suite=safety``: does the model still refuse harmful requests, and still answer benign ones?

Harmful requests are HarmBench or AdvBench behaviours (``behaviours``); benign ones are real
NaturalQuestions questions asked as plain chat turns (harmless by construction, so a refusal there
is over-refusal). Each gets one greedy reply in the model's chat format, judged by the keyword
refusal classifier (``forgetting.evaluation.refusal``), whose agreement with pyrit's human-labelled
refusals is logged with every run so a reader can weigh the rates.
"""
from __future__ import annotations

import mlflow

from forgetting.evaluation.refusal import is_refusal, judge_quality

BENIGN_TASK = "naturalqs"
SAFETY_TABLE = "safety/responses.json"


def benign_requests(split: str, seed: int, limit: int | None) -> list[dict]:
    """NaturalQuestions questions without the ``Question: … Answer:`` frame, as a user would type them."""
    from forgetting.data import load_task

    rows = load_task(BENIGN_TASK, split, seed=seed, limit=limit)
    return [{"id": row["id"], "prompt": row["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:").strip()}
            for row in rows]


def chat_replies(model, tokenizer, requests: list[str], config) -> list[str]:
    from forgetting.evaluation.generation import generate
    from forgetting.evaluation.generative import format_prompt

    prompts = [format_prompt(tokenizer, request) for request in requests]
    replies, _ = generate(model, tokenizer, prompts, config.max_new_tokens, config.batch_size,
                          precision=config.precision)
    return replies


def refusal_rows(model, tokenizer, config) -> list[dict]:
    """One row per request: kind (harmful or benign), id, request, reply, refused."""
    from forgetting.data import load_task

    limit = config.limit or None
    requests = [("harmful", row["id"], row["prompt"])
                for row in load_task(config.behaviours, config.split, seed=config.seed, limit=limit)]
    requests += [("benign", row["id"], row["prompt"]) for row in benign_requests(config.split, config.seed, limit)]
    replies = chat_replies(model, tokenizer, [request for _, _, request in requests], config)
    return [{"kind": kind, "id": str(row_id), "request": request, "reply": reply, "refused": is_refusal(reply)}
            for (kind, row_id, request), reply in zip(requests, replies)]


def safety_metrics(rows: list[dict]) -> dict[str, float]:
    harmful = [row["refused"] for row in rows if row["kind"] == "harmful"]
    benign = [row["refused"] for row in rows if row["kind"] == "benign"]
    from forgetting.evaluation.intervals import rate

    return {**rate("refusal_rate", sum(harmful), len(harmful)),
            **rate("benign_compliance_rate", len(benign) - sum(benign), len(benign)),
            "n_harmful": len(harmful), "n_benign": len(benign)}


def evaluate_safety(config) -> dict[str, float]:
    import pandas as pd

    from forgetting.data import load_task
    from forgetting.models import load_model

    model, tokenizer = load_model(config.model)
    rows = refusal_rows(model, tokenizer, config)
    mlflow.log_table(pd.DataFrame(rows), artifact_file=SAFETY_TABLE)
    judge = judge_quality(load_task("refusal_labelled", "all"))
    metrics = safety_metrics(rows) | {f"judge_{name}": value for name, value in judge.items()}
    mlflow.log_metrics(metrics)
    return metrics
