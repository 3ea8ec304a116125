"""The attribution study out of the tracking store: does each method find the responsible source,
how close is it to the leave-dataset-out ground truth, and what does it cost as models grow.

One row per ``attribute`` run and method (newest run wins per model, data and method). A model's size is
the ``model_parameters`` its run logged (``query.ModelSizes`` for a run that did not log it); the time and
memory figures put it on the x-axis, one point per model size.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from forgetting.analysis.query import ModelSizes
from forgetting.analysis.selective import study_runs
from forgetting.attribution.stage import GROUND_TRUTH

COLUMNS = ["train_data", "model", "model_parameters", "method", "rank", "runtime_s", "peak_rss_mb",
           f"spearman_vs_{GROUND_TRUTH}", f"pearson_vs_{GROUND_TRUTH}", "run_id"]
LABELS = {"model_parameters": "model parameters", "runtime_s": "wall time (s)", "peak_rss_mb": "peak RSS of the run (MB)",
          "rank": "rank of the responsible source", "train_data": "experiment"}
TABLE = "attribution_results"
INTRO = ("Each row is one method in one <code>attribute</code> run. <code>rank</code> is the place of the source "
         "responsible by construction (1 = found); the correlations compare a method's per-source scores with "
         "the leave-dataset-out ground truth (one retraining per source) where the run measured it.",
         "Attribution results")


def attribution_results(study: str, sizes: ModelSizes | None = None) -> pd.DataFrame:
    runs = study_runs(study, "attribute")
    sizes = sizes or ModelSizes({run.data.params.get("model"): run.data.metrics.get("model_parameters")
                                 for run in reversed(runs)})  # the newest count of a model stands
    rows = []
    for run in runs:
        metrics, params = run.data.metrics, run.data.params
        methods = [name.removeprefix("runtime_s_") for name in metrics if name.startswith("runtime_s_")]
        parameters = metrics.get("model_parameters") or sizes.parameters(params.get("model"))
        rows += [{"train_data": params.get("train_data"), "model": params.get("model"),
                  "model_parameters": parameters, "method": method,
                  "rank": metrics.get(f"rank_{method}"), "runtime_s": metrics[f"runtime_s_{method}"],
                  "peak_rss_mb": metrics.get("peak_rss_mb"),
                  **{f"{kind}_vs_{GROUND_TRUTH}": metrics.get(f"{kind}_{method}_vs_{GROUND_TRUTH}")
                     for kind in ("spearman", "pearson")},
                  "run_id": run.info.run_id} for method in methods]
    frame = pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["train_data", "model", "method"])
    return frame.sort_values(["train_data", "model_parameters", "method"], ignore_index=True)


def scaling_figure(results: pd.DataFrame, y: str, title: str) -> go.Figure | None:
    """``y`` against the model's parameter count: one point per model size (the newest run's where two
    models have the same count), a line per method and experiment."""
    frame = results.dropna(subset=["model_parameters", y]).drop_duplicates(["train_data", "model_parameters", "method"])
    if frame.empty:
        return None
    figure = px.line(frame.sort_values("model_parameters"), x="model_parameters", y=y, color="method",
                     line_dash="train_data", markers=True, log_x=True, log_y=True, hover_data=["model", "run_id"],
                     labels=LABELS, title=title)
    return figure


def agreement_figure(results: pd.DataFrame) -> go.Figure | None:
    frame = results[results["method"] != GROUND_TRUTH].dropna(subset=[f"pearson_vs_{GROUND_TRUTH}"])
    if frame.empty:
        return None
    long = frame.melt(id_vars=["train_data", "model", "method"],
                      value_vars=[f"spearman_vs_{GROUND_TRUTH}", f"pearson_vs_{GROUND_TRUTH}"],
                      var_name="correlation", value_name="value")
    long["correlation"] = long["correlation"].str.removesuffix(f"_vs_{GROUND_TRUTH}")
    return px.bar(long, x="method", y="value", color="correlation", barmode="group", facet_col="train_data",
                  hover_data=["model"], labels={"value": "correlation with leave-dataset-out"},
                  title="Agreement of each method with the leave-dataset-out ground truth")


def collect(study: str) -> tuple[dict, dict, dict, list[str]]:
    """``(frames, figures, counts, notes)`` of the attribution study."""
    results = attribution_results(study)
    drawn = {"runtime_vs_model_size": scaling_figure(results, "runtime_s", "Wall time vs model size"),
             "memory_vs_model_size": scaling_figure(results.drop_duplicates("run_id"), "peak_rss_mb",
                                                    "Peak memory vs model size (per run)"),
             "agreement_with_ground_truth": agreement_figure(results)}
    notes = [] if not results.empty else [f"No FINISHED attribute runs in study {study!r}."]
    counts = {"n_attribute_runs": results["run_id"].nunique()}
    return {TABLE: results}, drawn, counts, notes
