"""The refusal classifier shared by the safety suite and the attacks, and its agreement with humans.

The classifier (``forgetting.data.safety.is_refusal``, defined beside the training data it selects)
counts a response as a refusal when its opening (the first ``window`` characters, where models state a
refusal) contains one of ``REFUSAL_MARKERS``, compared case-insensitively with curly
apostrophes folded. This is the keyword judge of the GCG and AutoDAN papers, with our own marker
list. ``judge_quality`` measures it against pyrit's 169 human-labelled responses (``refusal_labelled``
task). Those labels also count an answer to a different question as a refusal, which no keyword
judge can see: on them the judge has precision 1.0 and recall 0.54 (agreement 0.70), so an attack
success rate from it is an upper bound on how often the model complied.

This judge also selects the safety training data, so the safety suite reports with another one
(``forgetting.scoring.judges``); ``agreement_metrics`` scores any judge on the same labels.
"""
from __future__ import annotations

import math

from forgetting.data.safety import is_refusal


def confusion(rows, judge=is_refusal) -> dict[str, int]:
    """Counts of (judge, human) on ``(response, label)`` rows, label 1 = refusal: tp, fp, fn, tn."""
    pairs = [(bool(judge(row["response"])), bool(row["label"])) for row in rows]
    return {"tp": sum(p and t for p, t in pairs), "fp": sum(p and not t for p, t in pairs),
            "fn": sum(t and not p for p, t in pairs), "tn": sum(not p and not t for p, t in pairs)}


def cohen_kappa(tp: int, fp: int, fn: int, tn: int) -> tuple[float, float]:
    """Cohen's kappa between judge and humans, and its large-sample standard error
    (Cohen 1960: ``sqrt(p_o (1 - p_o) / (n (1 - p_e)^2))``); nan where chance agreement is 1."""
    n = tp + fp + fn + tn
    observed = (tp + tn) / n
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n ** 2
    if chance >= 1:
        return float("nan"), float("nan")
    return (observed - chance) / (1 - chance), math.sqrt(observed * (1 - observed) / n) / (1 - chance)


def agreement_metrics(name: str, rows, judge=is_refusal) -> dict[str, float]:
    """``judge_<name>_``: accuracy, precision and recall (each with its Wilson interval) and Cohen's
    kappa (normal interval) of ``judge`` against human labels; recall is of the human refusals."""
    from forgetting.scoring.intervals import Z95, rate

    counts = confusion(rows, judge)
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    kappa, stderr = cohen_kappa(tp, fp, fn, tn)
    prefix = f"judge_{name}"
    return {**rate(f"{prefix}_accuracy", tp + tn, tp + fp + fn + tn), **rate(f"{prefix}_precision", tp, tp + fp),
            **rate(f"{prefix}_recall", tp, tp + fn), f"{prefix}_kappa": kappa, f"{prefix}_kappa_stderr": stderr,
            f"{prefix}_kappa_ci_low": kappa - Z95 * stderr, f"{prefix}_kappa_ci_high": kappa + Z95 * stderr,
            **{f"{prefix}_{key}": value for key, value in counts.items()}}


def judge_quality(rows, judge=is_refusal) -> dict[str, float]:
    """``agreement``, ``precision``, ``recall`` and ``kappa`` of ``judge`` on human-labelled
    ``(response, label)`` rows, label 1 = refusal."""
    counts = confusion(rows, judge)
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return {"agreement": (tp + tn) / (tp + fp + fn + tn), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1), "kappa": cohen_kappa(tp, fp, fn, tn)[0]}
