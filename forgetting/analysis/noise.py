"""Error bars for the analyses: the 95% intervals the suites logged, aggregation over seeds, whether a
difference is within noise, and correlations with their uncertainty.

A value ``x`` comes with ``x_ci_low``/``x_ci_high`` (``forgetting.scoring.intervals``). Runs that
differ only by their seed are one condition: ``over_seeds`` gives its mean over seeds and a Student-t
95% interval over the seeds (``mean ± t(0.975, n-1) · s / √n``); a condition with one seed keeps the
interval its run logged. A difference of two independently measured values gets a normal interval
from their standard errors (recovered from the intervals), which is conservative for models scored
on the same examples (a paired test would be tighter, but the per-example tables are not joined here).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forgetting.scoring.intervals import Z95

SEED = "seed"
WITHIN, BEYOND = "within noise", "beyond noise"


def low(name: str) -> str:
    return f"{name}_ci_low"


def high(name: str) -> str:
    return f"{name}_ci_high"


def logged(metrics: dict, names) -> dict:
    """``name``, ``name_ci_low``, ``name_ci_high`` of each of ``names`` from a run's metrics (None if absent)."""
    return {key: metrics.get(key) for name in names for key in (name, low(name), high(name))}


def stderr(value, lower, upper) -> float:
    """The standard error a 95% interval implies (half its width over z); NaN where it is missing."""
    if _missing(lower) or _missing(upper):
        return math.nan
    return (float(upper) - float(lower)) / (2 * Z95)


def combine(values, lowers, uppers, weights=None) -> tuple[float, float, float]:
    """``(value, low, high)`` of a weighted sum of independent estimates (weights default to a mean);
    the interval is NaN unless every estimate has one."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan, math.nan
    weights = list(weights) if weights is not None else [1 / len(values)] * len(values)
    centre = sum(w * v for w, v in zip(weights, values))
    errors = [stderr(v, lo, hi) for v, lo, hi in zip(values, lowers, uppers)]
    if any(math.isnan(e) for e in errors):
        return centre, math.nan, math.nan
    half = Z95 * math.sqrt(sum((w * e) ** 2 for w, e in zip(weights, errors)))
    return centre, centre - half, centre + half


def difference(a: tuple, b: tuple) -> tuple[float, float, float]:
    """``a − b`` for two independent ``(value, low, high)`` estimates."""
    return combine([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], weights=[1, -1])


def ratio(a: tuple, b: tuple) -> tuple[float, float, float]:
    """``a / b`` for two independent ``(value, low, high)`` estimates (delta method on the log ratio)."""
    if _missing(a[0]) or _missing(b[0]) or not b[0] or not a[0]:
        return math.nan, math.nan, math.nan
    r = a[0] / b[0]
    relative = math.sqrt((stderr(*a) / a[0]) ** 2 + (stderr(*b) / b[0]) ** 2)
    if math.isnan(relative):
        return r, math.nan, math.nan
    return r, r * math.exp(-Z95 * relative), r * math.exp(Z95 * relative)


def verdict(lower, upper) -> str:
    """``within noise`` when the 95% interval of a change includes 0, ``beyond noise`` when it does not,
    '' when there is no interval."""
    if _missing(lower) or _missing(upper):
        return ""
    return WITHIN if lower <= 0 <= upper else BEYOND


def shown(value, lower=None, upper=None, signed: bool = False) -> str:
    """``0.538 [0.49, 0.59]``: the value to three decimals, its 95% interval to two ('' when missing)."""
    if _missing(value):
        return ""
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if _missing(lower) or _missing(upper):
        return text
    return f"{text} [{lower:.2f}, {upper:.2f}]"


def over_seeds(frame: pd.DataFrame, by: list[str], values: list[str], keep: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per group of ``by`` (everything that defines a condition except the seed): for each of
    ``values`` the mean over the group's seeds with its 95% interval, ``n_seeds``, the ``seeds`` and the
    ``run_id``s joined by commas. With one seed the logged interval (and a logged ``value_mcnemar_p``)
    stands; with several it is the t interval over the seeds and McNemar's p of a single run is dropped.
    ``keep``: more columns, each reduced with the named pandas aggregation (``first``, ``sum``...)."""
    keep = keep or {}
    columns = [*by, "n_seeds", "seeds", *[c for v in values for c in (v, low(v), high(v))], *keep, "run_id"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in frame.groupby(by, dropna=False, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        seeds = group[SEED].astype(str).tolist() if SEED in group else [""] * len(group)
        row |= {"n_seeds": len(group), "seeds": ",".join(sorted(set(seeds))),
                "run_id": ",".join(dict.fromkeys(",".join(group["run_id"].astype(str)).split(",")))
                if "run_id" in group else ""}
        for value in values:
            row |= _aggregate(group, value)
        for column, how in keep.items():
            row[column] = group[column].agg(how) if column in group else None
        rows.append(row)
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(c for r in rows for c in r)])))


