"""The selective study out of the tracking store: what each pruned, recovered or distilled classifier
keeps (accuracy) for what it costs (active parameters, time per example, memory).

Rows come from ``evaluate -P suite=classification`` runs filed under the study (one per
checkpoint and ``sparse`` setting, newest wins) and from the prune and distill stage runs.
"""
from __future__ import annotations

import mlflow
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

EVALUATION_COLUMNS = ["source_stage", "method", "granularity", "sparsity", "sparse", "accuracy", "f1",
                      "active_parameters", "parameter_mb", "seconds_per_example", "peak_memory_mb",
                      "accuracy_ci_low", "accuracy_ci_high", "model", "run_id"]
PRUNE_COLUMNS = ["method", "granularity", "sparsity", "before_accuracy", "pruned_accuracy", "recovered_accuracy",
                 "recovery_steps", "run_id"]
TABLE = "classifier_evaluations"
INTRO = ("Each point is one classifier checkpoint (fine-tuned, pruned, recovered or distilled student) "
         "scored by <code>evaluate -P suite=classification</code>; time and memory are measured in a "
         "fresh process, with <code>sparse=true</code> running pruned layers as CSR SparseLinear.",
         "Classifier evaluations")
LABELS = {"accuracy": "accuracy", "active_parameters": "active (non-zero) parameters",
          "seconds_per_example": "inference seconds per example", "source_stage": "checkpoint",
          "peak_memory_mb": "peak memory over the process (MB)", "sparsity": "fraction pruned"}


def study_runs(study: str, entry_point: str, extra: str = "") -> list:
    query = (f"tags.`forgetting.entry_point` = '{entry_point}' and tags.`forgetting.study` = '{study}' "
             f"and attributes.status = 'FINISHED'{extra}")
    return mlflow.search_runs(search_all_experiments=True, filter_string=query,
                              order_by=["attributes.start_time DESC"], output_format="list")


def classifier_evaluations(study: str) -> pd.DataFrame:
    """One row per evaluated checkpoint and ``sparse`` setting (newest wins)."""
    rows = [{"source_stage": run.data.params.get("source_stage"), "method": run.data.params.get("method"),
             "granularity": run.data.params.get("granularity"), "sparsity": run.data.params.get("sparsity"),
             "sparse": run.data.params.get("sparse"), "model": run.data.params.get("upstream_model"),
             "run_id": run.info.run_id, **{name: run.data.metrics.get(name) for name in EVALUATION_COLUMNS[5:-2]}}
            for run in study_runs(study, "evaluate", " and params.suite = 'classification'")]
    frame = pd.DataFrame(rows, columns=EVALUATION_COLUMNS).drop_duplicates(["model", "sparse"])
    frame["sparsity"] = pd.to_numeric(frame["sparsity"], errors="coerce")
    return frame.sort_values(["source_stage", "method", "sparsity"], ignore_index=True)


def prune_results(study: str) -> pd.DataFrame:
    """Classifier prune runs of the study, in whichever experiment launched them (newest wins)."""
    rows = [{"method": run.data.params.get("method"), "granularity": run.data.params.get("granularity"),
             "sparsity": run.data.params.get("sparsity"), "recovery_steps": run.data.params.get("recovery_steps"),
             "run_id": run.info.run_id, **{name: run.data.metrics.get(name) for name in PRUNE_COLUMNS[3:6]}}
            for run in study_runs(study, "prune")]
    frame = pd.DataFrame(rows, columns=PRUNE_COLUMNS).drop_duplicates(["method", "granularity", "sparsity"])
    frame["sparsity"] = pd.to_numeric(frame["sparsity"], errors="coerce")
    return frame.sort_values(["granularity", "method", "sparsity"], ignore_index=True)


def accuracy_vs_figure(evaluations: pd.DataFrame, x: str, title: str) -> go.Figure | None:
    frame = evaluations.dropna(subset=[x, "accuracy"])
    if frame.empty:
        return None
    from forgetting.analysis import noise

    figure = px.scatter(frame, x=x, y="accuracy", color="method", symbol="source_stage",
                        hover_data=["granularity", "sparsity", "sparse", "model", "run_id"], labels=LABELS,
                        title=f"{title} (95% intervals)", **noise.y_errors(frame, "accuracy"))
    figure.update_traces(marker_size=11)
    figure.update_yaxes(tickformat=".0%")
    return figure


def prune_recovery_figure(prunes: pd.DataFrame) -> go.Figure | None:
    """Accuracy before pruning, right after it and after recovery, per criterion and fraction."""
    if prunes.empty:
        return None
    long = prunes.melt(id_vars=["method", "granularity", "sparsity"],
                       value_vars=["before_accuracy", "pruned_accuracy", "recovered_accuracy"],
                       var_name="when", value_name="accuracy").dropna(subset=["accuracy"])
    long["when"] = long["when"].str.removesuffix("_accuracy")
    figure = px.line(long, x="sparsity", y="accuracy", color="method", line_dash="when", facet_col="granularity",
                     markers=True, labels=LABELS, title="Accuracy before pruning, pruned, and after recovery")
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(tickformat=".0%")
    return figure


def collect(study: str) -> tuple[dict, dict, dict, list[str]]:
    """``(frames, figures, counts, notes)`` of the selective study."""
    evaluations = classifier_evaluations(study)
    prunes = prune_results(study)
    drawn = {"accuracy_vs_active_parameters": accuracy_vs_figure(
                 evaluations, "active_parameters", "Accuracy vs active (non-zero) parameters"),
             "accuracy_vs_time": accuracy_vs_figure(
                 evaluations, "seconds_per_example", "Accuracy vs inference time per example"),
             "accuracy_vs_memory": accuracy_vs_figure(evaluations, "peak_memory_mb", "Accuracy vs peak memory"),
             "prune_recovery": prune_recovery_figure(prunes)}
    notes = []
    if evaluations.empty:
        notes.append(f"No FINISHED `evaluate -P suite=classification` runs in study {study!r}: no trade-off figures.")
    if prunes.empty:
        notes.append(f"No FINISHED prune runs of classifiers in study {study!r}.")
    counts = {"n_evaluations": len(evaluations), "n_prune_runs": len(prunes)}
    return {TABLE: evaluations, "prune_results": prunes}, drawn, counts, notes
