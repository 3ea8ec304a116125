"""The noise of a measured number: a rate's standard error and 95% interval, a paired difference's
interval and McNemar's exact test.

Each function returns metrics named after the value they qualify, so a run shows
``accuracy``, ``accuracy_stderr``, ``accuracy_ci_low`` and ``accuracy_ci_high`` side by side.
The standard error is lm-eval's for a mean of 0/1 outcomes (sample deviation, ``ddof=1``); the
interval is Wilson's score interval, which stays inside [0, 1] and is sound for small n and
rates near 0 or 1, where the normal approximation is not.
"""
from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def interval_text(metrics: dict, name: str) -> str:
    """``[low, high]``, the 95% interval logged for ``name`` in ``metrics`` ('' where none was logged)."""
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    return f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""


def rate(name: str, successes: float, n: int) -> dict[str, float]:
    """``name`` = successes / n with its standard error and Wilson 95% interval."""
    if n <= 0:
        return {}
    p = successes / n
    stderr = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else float("nan")
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2)) / (1 + Z95 ** 2 / n)
    return {name: p, f"{name}_stderr": stderr, f"{name}_ci_low": max(0.0, centre - half),
            f"{name}_ci_high": min(1.0, centre + half)}


def mean(name: str, values: list[float]) -> dict[str, float]:
    """``name`` = the mean of ``values`` with its standard error and normal 95% interval."""
    n = len(values)
    if n == 0:
        return {}
    centre = sum(values) / n
    stderr = math.sqrt(sum((v - centre) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
    return {name: centre, f"{name}_stderr": stderr, f"{name}_ci_low": centre - Z95 * stderr,
            f"{name}_ci_high": centre + Z95 * stderr}


def paired_change(name: str, forgotten: int, learned: int, n: int) -> dict[str, float]:
    """The change of a rate measured on the same n examples twice, ``(learned - forgotten) / n``:
    its standard error (of a difference of paired proportions), 95% interval and McNemar's exact
    two-sided p-value on the discordant pairs (``name``_mcnemar_p; 1 when there are none)."""
    if n <= 0:
        return {}
    change = (learned - forgotten) / n
    variance = ((forgotten + learned) / n - change ** 2) / n
    stderr = math.sqrt(max(variance, 0.0))
    return {name: change, f"{name}_stderr": stderr, f"{name}_ci_low": change - Z95 * stderr,
            f"{name}_ci_high": change + Z95 * stderr, f"{name}_mcnemar_p": mcnemar_exact(forgotten, learned)}


def mcnemar_exact(forgotten: int, learned: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``forgotten`` among the discordant
    pairs against 1/2."""
    discordant = forgotten + learned
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(forgotten, learned) + 1)) / 2 ** discordant
    return min(1.0, 2 * tail)


def within_noise(metrics: dict[str, float], name: str) -> bool:
    """Whether the 95% interval of ``name`` (a change) includes 0."""
    return metrics[f"{name}_ci_low"] <= 0 <= metrics[f"{name}_ci_high"]
