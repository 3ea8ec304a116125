"""The ``probes`` evaluation suite: per-layer linear knowledge probes on one checkpoint.

Logged in the active run: the metrics ``probe_accuracy``, ``probe_control_accuracy`` and
``probe_selectivity`` with the layer as the step (so the MLflow UI draws them against depth), the
summary ``best_selectivity``/``best_layer``, the table ``probes/layers.json`` and the figure
``probes/layers.html``. Each accuracy is a rate over the ``n_probe_statements`` held-out statements and comes
with its Wilson 95% interval (``probe_accuracy_ci_low``/``_ci_high`` per layer, ``best_layer_accuracy_ci_*``),
so the forgetting analysis can say whether a post-trained model's probes lost accuracy beyond noise.
"""
from __future__ import annotations

import mlflow


def check_probes(config) -> None:
    from forgetting.errors import check_range

    check_range("probe_c", config.probe_c, 0, low_open=True)


def probes_summary(config, metrics: dict) -> str:
    return (f"fact probes: best selectivity {metrics['best_selectivity']:.3f} at layer {int(metrics['best_layer'])} "
            f"(accuracy {metrics['best_layer_accuracy']:.3f})")


def evaluate_probes(config) -> dict[str, float]:
    """Probe every layer inside the active run; the metrics, table and figure described above."""
    import pandas as pd
    import plotly.express as px

    from forgetting.data import load_task, log_dataset
    from forgetting.scoring.intervals import rate
    from forgetting.evaluation.probes import fact_statements, probe_layers
    from forgetting.models import load_model

    facts = load_task("facts", "all", seed=config.seed)
    log_dataset(facts, "facts", "all")
    model, tokenizer = load_model(config.model)
    model.eval()
    statements = fact_statements(list(facts), config.seed)
    n = int(statements.held_out.sum())
    layers = probe_layers(model, tokenizer, statements, config.batch_size, config.precision, config.probe_c, config.seed)
    for row in layers:
        mlflow.log_metrics({**rate("probe_accuracy", round(row["accuracy"] * n), n),
                            "probe_control_accuracy": row["control_accuracy"],
                            "probe_selectivity": row["selectivity"]}, step=row["layer"])
    best = max(layers, key=lambda row: row["selectivity"])
    metrics = {"best_selectivity": best["selectivity"], "best_layer": best["layer"],
               **rate("best_layer_accuracy", round(best["accuracy"] * n), n), "n_layers": len(layers),
               "n_probe_statements": n}
    mlflow.log_metrics(metrics)
    frame = pd.DataFrame(layers)
    mlflow.log_table(frame, artifact_file="probes/layers.json")
    long = frame.melt(id_vars="layer", value_vars=["accuracy", "control_accuracy", "selectivity"],
                      var_name="measure", value_name="value")
    figure = px.line(long, x="layer", y="value", color="measure", markers=True,
                     title=f"Linear fact probes by layer: {config.model}")
    mlflow.log_text(figure.to_html(include_plotlyjs=True), "probes/layers.html")
    return metrics
