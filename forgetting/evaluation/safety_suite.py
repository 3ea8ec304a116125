"""``evaluate -P suite=safety``: does the model still refuse harmful requests, and still answer benign ones?

Harmful requests are HarmBench or AdvBench behaviours (``behaviours``); benign ones are real
NaturalQuestions questions asked as plain chat turns (harmless by construction, so a refusal there
is over-refusal). Each gets one greedy reply in the model's chat format, scored by every refusal
judge of ``forgetting.scoring.judges``. The headline ``refusal_rate`` and
``benign_compliance_rate`` come from the reported judge (garak's mitigation strings), never from
the keyword judge that selected the safety training data; every judge's rates are logged beside
them (``<judge>_refusal_rate``), with each judge's agreement with pyrit's 169 human labels
(``judge_<judge>_accuracy``, ``_precision``, ``_recall``, ``_kappa``) so a reader can weigh them.
Harmful requests are also broken down by the behaviours' ``category`` (``category_<slug>_refusal_rate``;
offline HarmBench has the single category "standard", AdvBench and hub HarmBench have harm
categories). Every rate carries its Wilson 95% interval.
"""
from __future__ import annotations

import re

import mlflow

from forgetting.scoring.judges import (JUDGE_NAMES, REPORT_JUDGE, SELECTION_JUDGE, all_judges, check_report_judge,
                                          verdicts)
from forgetting.scoring.refusal import agreement_metrics

BENIGN_TASK = "naturalqs"
SAFETY_TABLE = "safety/responses.json"


def check_safety(config) -> None:
    from forgetting.data.safety import check_behaviours

    check_behaviours(config.behaviours, config.split, config.source)
    check_report_judge(config.judge)


def safety_summary(config, metrics: dict) -> str:
    from forgetting.scoring.intervals import interval_text

    return (f"safety: refusal rate {metrics['refusal_rate']:.3f} {interval_text(metrics, 'refusal_rate')} on "
            f"{int(metrics['n_harmful'])} harmful requests, benign compliance {metrics['benign_compliance_rate']:.3f} "
            f"{interval_text(metrics, 'benign_compliance_rate')} on {int(metrics['n_benign'])}")


def benign_requests(split: str, seed: int, limit: int | None, source: str = "offline") -> list[dict]:
    """NaturalQuestions questions without the ``Question: … Answer:`` frame, as a user would type them."""
    from forgetting.data import load_task

    rows = load_task(BENIGN_TASK, split, seed=seed, limit=limit, source=source)
    return [{"id": row["id"], "prompt": row["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:").strip()}
            for row in rows]


def chat_replies(model, tokenizer, requests: list[str], config) -> list[str]:
    from forgetting.scoring.generation import generate
    from forgetting.scoring.generative import format_prompt

    prompts = [format_prompt(tokenizer, request) for request in requests]
    replies, _ = generate(model, tokenizer, prompts, config.max_new_tokens, config.batch_size,
                          precision=config.precision)
    return replies


def refusal_rows(model, tokenizer, config, report: str = REPORT_JUDGE) -> list[dict]:
    """One row per request: kind (harmful or benign), id, category (the behaviour's; "" for benign),
    request, reply, refused (by the ``report`` judge) and ``refused_<judge>`` for every judge."""
    from forgetting.data import load_task

    limit = config.limit or None
    behaviours = load_task(config.behaviours, config.split, seed=config.seed, limit=limit, source=config.source)
    requests = [("harmful", row["id"], row.get("category") or "", row["prompt"]) for row in behaviours]
    requests += [("benign", row["id"], "", row["prompt"])
                 for row in benign_requests(config.split, config.seed, limit, config.source)]
    replies = chat_replies(model, tokenizer, [request[3] for request in requests], config)
    return judged_rows(requests, replies, report)


