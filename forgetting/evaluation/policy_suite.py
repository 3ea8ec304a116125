"""``evaluate -P suite=policy``: how the model's output distribution changed, beyond accuracy.

- diversity: ``samples`` sampled replies per prompt of ``generation_task`` at ``temperature`` (by
  ``engine``: transformers or vLLM);
  Self-BLEU (each reply scored against the prompt's other replies, sacreBLEU, lower = more diverse)
  and distinct-1/2 (unique over total word n-grams, over all replies);
- length: the replies' token counts (mean, median, 90th percentile; the distribution as a table);
- calibration: expected calibration error over 10 equal-width bins of the softmax over each
  question's choice log-likelihoods on ``calibration_task`` (multiple choice), with its accuracy.
"""
from __future__ import annotations

import math

import mlflow
import numpy as np

from forgetting.errors import UsageError

ECE_BINS = 10
LENGTHS_TABLE = "policy/replies.json"


def check_policy(config) -> None:
    from forgetting.data import check_task, task_kind

    if task_kind(config.generation_task) not in ("generative", "code"):
        raise UsageError(f"generation_task={config.generation_task!r} is not a generative or code task")
    if task_kind(config.calibration_task) != "multiple_choice":
        raise UsageError(f"calibration_task={config.calibration_task!r} is not a multiple-choice task")
    for task in (config.generation_task, config.calibration_task):
        check_task(task, config.split, source=config.source)
    if config.samples < 2:
        raise UsageError(f"samples={config.samples} must be at least 2 (Self-BLEU compares replies to one prompt)")
    if not config.temperature > 0:
        raise UsageError(f"temperature={config.temperature} must be > 0 (greedy replies are all alike)")


def policy_summary(config, metrics: dict) -> str:
    return (f"policy: Self-BLEU {metrics['self_bleu']:.3f}, distinct-1/2 {metrics['distinct_1']:.3f}/"
            f"{metrics['distinct_2']:.3f}, length mean {metrics['length_mean']:.1f} tokens, ECE {metrics['ece']:.3f}")


def self_bleu(groups: list[list[str]]) -> float:
    """Mean sentence BLEU (0–1) of each reply against the other replies to the same prompt."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(reply, group[:i] + group[i + 1:]).score / 100
              for group in groups for i, reply in enumerate(group) if reply.strip()]
    return float(np.mean(scores)) if scores else math.nan


def distinct_n(replies: list[str], n: int) -> float:
    grams = [tuple(words[i:i + n]) for words in (reply.split() for reply in replies)
             for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


def expected_calibration_error(confidences, correct, bins: int = ECE_BINS) -> float:
    """Σ_b |B|/n · |accuracy(B) − confidence(B)| over equal-width confidence bins."""
    confidences, correct = np.asarray(confidences, float), np.asarray(correct, float)
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    return float(sum(abs(correct[which == b].mean() - confidences[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def choice_confidences(results) -> list[float]:
    """The probability the model puts on its own answer: softmax over the choices' log-likelihoods."""
    confidences = []
    for result in results:
        logprobs = np.asarray(result["logprobs"], float)
        probabilities = np.exp(logprobs - logprobs.max())
        confidences.append(float(probabilities.max() / probabilities.sum()))
    return confidences


def sampled_replies(config) -> tuple[list[dict], list[list[str]]]:
    """``samples`` replies per prompt of ``generation_task``, sampled by ``config.engine`` (hf or vllm)."""
    from forgetting.scoring.engines import ENGINES
    from forgetting.data import load_task
    from forgetting.scoring.generation import STOP_STRINGS
    from forgetting.models import resolve_model

    rows = load_task(config.generation_task, config.split, seed=config.seed, limit=config.limit or None,
                     source=config.source)
    groups, _ = ENGINES.get(config.engine).sample(resolve_model(config.model), [row["prompt"] for row in rows],
                                                  config.samples, config.temperature, config.max_new_tokens,
                                                  STOP_STRINGS, config.seed, config.batch_size, config.precision)
    return rows, groups


def evaluate_policy(config) -> dict[str, float]:
    import pandas as pd

    from forgetting.data import load_task
    from forgetting.scoring.multiple_choice import score_multiple_choice
    from forgetting.models import load_model

    rows, groups = sampled_replies(config)
    model, tokenizer = load_model(config.model)
    lengths = [[len(tokenizer(reply, add_special_tokens=False)["input_ids"]) for reply in group] for group in groups]
    flat_lengths = np.concatenate(lengths)
    replies = [reply for group in groups for reply in group]
    questions = load_task(config.calibration_task, config.split, seed=config.seed, limit=config.limit or None,
                          source=config.source)
    results, _ = score_multiple_choice(model, tokenizer, questions, config.batch_size, config.precision)
    metrics = {"self_bleu": self_bleu(groups), "distinct_1": distinct_n(replies, 1), "distinct_2": distinct_n(replies, 2),
               "length_mean": float(flat_lengths.mean()), "length_median": float(np.median(flat_lengths)),
               "length_p90": float(np.percentile(flat_lengths, 90)),
               "ece": expected_calibration_error(choice_confidences(results), [r["correct"] for r in results]),
               "calibration_accuracy": float(np.mean([r["correct"] for r in results])), "n_replies": len(replies)}
    mlflow.log_table(pd.DataFrame([{"id": str(row["id"]), "sample": i, "reply": reply, "tokens": length}
                                   for row, group, group_lengths in zip(rows, groups, lengths)
                                   for i, (reply, length) in enumerate(zip(group, group_lengths))]),
                     artifact_file=LENGTHS_TABLE)
    mlflow.log_metrics(metrics)
    return metrics
