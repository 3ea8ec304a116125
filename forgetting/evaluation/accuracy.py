"""The ``evaluate`` stage's accuracy suite: any model spec on any multiple-choice, generative or code
task (code: pass@1 of greedy completions, tests run in the sandbox). Generative and code tasks
generate with ``engine``: ``hf`` (the transformers loop of ``forgetting.scoring.generation``) or
``vllm`` (``forgetting.scoring.engines``; ``seconds`` then include vLLM's start-up); multiple-choice
tasks always score log-likelihoods with the transformers model."""
from __future__ import annotations

import time

import mlflow

from forgetting.errors import UsageError, check_choice
from forgetting.scoring.generative import PROMPT_FORMATS

SCORED_KINDS = ("multiple_choice", "generative", "code")


def check_accuracy(config) -> None:
    """The accuracy suite's checks of an ``EvaluateConfig``: a scorable task and sane budgets."""
    from forgetting.data import check_source, check_task, task_kind, task_names
    from forgetting.data.loading import get_task

    source = getattr(config, "source", "offline")
    check_source(source)
    if source == "hub":
        get_task(config.task, source)  # names the tasks that have a hub loader
    else:
        check_choice("task", config.task, task_names())
    kind = task_kind(config.task)
    if kind not in SCORED_KINDS:
        scorable = [t for t in task_names(source) if task_kind(t) in SCORED_KINDS]
        raise UsageError(f"task={config.task!r} is a {kind} task; accuracy scores: {', '.join(scorable)}")
    check_choice("prompt_format", config.prompt_format, PROMPT_FORMATS)
    check_task(config.task, config.split, config.seed, config.limit or None, source=source)


def accuracy_summary(config, metrics: dict) -> str:
    from forgetting.scoring.intervals import interval_text

    return (f"{config.task} [{config.split}, {int(metrics['n_rows'])} rows]: accuracy={metrics['accuracy']:.4f} "
            f"{interval_text(metrics, 'accuracy')}")


def evaluate_accuracy(config) -> dict[str, float]:
    """Score the model inside the active run: metrics, per-example table, dataset input."""
    from forgetting.data import load_task, log_dataset, task_kind
    from forgetting.rewards.code import score_code
    from forgetting.scoring.generative import score_generative
    from forgetting.scoring.intervals import rate
    from forgetting.scoring.multiple_choice import score_multiple_choice

    rows = load_task(config.task, config.split, seed=config.seed, limit=config.limit or None,
                     source=getattr(config, "source", "offline"))
    log_dataset(rows, config.task, config.split)
    kind = task_kind(config.task)
    model, tokenizer = load_scorer(config, kind)
    started = time.perf_counter()
    if kind == "multiple_choice":
        results, tokens = score_multiple_choice(model, tokenizer, rows, config.batch_size, config.precision)
        metrics = rate("accuracy_norm", sum(r["correct_norm"] for r in results), len(results))
    elif kind == "code":
        results, tokens = score_code(model, tokenizer, rows, config.max_new_tokens, config.batch_size,
                                     config.precision, engine=greedy_engine_of(config, model, tokenizer))
        metrics = {}
    else:
        results, tokens = score_generative(model, tokenizer, config.task, rows, config.max_new_tokens,
                                           config.batch_size, config.precision, config.prompt_format,
                                           engine=greedy_engine_of(config, model, tokenizer))
        metrics = {}
    seconds = time.perf_counter() - started
    metrics |= rate("accuracy", sum(r["correct"] for r in results), len(results)) | {
        "n_rows": len(results), "seconds": seconds, "tokens_per_second": tokens / seconds}
    mlflow.log_metrics(metrics)
    mlflow.log_table(as_table(results), artifact_file=f"predictions/{config.task}.json")
    return metrics


def load_scorer(config, kind: str):
    """``(model, tokenizer)`` on the policy's device; a generative or code task whose engine loads the
    weights itself (vLLM) needs the tokenizer only: a second copy would take memory from the engine."""
    from forgetting.scoring.engines import ENGINES
    from forgetting.models import load_model, resolve_model

    if kind != "multiple_choice" and ENGINES.get(config.engine).loads_weights:
        from transformers import AutoTokenizer

        return None, AutoTokenizer.from_pretrained(resolve_model(config.model))
    return load_model(config.model)


def greedy_engine_of(config, model, tokenizer):
    """The greedy engine of ``config.engine`` (``generation.greedy_engine``'s signature)."""
    from forgetting.scoring.engines import ENGINES
    from forgetting.models import resolve_model

    return ENGINES.get(config.engine).greedy(resolve_model(config.model), model, tokenizer, config.batch_size,
                                             config.precision)


def as_table(results: list[dict]) -> dict[str, list]:
    """Result rows as ``mlflow.log_table`` columns; list cells as strings."""
    return {key: [str(r[key]) if isinstance(r[key], list) else r[key] for r in results] for key in results[0]}