def judged_rows(requests: list[tuple], replies: list[str], report: str = REPORT_JUDGE) -> list[dict]:
    """``requests`` are (kind, id, category, request) tuples; each reply is scored by every judge."""
    check_report_judge(report)
    rows = []
    for (kind, row_id, category, request), reply in zip(requests, replies, strict=True):
        refused = verdicts(reply)
        rows.append({"kind": kind, "id": str(row_id), "category": category, "request": request, "reply": reply,
                     "refused": refused[report], **{f"refused_{name}": value for name, value in refused.items()}})
    return rows


def _rates(prefix: str, rows: list[dict], column: str) -> dict[str, float]:
    from forgetting.scoring.intervals import rate

    harmful = [row[column] for row in rows if row["kind"] == "harmful"]
    benign = [row[column] for row in rows if row["kind"] == "benign"]
    return {**rate(f"{prefix}refusal_rate", sum(harmful), len(harmful)),
            **rate(f"{prefix}benign_compliance_rate", len(benign) - sum(benign), len(benign))}


def category_slug(category: str) -> str:
    """A metric-name-safe form of a harm category ("Financial and Business" -> financial_and_business)."""
    return re.sub(r"[^0-9a-z]+", "_", category.lower()).strip("_") or "none"


def category_rows(rows: list[dict]) -> list[dict]:
    """Per harm category of the harmful requests: n, and each judge's refusals and rate with its interval."""
    from forgetting.scoring.intervals import rate

    judges = [name for name in JUDGE_NAMES if rows and f"refused_{name}" in rows[0]]
    harmful = [row for row in rows if row["kind"] == "harmful"]
    table = []
    for category in sorted({row.get("category") or "" for row in harmful}):
        members = [row for row in harmful if (row.get("category") or "") == category]
        entry = {"category": category, "slug": category_slug(category), "n": len(members),
                 "refusals": sum(row["refused"] for row in members)}
        entry |= rate("refusal_rate", entry["refusals"], len(members))
        for name in judges:
            refusals = sum(row[f"refused_{name}"] for row in members)
            entry |= {f"{name}_refusals": refusals, **rate(f"{name}_refusal_rate", refusals, len(members))}
        table.append(entry)
    return table


def safety_metrics(rows: list[dict]) -> dict[str, float]:
    """The reported judge's rates (``refused``), each judge's (``refused_<judge>``, where present)
    and, where rows carry a ``category``, the reported judge's refusal rate per harm category."""
    metrics = _rates("", rows, "refused")
    for name in JUDGE_NAMES:
        if rows and f"refused_{name}" in rows[0]:
            metrics |= _rates(f"{name}_", rows, f"refused_{name}")
    if rows and "category" in rows[0]:
        for entry in category_rows(rows):
            prefix = f"category_{entry['slug']}"
            metrics |= {f"{prefix}_n": entry["n"], **{f"{prefix}_{key}": entry[key] for key in entry
                                                      if key.startswith("refusal_rate")}}
    return metrics | {"n_harmful": sum(row["kind"] == "harmful" for row in rows),
                      "n_benign": sum(row["kind"] == "benign" for row in rows)}


def judge_agreement(labelled) -> dict[str, float]:
    """Every judge's agreement with human refusal labels (pyrit's 169)."""
    metrics = {}
    for name, refuses in all_judges().items():
        metrics |= agreement_metrics(name, labelled, refuses)
    return metrics


def evaluate_safety(config) -> dict[str, float]:
    import pandas as pd

    from forgetting.data import load_task
    from forgetting.models import load_model

    report = config.judge
    model, tokenizer = load_model(config.model)
    rows = refusal_rows(model, tokenizer, config, report)
    mlflow.log_table(pd.DataFrame(rows), artifact_file=SAFETY_TABLE)
    mlflow.set_tags({"safety.judge": report, "safety.selection_judge": SELECTION_JUDGE})
    metrics = safety_metrics(rows) | judge_agreement(load_task("refusal_labelled", "all"))
    mlflow.log_metrics(metrics)
    return metrics
