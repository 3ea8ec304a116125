"""The ``evaluate`` stage's accuracy suite: any model spec on any multiple-choice, generative or code
task (code: pass@1 of greedy completions, tests run in the sandbox)."""
from __future__ import annotations

import time

import mlflow

from forgetting.errors import UsageError, check_choice, check_range
from forgetting.evaluation.generative import PROMPT_FORMATS

SCORED_KINDS = ("multiple_choice", "generative", "code")


def check_accuracy(config) -> None:
    """The accuracy suite's checks of an ``EvaluateConfig``: a scorable task and sane budgets."""
    from forgetting.data import task_kind, task_names

    check_choice("task", config.task, task_names())
    kind = task_kind(config.task)
    if kind not in SCORED_KINDS:
        scorable = [t for t in task_names() if task_kind(t) in SCORED_KINDS]
        raise UsageError(f"task={config.task!r} is a {kind} task; accuracy scores: {', '.join(scorable)}")
    check_range("max_new_tokens", config.max_new_tokens, 1)
    check_choice("prompt_format", config.prompt_format, PROMPT_FORMATS)


def evaluate_accuracy(config) -> dict[str, float]:
    """Score the model inside the active run: metrics, per-example table, dataset input."""
    from forgetting.data import load_task, log_dataset, task_kind
    from forgetting.evaluation.code import score_code
    from forgetting.evaluation.generative import score_generative
    from forgetting.evaluation.multiple_choice import accuracy, score_multiple_choice
    from forgetting.models import load_model

    rows = load_task(config.task, config.split, seed=config.seed, limit=config.limit or None)
    log_dataset(rows, config.task, config.split)
    model, tokenizer = load_model(config.model)
    started = time.perf_counter()
    kind = task_kind(config.task)
    if kind == "multiple_choice":
        results, tokens = score_multiple_choice(model, tokenizer, rows, config.batch_size, config.precision)
        metrics = {"accuracy": accuracy(results), "accuracy_norm": accuracy(results, "correct_norm")}
    elif kind == "code":
        results, tokens = score_code(model, tokenizer, rows, config.max_new_tokens, config.batch_size,
                                     config.precision)
        metrics = {"accuracy": accuracy(results)}
    else:
        results, tokens = score_generative(model, tokenizer, config.task, rows, config.max_new_tokens,
                                           config.batch_size, config.precision, config.prompt_format)
        metrics = {"accuracy": accuracy(results)}
    seconds = time.perf_counter() - started
    metrics |= {"n_rows": len(results), "seconds": seconds, "tokens_per_second": tokens / seconds}
    mlflow.log_metrics(metrics)
    mlflow.log_table(as_table(results), artifact_file=f"predictions/{config.task}.json")
    return metrics


def as_table(results: list[dict]) -> dict[str, list]:
    """Result rows as ``mlflow.log_table`` columns; list cells as strings."""
    return {key: [str(r[key]) if isinstance(r[key], list) else r[key] for r in results] for key in results[0]}
