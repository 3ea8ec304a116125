"""Plotly figures and the results table of the unlearning study.

Every figure uses the same method colours and order, the same facet by sparsity and the same
axis names. The dense model (method ``none``, sparsity 0) is drawn dashed in every sparsity
column as the reference the pruned models are compared with. A grid run on several models adds a
row of facets per model size (its parameter count), and the scale figures put the parameter count on
the x-axis: one point per model size. A figure with nothing to draw is ``None``.

Every measured number carries its 95% interval: error bars on the figures, ``value [low, high]`` in the
table (``forgetting.analysis.noise``); runs that differ only by seed are drawn once, as their mean over
seeds with the interval over them.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from forgetting.analysis import noise

DENSE = "none"
METHOD_ORDER = (DENSE, "random", "attribution", "tuneprune")
METHOD_COLORS = {DENSE: "#444444", "random": "#1f77b4", "attribution": "#d62728", "tuneprune": "#2ca02c"}
LABELS = {"method": "method", "pruned": "MLP neurons pruned", "task": "task", "step": "Python-training step",
          "baseline_acc": "accuracy before fine-tuning", "best_acc": "best accuracy after fine-tuning",
          "heldout_loss": "held-out Python loss (nats/token)", "gain": "recovered by fine-tuning",
          "best_lr": "best learning rate", "sparsity": "MLP neurons pruned", "run_id": "run",
          "parameters": "model parameters", "model_size": "model size", "base_model": "model",
          "tokens_per_second": "training tokens/s", "peak_memory_mb": "peak memory (MB)"}
TABLE_COLUMNS = ["base_model", "parameters", "method", "sparsity", "task", "step", "n_seeds",
                 *[c for v in ("baseline_acc", "best_acc", "gain") for c in (v, noise.low(v), noise.high(v))],
                 "best_lr", "run_id"]
ATTACK_CONDITION = ["base_model", "parameters", "method", "sparsity", "step", "attack"]
UNKNOWN_SIZE = "size unknown"
FACET_HEIGHT = 280


def baseline_accuracy_figure(results: pd.DataFrame) -> go.Figure | None:
    return _accuracy_figure(results, "baseline_acc", "Task accuracy before fine-tuning, along Python training")


def finetuned_accuracy_figure(results: pd.DataFrame) -> go.Figure | None:
    return _accuracy_figure(results, "best_acc",
                            "Best task accuracy after fine-tuning (LR sweep), along Python training")


def heldout_loss_figure(curves: pd.DataFrame) -> go.Figure | None:
    return _line(curves, "heldout_loss", "Held-out Python loss during continued training", facet_row=None)


def size_label(parameters) -> str:
    """A parameter count as a model size: 134515008 -> '135M', 1.7e9 -> '1.7B'."""
    if _missing(parameters) or not parameters:
        return UNKNOWN_SIZE
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if parameters >= scale:
            return f"{parameters / scale:.3g}{suffix}"
    return f"{parameters:.0f}"


def with_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``model_size``, the label of its ``parameters`` column."""
    parameters = frame["parameters"] if "parameters" in frame else pd.Series(float("nan"), index=frame.index)
    return frame.assign(model_size=parameters.map(size_label))


def size_order(frame: pd.DataFrame) -> list[str]:
    """The model sizes of ``frame`` (``with_sizes``) from the smallest; an unknown size last."""
    known = frame.dropna(subset=["parameters"]) if "parameters" in frame else frame.iloc[:0]
    labels = list(dict.fromkeys(known.sort_values("parameters")["model_size"]))
    return labels + [UNKNOWN_SIZE] * (UNKNOWN_SIZE in set(frame["model_size"]))


