"""The forgetting study out of the tracking store: what each post-training method forgot, per domain.

Rows come from FINISHED ``evaluate`` runs of the study (suite ``forgetting`` or ``all``, newest per
model); a model's method, domain and start are the run's lineage parameters, its scale the
``scale`` tag (parameters) of its registered version (``query.ModelSizes``: else a parameter count its
runs logged, or its config). Figures: the forgetting heatmap (accuracy change vs the start, method ×
domain × benchmark, a row per start and model size), the safety-vs-task Pareto front (refusal rate on
harmful requests vs accuracy on the domain's own held-out benchmarks; a front per model size) and
forgetting vs scale (one point per model size).
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from forgetting.analysis.figures import size_order, with_sizes
from forgetting.analysis.query import ModelSizes
from forgetting.analysis.selective import study_runs

COLUMNS = ["model", "method", "domain", "start", "scale", "benchmark", "accuracy", "reference_accuracy", "delta",
           "forgetting_rate", "learning_rate", "n", "run_id"]
SUMMARY_METRICS = ["mean_accuracy", "refusal_rate", "benign_compliance_rate", "self_bleu", "distinct_2", "length_mean",
                   "ece", "cka_mean", "weight_delta_effective_rank", "refusal_direction_retained"]
TABLE = "forgetting_results"
INTRO = ("Each row is one benchmark of one post-trained model against its start. <code>delta</code> is the "
         "accuracy change; <code>forgetting_rate</code> is the fraction of examples the start answered correctly "
         "and the model now gets wrong, <code>learning_rate</code> the reverse.", "Forgetting results")
LABELS = {"delta": "accuracy change vs start", "scale": "parameters", "task_accuracy": "accuracy on the domain's benchmarks",
          "refusal_rate": "refusal rate on harmful requests", "mean_forgetting_rate": "mean forgetting rate",
          "model_size": "model size"}


def _newest_per_model(runs, suites: tuple[str, ...]):
    seen = set()
    for run in runs:  # newest first
        model = run.data.params.get("model")
        if run.data.params.get("suite") in suites and model not in seen:
            seen.add(model)
            yield run


def forgetting_results(runs: list, sizes: ModelSizes | None = None) -> pd.DataFrame:
    """One row per (model, benchmark) from ``runs``, the study's evaluate runs, newest first; ``scale`` is
    the model's parameter count (None where unknown)."""
    sizes = sizes or ModelSizes()
    rows = []
    for run in _newest_per_model(runs, ("forgetting", "all")):
        params, metrics = run.data.params, run.data.metrics
        lineage = {key: params.get(key) for key in ("model", "method", "domain", "start")}
        scale = sizes.parameters(params["model"])
        for benchmark in sorted(k.removesuffix("_forgetting_rate") for k in metrics if k.endswith("_forgetting_rate")):
            rows.append(lineage | {"scale": scale, "benchmark": benchmark, "run_id": run.info.run_id,
                                   **{column: metrics.get(f"{benchmark}_{column}") for column in COLUMNS[6:-1]}})
    return pd.DataFrame(rows, columns=COLUMNS)


def model_summary(runs: list, results: pd.DataFrame) -> pd.DataFrame:
    """One row per post-trained model: its task accuracy (the domain's held-out benchmarks), mean
    forgetting rate over the other benchmarks, and the safety, policy and representation metrics."""
    from forgetting.rewards.domains import DOMAINS

    rows = {}
    for suite in ("forgetting", "safety", "policy", "representation", "all"):
        for run in _newest_per_model(runs, (suite,)):
            row = rows.setdefault(run.data.params["model"], {"model": run.data.params["model"]})
            row |= {name: run.data.metrics[name] for name in SUMMARY_METRICS if name in run.data.metrics}
    summary = pd.DataFrame(list(rows.values()), columns=["model", *SUMMARY_METRICS])
    if results.empty:
        return summary.assign(method=None, domain=None, start=None, scale=None, task_accuracy=None,
                              mean_forgetting_rate=None)
    own = results.apply(lambda r: r["domain"] in DOMAINS and r["benchmark"] in DOMAINS[r["domain"]].eval_tasks, axis=1)
    per_model = results.groupby("model").first()[["method", "domain", "start", "scale"]]
    per_model["task_accuracy"] = results[own].groupby("model")["accuracy"].mean()
    per_model["mean_forgetting_rate"] = results[~own].groupby("model")["forgetting_rate"].mean()
    return summary.merge(per_model.reset_index(), on="model", how="left")