def _aggregate(group: pd.DataFrame, value: str) -> dict:
    if value not in group:
        return {value: math.nan, low(value): math.nan, high(value): math.nan}
    present = group.dropna(subset=[value])
    data = pd.to_numeric(present[value], errors="coerce").to_numpy(dtype=float)
    n = len(data)
    if n == 0:
        return {value: math.nan, low(value): math.nan, high(value): math.nan}
    if n == 1:
        row = present.iloc[0]
        out = {value: data[0], low(value): _number(row.get(low(value))), high(value): _number(row.get(high(value)))}
        if f"{value}_mcnemar_p" in present:
            out[f"{value}_mcnemar_p"] = _number(row.get(f"{value}_mcnemar_p"))
        return out
    from scipy import stats

    centre = float(data.mean())
    half = float(stats.t.ppf(0.975, n - 1) * data.std(ddof=1) / math.sqrt(n))
    out = {value: centre, low(value): centre - half, high(value): centre + half}
    if f"{value}_mcnemar_p" in present:
        out[f"{value}_mcnemar_p"] = math.nan
    return out


def correlation(x, y) -> dict:
    """Pearson's r (with its Fisher-z 95% interval, n ≥ 4, and p) and Spearman's ρ (with p) of paired
    values; ``note`` says when there are too few points (n < 3) or one side does not vary."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if not _missing(a) and not _missing(b)]
    n = len(pairs)
    result = {"n": n, "pearson_r": math.nan, "pearson_ci_low": math.nan, "pearson_ci_high": math.nan,
              "pearson_p": math.nan, "spearman_r": math.nan, "spearman_p": math.nan, "note": ""}
    if n < 3:
        result["note"] = f"too few points for a correlation (n={n}; at least 3 needed)"
        return result
    a, b = np.array(pairs).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        result["note"] = f"one of the two measures does not vary across the n={n} points: no correlation"
        return result
    from scipy import stats

    pearson = stats.pearsonr(a, b)
    spearman = stats.spearmanr(a, b)
    result |= {"pearson_r": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
               "spearman_r": float(spearman.statistic), "spearman_p": float(spearman.pvalue)}
    if n >= 4:
        interval = pearson.confidence_interval(0.95)
        result |= {"pearson_ci_low": float(interval.low), "pearson_ci_high": float(interval.high)}
    else:
        result["note"] = f"n={n}: Pearson's interval needs at least 4 points"
    return result


def describe_correlation(result: dict, what: str) -> str:
    """The correlation in one sentence."""
    if math.isnan(result["pearson_r"]):
        return f"{what}: {result['note']}."
    pearson = shown(result["pearson_r"], result["pearson_ci_low"], result["pearson_ci_high"], signed=True)
    text = (f"{what}: Pearson r = {pearson} (p = {result['pearson_p']:.3g}), Spearman ρ = "
            f"{result['spearman_r']:+.3f} (p = {result['spearman_p']:.3g}), n = {result['n']}")
    if result["note"]:
        text += f" ({result['note']})"
    if result["n"] < 10:
        text += "; with so few points only a very strong correlation is distinguishable from none"
    return text + "."


def error_bars(frame: pd.DataFrame, value: str) -> dict:
    """plotly express keyword arguments that draw ``value``'s interval as asymmetric error bars (columns
    ``_err_plus_<value>``/``_err_minus_<value>`` are added to ``frame`` in place); empty when none is known."""
    if low(value) not in frame or frame[low(value)].isna().all():
        return {}
    centre = pd.to_numeric(frame[value], errors="coerce")
    frame[f"_err_plus_{value}"] = pd.to_numeric(frame[high(value)], errors="coerce") - centre
    frame[f"_err_minus_{value}"] = centre - pd.to_numeric(frame[low(value)], errors="coerce")
    return {"plus": f"_err_plus_{value}", "minus": f"_err_minus_{value}"}


def y_errors(frame: pd.DataFrame, value: str) -> dict:
    bars = error_bars(frame, value)
    return {"error_y": bars["plus"], "error_y_minus": bars["minus"]} if bars else {}


def x_errors(frame: pd.DataFrame, value: str) -> dict:
    bars = error_bars(frame, value)
    return {"error_x": bars["plus"], "error_x_minus": bars["minus"]} if bars else {}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