def attack_success_figure(attacks: pd.DataFrame) -> go.Figure | None:
    """Attack success rate per method and sparsity, one column per attack (a row per model size when there
    are several); the plain requests' rate (no attack) is the hollow marker."""
    if attacks.empty:
        return None
    frame = noise.over_seeds(attacks.drop_duplicates(["model", "attack", "seed"]), ATTACK_CONDITION,
                             ["asr", "asr_plain"])
    frame = with_sizes(frame).assign(pruned=lambda f: f["sparsity"].map(_percent_of_neurons))
    sizes = size_order(frame)
    row = "model_size" if len(sizes) > 1 else None
    figure = px.scatter(frame, x="pruned", y="asr", color="method", facet_col="attack", facet_row=row,
                        category_orders={"method": method_order(frame["method"]), "model_size": sizes},
                        color_discrete_map=METHOD_COLORS,
                        labels=LABELS | {"asr": "attack success rate"}, hover_data=["step", "n_seeds", "run_id"],
                        title="Attack success rate by method (hollow: plain requests, no attack; 95% intervals)",
                        **noise.y_errors(frame, "asr"))
    plain = px.scatter(frame, x="pruned", y="asr_plain", color="method", facet_col="attack", facet_row=row,
                       category_orders={"model_size": sizes},
                       color_discrete_map=METHOD_COLORS, symbol_sequence=["circle-open"],
                       **noise.y_errors(frame, "asr_plain"))
    for trace in plain.data:
        trace.showlegend = False
        figure.add_trace(trace)
    figure.update_yaxes(tickformat=".0%", range=[-0.05, 1.05])
    return figure