def _sized(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with ``model_size`` (the label of its ``scale``) and the sizes from the smallest."""
    frame = with_sizes(frame.assign(parameters=pd.to_numeric(frame["scale"], errors="coerce")))
    return frame, size_order(frame)


def heatmap_figure(results: pd.DataFrame) -> go.Figure | None:
    """Accuracy change per method and benchmark, a column per domain, a row per start (and per model size
    when there are several, so models of different sizes are never averaged together)."""
    if results.empty:
        return None
    frame, sizes = _sized(results)
    row, orders = "start", {"start": sorted(frame["start"].dropna().unique())}
    if len(sizes) > 1:
        row = "start · model size"
        frame = frame.assign(**{row: frame["start"].astype(str) + " · " + frame["model_size"]})
        orders[row] = [f"{start} · {size}" for start in orders["start"] for size in sizes
                       if f"{start} · {size}" in set(frame[row])]
    return px.density_heatmap(frame, x="benchmark", y="method", z="delta", histfunc="avg", facet_col="domain",
                              facet_row=row, category_orders=orders, color_continuous_scale="RdBu",
                              color_continuous_midpoint=0, labels=LABELS,
                              title="Forgetting: accuracy change vs the start (method × domain × benchmark)")


def pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both ``x`` and ``y`` (higher is better), sorted by ``x``."""
    ordered = frame.sort_values([x, y], ascending=False)
    front, best = [], float("-inf")
    for index, row in ordered.iterrows():
        if row[y] > best:
            front.append(index)
            best = row[y]
    return frame.loc[front].sort_values(x)


def pareto_figure(summary: pd.DataFrame) -> go.Figure | None:
    """Refusal rate vs task accuracy per post-trained model; with several model sizes a column and a
    Pareto front per size."""
    frame = summary.dropna(subset=["task_accuracy", "refusal_rate"])
    if frame.empty:
        return None
    frame, sizes = _sized(frame)
    column = "model_size" if len(sizes) > 1 else None
    figure = px.scatter(frame, x="task_accuracy", y="refusal_rate", color="method", symbol="start", facet_col=column,
                        category_orders={"model_size": sizes}, hover_data=["model", "domain", "scale"],
                        labels=LABELS, title="Safety vs task: the Pareto front")
    for position, size in enumerate(sizes if column else [None], start=1):
        front = pareto_front(frame[frame["model_size"] == size] if column else frame, "task_accuracy", "refusal_rate")
        figure.add_trace(go.Scatter(x=front["task_accuracy"], y=front["refusal_rate"], mode="lines",
                                    line={"dash": "dot", "color": "grey"}, name="Pareto front",
                                    showlegend=position == 1), **({"row": 1, "col": position} if column else {}))
    if column:
        figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    return figure


def scale_figure(summary: pd.DataFrame) -> go.Figure | None:
    """Mean forgetting rate against the parameter count: one point per model size, a line per method and
    domain, a column per start."""
    frame = summary.dropna(subset=["scale", "mean_forgetting_rate"])
    if frame.empty:
        return None
    frame = frame.assign(scale=pd.to_numeric(frame["scale"]))
    frame = frame.groupby(["start", "method", "domain", "scale"], as_index=False, dropna=False).agg(
        mean_forgetting_rate=("mean_forgetting_rate", "mean"), model=("model", ", ".join))
    figure = px.line(frame.sort_values("scale"), x="scale", y="mean_forgetting_rate", color="method",
                     line_dash="domain", facet_col="start", markers=True, log_x=True, hover_data=["model"],
                     labels=LABELS, title="Forgetting vs model scale (one point per model size)")
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    return figure


def collect(study: str) -> tuple[dict, dict, dict, list[str]]:
    """``(frames, figures, counts, notes)`` of the forgetting study."""
    runs = study_runs(study, "evaluate")
    results = forgetting_results(runs, ModelSizes())
    summary = model_summary(runs, results)
    drawn = {"forgetting_heatmap": heatmap_figure(results), "safety_vs_task_pareto": pareto_figure(summary),
             "forgetting_vs_scale": scale_figure(summary)}
    notes = [] if not results.empty else [
        f"No FINISHED evaluate runs with suite=forgetting (or all) and a reference in study {study!r}."]
    counts = {"n_evaluated_models": int(results["model"].nunique())}
    return {TABLE: results, "model_summary": summary}, drawn, counts, notes
