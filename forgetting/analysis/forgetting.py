"""The forgetting study out of the tracking store: what each post-training method forgot, per domain.

Rows come from FINISHED ``evaluate`` runs of the study (suite ``forgetting`` or ``all``, newest per
model); a model's method, domain and start are the run's lineage parameters, its scale the
``scale`` tag (parameters) of its registered version. Figures: the forgetting heatmap (accuracy
change vs the start, method × domain × benchmark), the safety-vs-task Pareto front (refusal rate on
harmful requests vs accuracy on the domain's own held-out benchmarks) and forgetting vs scale.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

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
          "refusal_rate": "refusal rate on harmful requests", "mean_forgetting_rate": "mean forgetting rate"}


def _scale(spec: str) -> float | None:
    """The registered version's ``scale`` tag; None outside the registry or once the version is deleted."""
    from forgetting.errors import UsageError
    from forgetting.tracking.checkpoints import checkpoint_version, is_tracking_uri

    try:
        version = checkpoint_version(spec) if is_tracking_uri(spec) else None
    except UsageError:
        return None
    return float(version.tags["scale"]) if version and "scale" in version.tags else None


def _newest_per_model(runs, suites: tuple[str, ...]):
    seen = set()
    for run in runs:  # newest first
        model = run.data.params.get("model")
        if run.data.params.get("suite") in suites and model not in seen:
            seen.add(model)
            yield run


def forgetting_results(runs: list) -> pd.DataFrame:
    """One row per (model, benchmark) from ``runs``, the study's evaluate runs, newest first."""
    rows = []
    for run in _newest_per_model(runs, ("forgetting", "all")):
        params, metrics = run.data.params, run.data.metrics
        lineage = {key: params.get(key) for key in ("model", "method", "domain", "start")}
        scale = _scale(params["model"])
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


def heatmap_figure(results: pd.DataFrame) -> go.Figure | None:
    if results.empty:
        return None
    return px.density_heatmap(results, x="benchmark", y="method", z="delta", histfunc="avg", facet_col="domain",
                              facet_row="start", color_continuous_scale="RdBu", color_continuous_midpoint=0,
                              labels=LABELS, title="Forgetting: accuracy change vs the start (method × domain × benchmark)")


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
    frame = summary.dropna(subset=["task_accuracy", "refusal_rate"])
    if frame.empty:
        return None
    figure = px.scatter(frame, x="task_accuracy", y="refusal_rate", color="method", symbol="start",
                        hover_data=["model", "domain"], labels=LABELS, title="Safety vs task: the Pareto front")
    front = pareto_front(frame, "task_accuracy", "refusal_rate")
    figure.add_trace(go.Scatter(x=front["task_accuracy"], y=front["refusal_rate"], mode="lines",
                                line={"dash": "dot", "color": "grey"}, name="Pareto front"))
    return figure


def scale_figure(summary: pd.DataFrame) -> go.Figure | None:
    frame = summary.dropna(subset=["scale", "mean_forgetting_rate"])
    if frame.empty:
        return None
    return px.line(frame.sort_values("scale"), x="scale", y="mean_forgetting_rate", color="method",
                   line_dash="domain", markers=True, log_x=True, hover_data=["model", "start"], labels=LABELS,
                   title="Forgetting vs model scale")


def collect(study: str) -> tuple[dict, dict, dict, list[str]]:
    """``(frames, figures, counts, notes)`` of the forgetting study."""
    runs = study_runs(study, "evaluate")
    results = forgetting_results(runs)
    summary = model_summary(runs, results)
    drawn = {"forgetting_heatmap": heatmap_figure(results), "safety_vs_task_pareto": pareto_figure(summary),
             "forgetting_vs_scale": scale_figure(summary)}
    notes = [] if not results.empty else [
        f"No FINISHED evaluate runs with suite=forgetting (or all) and a reference in study {study!r}."]
    counts = {"n_evaluated_models": int(results["model"].nunique())}
    return {TABLE: results, "model_summary": summary}, drawn, counts, notes