def attack_vs_accuracy_figure(attacks: pd.DataFrame) -> go.Figure | None:
    """Attack success rate against task accuracy of the same checkpoint."""
    frame = attacks.dropna(subset=["accuracy"])
    if frame.empty:
        return None
    frame = with_sizes(noise.over_seeds(frame.drop_duplicates(["model", "attack", "task", "seed"]),
                                        [*ATTACK_CONDITION, "task"], ["asr", "accuracy"]))
    sizes = size_order(frame)
    figure = px.scatter(frame, x="accuracy", y="asr", color="method", symbol="attack", facet_col="task",
                        facet_row="model_size" if len(sizes) > 1 else None,
                        category_orders={"method": method_order(frame["method"]), "model_size": sizes},
                        color_discrete_map=METHOD_COLORS,
                        labels=LABELS | {"asr": "attack success rate", "accuracy": "task accuracy"},
                        hover_data=["sparsity", "step", "n_seeds", "run_id"],
                        title="Attack success rate vs task accuracy (95% intervals)",
                        **noise.x_errors(frame, "accuracy"), **noise.y_errors(frame, "asr"))
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(tickformat=".0%")
    return figure


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, sparsity, task): accuracy before and after fine-tuning at the last evaluated step;
    the smallest model first.

    The step is chosen per task, and shown, so a task evaluated at fewer checkpoints is still listed.
    """
    if results.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    results = results.reset_index(drop=True)
    last = results.loc[results.groupby(["base_model", "method", "sparsity", "task"], dropna=False)["step"].idxmax()]
    if "gain" not in last:  # a frame from before fine-tuning gains were aggregated over seeds
        last = last.assign(gain=last["best_acc"] - last["baseline_acc"])
    for column in TABLE_COLUMNS:
        if column not in last:
            last[column] = 1 if column == "n_seeds" else float("nan")
    order = {method: rank for rank, method in enumerate(method_order(last["method"]))}
    last = last.assign(_rank=last["method"].map(order)).sort_values(
        ["parameters", "base_model", "_rank", "sparsity", "task"], na_position="last")
    return last[TABLE_COLUMNS].reset_index(drop=True)


def formatted_table(table: pd.DataFrame) -> pd.DataFrame:
    """The results table as display strings (percentages, points, learning rates), headed by axis names."""
    models = table["base_model"].fillna("").astype(str)
    shown = pd.DataFrame({
        "base_model": [f"{model} ({size_label(count)})" if not _missing(count) else model
                       for model, count in zip(models, table["parameters"])],
        "method": table["method"], "sparsity": table["sparsity"].map(_percent_of_neurons),
        "task": table["task"], "step": table["step"].astype(str), "seeds": table["n_seeds"],
        "baseline_acc": _with_interval(table, "baseline_acc", _percent),
        "best_acc": _with_interval(table, "best_acc", _percent),
        "gain": _with_interval(table, "gain", lambda x: "" if _missing(x) else f"{100 * x:+.1f} pts"),
        "best_lr": table["best_lr"].map(lambda x: "" if _missing(x) else f"{x:.0e}"),
        "run_id": table["run_id"]})
    return shown.rename(columns={c: LABELS.get(c, c) for c in shown.columns})


def table_figure(table: pd.DataFrame) -> go.Figure | None:
    if table.empty:
        return None
    shown = formatted_table(table)
    figure = go.Figure(go.Table(header={"values": [f"<b>{c}</b>" for c in shown.columns], "align": "left"},
                                cells={"values": [shown[c] for c in shown.columns], "align": "left"}))
    figure.update_layout(title="Results at the last Python-training step: before → best after fine-tuning",
                         height=120 + 28 * (len(shown) + 1))
    return figure


def method_order(methods) -> list[str]:
    present = set(methods)
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def scale_figure(table: pd.DataFrame) -> go.Figure | None:
    """What fine-tuning recovers at the last Python-training step against the model's parameter count:
    one point per model size, a line per method, a column per fraction pruned, a row per task."""
    frame = table.dropna(subset=["parameters", "gain"])
    if frame.empty:
        return None
    frame = with_sizes(frame).assign(pruned=lambda f: f["sparsity"].map(_percent_of_neurons))
    frame = frame.sort_values("parameters").drop_duplicates(["model_size", "method", "sparsity", "task"])
    orders = {"method": method_order(frame["method"]),
              "pruned": list(dict.fromkeys(frame.sort_values("sparsity")["pruned"])),
              "task": sorted(frame["task"].unique())}
    figure = px.line(frame, x="parameters", y="gain", color="method", facet_col="pruned", facet_row="task",
                     markers=True, log_x=True, category_orders=orders, color_discrete_map=METHOD_COLORS,
                     labels=LABELS, hover_data=["base_model", "model_size", "step", "run_id"],
                     **noise.y_errors(frame, "gain"),
                     height=150 + FACET_HEIGHT * len(orders["task"]),
                     title="Recovered by fine-tuning vs model size (last Python-training step)")
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    figure.update_yaxes(tickformat="+.0%")
    return figure


def train_cost_figure(costs: pd.DataFrame) -> go.Figure | None:
    """Training speed and peak memory of each train run against the parameter count of the model it
    descends from: one point per model size, a line per (method, fraction pruned)."""
    frame = costs.dropna(subset=["parameters"])
    if frame.empty:
        return None
    frame = with_sizes(frame).assign(pruned=lambda f: f["sparsity"].map(_percent_of_neurons),
                                     peak_memory_mb=lambda f: f[["peak_rss_mb", "peak_gpu_memory_mb"]].max(axis=1))
    long = frame.melt(id_vars=["base_model", "model_size", "parameters", "method", "pruned", "sparsity", "run_id"],
                      value_vars=["tokens_per_second", "peak_memory_mb"], var_name="measure",
                      value_name="value").dropna(subset=["value"])
    if long.empty:
        return None
    long["measure"] = long["measure"].map(LABELS)
    figure = px.line(long.sort_values(["sparsity", "parameters"]), x="parameters", y="value", color="method",
                     line_dash="pruned", facet_col="measure", markers=True, log_x=True,
                     category_orders={"method": method_order(long["method"])}, color_discrete_map=METHOD_COLORS,
                     labels=LABELS | {"value": ""}, hover_data=["base_model", "model_size", "run_id"],
                     title="Training speed and peak memory vs model size (peak memory: the larger of the "
                           "process's RSS and GPU peaks; stages run in one process, as under main, share it)")
    figure.update_yaxes(matches=None, showticklabels=True)
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return figure


def _accuracy_figure(results: pd.DataFrame, column: str, title: str) -> go.Figure | None:
    figure = _line(results, column, title, facet_row="task")
    if figure is not None:
        figure.update_yaxes(tickformat=".0%")
    return figure


def _line(frame: pd.DataFrame, y: str, title: str, facet_row: str | None) -> go.Figure | None:
    if frame.empty or frame[y].isna().all():
        return None
    frame = _with_dense_reference(with_sizes(frame.dropna(subset=[y]))).sort_values("step")
    orders = {"method": method_order(frame["method"]),
              "pruned": list(dict.fromkeys(frame.sort_values("sparsity")["pruned"]))}
    if facet_row:
        orders[facet_row] = sorted(frame[facet_row].unique())
    sizes = size_order(frame)
    if len(sizes) > 1:  # a row of facets per model size (and task)
        if facet_row:
            combined = f"model size · {LABELS.get(facet_row, facet_row)}"
            frame = frame.assign(**{combined: frame["model_size"] + " · " + frame[facet_row].astype(str)})
            present = set(frame[combined])
            orders[combined] = [f"{size} · {value}" for size in sizes for value in orders[facet_row]
                                if f"{size} · {value}" in present]
            facet_row = combined
        else:
            facet_row, orders["model_size"] = "model_size", sizes
    rows = len(orders[facet_row]) if facet_row else 1
    figure = px.line(frame, x="step", y=y, color="method", facet_col="pruned", facet_row=facet_row, markers=True,
                     category_orders=orders, color_discrete_map=METHOD_COLORS, labels=LABELS,
                     hover_data=[c for c in ("n_seeds", "run_id") if c in frame], title=title,
                     height=150 + FACET_HEIGHT * rows, **noise.y_errors(frame, y))
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    figure.for_each_trace(lambda t: t.update(line_dash="dash") if t.name == DENSE else None)
    return figure


def _with_dense_reference(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy each model size's dense rows into every sparsity column of its pruned methods."""
    parts = []
    for _, group in frame.groupby("model_size", sort=False):
        dense, pruned = group[group["method"] == DENSE], group[group["method"] != DENSE]
        levels = sorted(pruned["sparsity"].unique())
        parts.append(pd.concat([pruned, *(dense.assign(sparsity=level) for level in levels)], ignore_index=True)
                     if levels and not dense.empty else group)
    frame = pd.concat(parts, ignore_index=True) if parts else frame
    return frame.assign(pruned=frame["sparsity"].map(_percent_of_neurons))


