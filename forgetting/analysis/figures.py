"""Plotly figures and the results table of the unlearning study.

Every figure uses the same method colours and order, the same facet by sparsity and the same
axis names. The dense model (method ``none``, sparsity 0) is drawn dashed in every sparsity
column as the reference the pruned models are compared with. A figure with nothing to draw is
``None``.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

DENSE = "none"
METHOD_ORDER = (DENSE, "random", "attribution", "tuneprune")
METHOD_COLORS = {DENSE: "#444444", "random": "#1f77b4", "attribution": "#d62728", "tuneprune": "#2ca02c"}
LABELS = {"method": "method", "pruned": "MLP neurons pruned", "task": "task", "step": "Python-training step",
          "baseline_acc": "accuracy before fine-tuning", "best_acc": "best accuracy after fine-tuning",
          "heldout_loss": "held-out Python loss (nats/token)", "gain": "recovered by fine-tuning",
          "best_lr": "best learning rate", "sparsity": "MLP neurons pruned", "run_id": "run"}
TABLE_COLUMNS = ["method", "sparsity", "task", "step", "baseline_acc", "best_acc", "gain", "best_lr", "run_id"]
FACET_HEIGHT = 280


def baseline_accuracy_figure(results: pd.DataFrame) -> go.Figure | None:
    return _accuracy_figure(results, "baseline_acc", "Task accuracy before fine-tuning, along Python training")


def finetuned_accuracy_figure(results: pd.DataFrame) -> go.Figure | None:
    return _accuracy_figure(results, "best_acc",
                            "Best task accuracy after fine-tuning (LR sweep), along Python training")


def heldout_loss_figure(curves: pd.DataFrame) -> go.Figure | None:
    return _line(curves, "heldout_loss", "Held-out Python loss during continued training", facet_row=None)


def attack_success_figure(attacks: pd.DataFrame) -> go.Figure | None:
    """Attack success rate per method and sparsity, one column per attack; the plain requests'
    rate (no attack) is the hollow marker."""
    if attacks.empty:
        return None
    frame = attacks.drop_duplicates(["model", "attack"]).assign(
        pruned=lambda f: f["sparsity"].map(_percent_of_neurons))
    figure = px.scatter(frame, x="pruned", y="asr", color="method", facet_col="attack",
                        category_orders={"method": method_order(frame["method"])}, color_discrete_map=METHOD_COLORS,
                        labels=LABELS | {"asr": "attack success rate"}, hover_data=["step", "run_id"],
                        title="Attack success rate by method (hollow: plain requests, no attack)")
    plain = px.scatter(frame, x="pruned", y="asr_plain", color="method", facet_col="attack",
                       color_discrete_map=METHOD_COLORS, symbol_sequence=["circle-open"])
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
    figure = px.scatter(frame, x="accuracy", y="asr", color="method", symbol="attack", facet_col="task",
                        category_orders={"method": method_order(frame["method"])}, color_discrete_map=METHOD_COLORS,
                        labels=LABELS | {"asr": "attack success rate", "accuracy": "task accuracy"},
                        hover_data=["sparsity", "step", "run_id"], title="Attack success rate vs task accuracy")
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(tickformat=".0%")
    return figure


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (method, sparsity, task): accuracy before and after fine-tuning at the last evaluated step.

    The step is chosen per task, and shown, so a task evaluated at fewer checkpoints is still listed.
    """
    if results.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    results = results.reset_index(drop=True)
    last = results.loc[results.groupby(["method", "sparsity", "task"])["step"].idxmax()]
    last = last.assign(gain=last["best_acc"] - last["baseline_acc"])
    order = {method: rank for rank, method in enumerate(method_order(last["method"]))}
    last = last.assign(_rank=last["method"].map(order)).sort_values(["_rank", "sparsity", "task"])
    return last[TABLE_COLUMNS].reset_index(drop=True)


def formatted_table(table: pd.DataFrame) -> pd.DataFrame:
    """The results table as display strings (percentages, points, learning rates), headed by axis names."""
    shown = pd.DataFrame({
        "method": table["method"], "sparsity": table["sparsity"].map(_percent_of_neurons),
        "task": table["task"], "step": table["step"].astype(str),
        "baseline_acc": table["baseline_acc"].map(_percent), "best_acc": table["best_acc"].map(_percent),
        "gain": table["gain"].map(lambda x: "" if _missing(x) else f"{100 * x:+.1f} pts"),
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


def _accuracy_figure(results: pd.DataFrame, column: str, title: str) -> go.Figure | None:
    figure = _line(results, column, title, facet_row="task")
    if figure is not None:
        figure.update_yaxes(tickformat=".0%")
    return figure


def _line(frame: pd.DataFrame, y: str, title: str, facet_row: str | None) -> go.Figure | None:
    if frame.empty or frame[y].isna().all():
        return None
    frame = _with_dense_reference(frame.dropna(subset=[y])).sort_values("step")
    orders = {"method": method_order(frame["method"]),
              "pruned": list(dict.fromkeys(frame.sort_values("sparsity")["pruned"]))}
    if facet_row:
        orders[facet_row] = sorted(frame[facet_row].unique())
    rows = len(orders[facet_row]) if facet_row else 1
    figure = px.line(frame, x="step", y=y, color="method", facet_col="pruned", facet_row=facet_row, markers=True,
                     category_orders=orders, color_discrete_map=METHOD_COLORS, labels=LABELS,
                     hover_data=["run_id"], title=title, height=150 + FACET_HEIGHT * rows)
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    figure.for_each_trace(lambda t: t.update(line_dash="dash") if t.name == DENSE else None)
    return figure


def _with_dense_reference(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy the dense rows into every sparsity column of the pruned methods."""
    dense, pruned = frame[frame["method"] == DENSE], frame[frame["method"] != DENSE]
    levels = sorted(pruned["sparsity"].unique())
    if levels and not dense.empty:
        frame = pd.concat([pruned, *(dense.assign(sparsity=level) for level in levels)], ignore_index=True)
    return frame.assign(pruned=frame["sparsity"].map(_percent_of_neurons))


def _percent_of_neurons(sparsity: float) -> str:
    return f"{100 * sparsity:g}%"


def _percent(value: float) -> str:
    return "" if _missing(value) else f"{100 * value:.1f}%"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
