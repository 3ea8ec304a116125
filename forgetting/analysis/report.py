"""The analyze stage's work inside its run: query, draw, log the artifacts, write one HTML report."""
from __future__ import annotations

import html
import importlib
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pandas as pd

from forgetting.analysis import figures, query
from forgetting.tracking.store import experiment_id, home, tracking_uri

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table.results{border-collapse:collapse;font-size:0.9em}table.results td,table.results th{border:1px solid #ccc;
padding:3px 8px;text-align:left}.missing{background:#fff4e5;border-left:4px solid #f0a020;padding:0.5em 1em}
code{background:#f3f3f3;padding:0 3px}"""

UNLEARNING_INTRO = ("Method <code>none</code> is the unpruned dense model, drawn dashed in every sparsity column. "
                    "Accuracies are fractions of correct answers shown as percentages. A grid run on several "
                    "models has a row of facets per model size (parameters of the model it was pruned from), and "
                    "the scale figures put the parameter count on the x-axis.",
                    "Results at the last Python-training step")
# Studies with their own frames and figures; the others reuse the unlearning study's stages.
STUDY_ANALYSES = {"selective": "forgetting.analysis.selective", "attribution": "forgetting.analysis.attribution",
                  "forgetting": "forgetting.analysis.forgetting"}


def report_path(study: str, output: str = "") -> Path:
    return Path(output).expanduser().resolve() if output else home() / "reports" / f"{study}.html"


def analyze_study(config) -> Path:
    """Build every frame and figure of ``config.study``, log them to the active run, write the report."""
    run = mlflow.active_run()
    experiments = sorted({experiment_id(config.study), run.info.experiment_id})
    versions = query.checkpoint_versions(config.study)
    if config.study in STUDY_ANALYSES:
        analysis = importlib.import_module(STUDY_ANALYSES[config.study])
        frames, drawn, counts, notes, *said = analysis.collect(config.study)
        tables = (analysis.display_tables(frames) if hasattr(analysis, "display_tables")
                  else {analysis.INTRO[1]: frames[analysis.TABLE]})
        intro, said = analysis.INTRO, said[0] if said else []
    else:
        frames, drawn, counts, notes, said = _unlearning(experiments, config.study, versions)
        tables, intro = {UNLEARNING_INTRO[1]: figures.formatted_table(frames["results_table"])}, UNLEARNING_INTRO
    counts["n_checkpoints"] = len(versions)
    if versions.empty:
        notes.append(f"No model versions tagged study={config.study!r} in the registry.")
    frames["checkpoints"] = versions
    drawn = {name: figure for name, figure in drawn.items() if figure is not None}
    for name, figure in drawn.items():
        # log_figure would load plotly.js from a CDN, which shows nothing offline: embed it.
        mlflow.log_text(figure.to_html(include_plotlyjs=True, full_html=True), f"figures/{name}.html")
    for name, frame in frames.items():
        mlflow.log_text(frame.to_csv(index=False), f"data/{name}.csv")
    mlflow.log_metrics(counts)

    page = render_report(config.study, run.info.run_id, counts, tables, versions, drawn, notes, intro, said)
    path = report_path(config.study, config.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)
    mlflow.log_text(page, "report.html")
    return path


def _unlearning(experiments: list[str], study: str, versions: pd.DataFrame):
    """``(frames, figures, counts, notes)`` of the unlearning study (and the studies that reuse its stages)."""
    sizes = query.study_sizes(experiments, study)
    results = query.finetune_results(experiments, study, sizes)
    curves = query.training_curves(experiments, study, sizes)
    costs = query.train_costs(experiments, study, sizes)
    sweeps = query.trials(experiments, [run for runs in results["run_id"] for run in str(runs).split(",")])
    attacks = query.attack_results(study, sizes)
    table = figures.results_table(results)
    drawn = {"results_table": figures.table_figure(table),
             "baseline_accuracy": figures.baseline_accuracy_figure(results),
             "finetuned_accuracy": figures.finetuned_accuracy_figure(results),
             "heldout_loss": figures.heldout_loss_figure(curves),
             "recovery_vs_model_size": figures.scale_figure(table),
             "train_cost_vs_model_size": figures.train_cost_figure(costs),
             "attack_success": figures.attack_success_figure(attacks),
             "attack_vs_accuracy": figures.attack_vs_accuracy_figure(attacks)}
    frames = {"results_table": table, "finetune_results": results, "training_curves": curves,
              "train_costs": costs, "trials": sweeps, "attacks": attacks}
    counts = {"n_finetune_runs": len(results), "n_train_runs": curves["run_id"].nunique(),
              "n_trials": len(sweeps), "n_attack_runs": attacks["run_id"].nunique()}
    return frames, drawn, counts, missing_notes(study, results, curves), figures.noise_findings(table)


def missing_notes(study: str, results: pd.DataFrame, curves: pd.DataFrame) -> list[str]:
    notes = []
    if results.empty:
        notes.append(f"No FINISHED finetune runs in study {study!r}: no accuracy figures and no results table.")
    elif results["best_acc"].isna().all():
        notes.append("The finetune runs logged no best_acc: no fine-tuned accuracy figure.")
    if curves.empty:
        notes.append(f"No FINISHED train runs with a heldout_loss history in study {study!r}: no loss figure.")
    return notes


def render_report(study: str, run_id: str, counts: dict, tables: dict[str, pd.DataFrame], versions: pd.DataFrame,
                  drawn: dict, notes: list[str], intro: tuple[str, str], said: list[str] = ()) -> str:
    """One self-contained page: plotly.js is embedded with the first figure and reused by the others.
    ``tables`` are display tables by heading (intervals already written into their cells), ``said`` what
    the intervals say in words (which differences are within noise)."""
    parts = [f"<h1>{html.escape(study)} study</h1>",
             f"<p>tracking store <code>{html.escape(public_uri(tracking_uri()))}</code> · analyze run "
             f"<code>{run_id}</code> · {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>",
             "<p>" + " · ".join(f"{html.escape(k.removeprefix('n_').replace('_', ' '))}: {v}"
                                for k, v in counts.items()) + "</p>",
             f"<p>{intro[0]}</p>"]
    parts += [f'<p class="missing">{html.escape(note)}</p>' for note in notes]
    if said:
        parts += ["<h2>Within or beyond noise</h2>",
                  "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in said) + "</ul>"]
    for heading, table in tables.items():
        if not table.empty:
            parts += [f"<h2>{html.escape(heading)}</h2>", table.to_html(index=False, classes="results", border=0)]
    for position, figure in enumerate(drawn.values()):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=position == 0))
    if not versions.empty:
        parts += ["<h2>Registered checkpoints</h2>", versions.to_html(index=False, classes="results", border=0)]
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(study)} study</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def public_uri(uri: str) -> str:
    """The tracking URI without a user name or password, fit to be written into a shared report."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