def noise_findings(table: pd.DataFrame) -> list[str]:
    """In words: which fine-tuning gains are beyond noise, and how each pruned method's best accuracy compares
    with the dense model's (same model and task, last step), where intervals exist."""
    if table.empty:
        return []
    said = []
    judged = table.dropna(subset=[noise.low("gain"), noise.high("gain")])
    if judged.empty:
        said.append("No interval on the fine-tuning accuracies: each condition has one seed and the finetune "
                    "stage logs no interval; run the grid with several seeds for error bars.")
    for _, row in judged.iterrows():
        said.append(f"{row['method']} {_percent_of_neurons(row['sparsity'])} on {row['task']} "
                    f"({row['base_model']}): recovered {_interval_points(row, 'gain')} over {int(row['n_seeds'])} "
                    f"seeds, {noise.verdict(row[noise.low('gain')], row[noise.high('gain')])}.")
    for (model, task), group in table.groupby(["base_model", "task"], dropna=False):
        dense = group[group["method"] == DENSE]
        for _, row in group[group["method"] != DENSE].iterrows():
            if dense.empty:
                break
            ref = dense.iloc[0]
            diff = noise.difference(*[(r["best_acc"], r[noise.low("best_acc")], r[noise.high("best_acc")])
                                      for r in (row, ref)])
            if _missing(diff[1]):
                continue
            said.append(f"{row['method']} {_percent_of_neurons(row['sparsity'])} vs dense on {task} ({model}): best "
                        f"accuracy {100 * diff[0]:+.1f} pts [{100 * diff[1]:+.1f}, {100 * diff[2]:+.1f}], "
                        f"{noise.verdict(diff[1], diff[2])}.")
    return said


def _interval_points(row, name: str) -> str:
    return (f"{100 * row[name]:+.1f} pts [{100 * row[noise.low(name)]:+.1f}, "
            f"{100 * row[noise.high(name)]:+.1f}]")


def _with_interval(table: pd.DataFrame, name: str, show) -> list[str]:
    """``show(value) [show(low), show(high)]`` per row, the value alone where there is no interval."""
    lows = table.get(noise.low(name), pd.Series(float("nan"), index=table.index))
    highs = table.get(noise.high(name), pd.Series(float("nan"), index=table.index))
    return [show(v) if _missing(lo) or _missing(hi) else f"{show(v)} [{show(lo)}, {show(hi)}]"
            for v, lo, hi in zip(table[name], lows, highs)]


def _percent_of_neurons(sparsity: float) -> str:
    return f"{100 * sparsity:g}%"


def _percent(value: float) -> str:
    return "" if _missing(value) else f"{100 * value:.1f}%"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
