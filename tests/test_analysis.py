"""The analyze stage on a synthetic unlearning study written into a fresh store per the stage contract."""
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param

from forgetting.analysis import AnalyzeConfig, analyze_stage
from forgetting.analysis import figures, query
from forgetting.errors import UsageError
from forgetting.tracking import experiment_id

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000
PAIRS = [("none", 0.0), ("random", 0.3), ("attribution", 0.3)]
TASKS = ["arc_easy", "counterfact"]
STEPS = [0, 20]


def baseline(method, step, task):
    """Distinct values per key so a test can tell which run a row came from."""
    return round(0.2 + 0.1 * [m for m, _ in PAIRS].index(method) + 0.0005 * step + 0.001 * TASKS.index(task), 4)


class Study:
    """Writes stage runs the way prune, train and finetune do; ``start`` orders them in time."""

    def __init__(self, experiment):
        self.client, self.experiment, self.clock = mlflow.MlflowClient(), experiment, 0

    def run(self, entry_point, params, metrics=(), status="FINISHED", tags=None, history=()):
        self.clock += 1000
        base = {} if entry_point is None else {"forgetting.study": "unlearning",
                                               "forgetting.entry_point": entry_point,
                                               "forgetting.cache_key": f"key{self.clock}"}
        run_id = self.client.create_run(self.experiment, start_time=T0 + self.clock,
                                        tags={**base, **(tags or {})}).info.run_id
        stamp = T0 + self.clock
        points = [Metric(k, v, stamp, 0) for k, v in dict(metrics).items()]
        points += [Metric("heldout_loss", value, stamp + i, step) for i, (step, value) in enumerate(history)]
        self.client.log_batch(run_id, metrics=points, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.set_terminated(run_id, status)
        return run_id

    def finetune(self, method, sparsity, step, task, best_acc=None, status="FINISHED", entry_point="finetune"):
        acc = baseline(method, step, task)
        return self.run(entry_point, {"model": f"models:/m-{method}/1", "task": task, "method": method,
                                      "sparsity": sparsity, "step": step, "lrs": "1e-5,1e-4"},
                        {"baseline_acc": acc, "best_acc": best_acc if best_acc is not None else acc + 0.05,
                         "best_lr": 1e-4}, status)

    def train(self, method, sparsity, losses, status="FINISHED"):
        start = "smollm2-135m" if method == "none" else f"models:/m-{method}/1"  # the base model or its pruned version
        return self.run("train", {"model": start, "method": method, "sparsity": sparsity,
                                  "steps": 20, "checkpoint_every": 10},
                        {"tokens_per_second": 370.0}, status, history=losses)

    def register(self, name, run_id, **tags):
        try:
            self.client.create_registered_model(name)
        except mlflow.exceptions.MlflowException:
            pass
        tags = {k: str(v) for k, v in tags.items()} | {"parent_run": run_id}
        return self.client.create_model_version(name, f"runs:/{run_id}/checkpoint", run_id=run_id, tags=tags)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """Like conftest's ``store``, but one per module: creating the SQLite schema costs seconds."""
    from forgetting.tracking import store as store_module

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGETTING_HOME", str(tmp_path_factory.mktemp("analysis") / "home"))
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        store_module.configure.cache_clear()
        yield store_module.configure()
        while mlflow.active_run():
            mlflow.end_run()
        store_module.configure.cache_clear()
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def study(shared_store):
    """Three (method, sparsity) pairs × two steps × two tasks, plus reruns and runs that must not count."""
    s = Study(experiment_id("unlearning"))
    s.ids = {}
    for method, sparsity in PAIRS[1:]:
        prune = s.run("prune", {"model": "smollm2-135m", "method": method, "sparsity": sparsity},
                      {"heldout_loss_before": 1.9, "heldout_loss_after": 2.6, "parameter_ratio": 0.8,
                       "parameters_before": 1.25e8, "parameters_after": 1e8})
        s.register(f"m-{method}", prune, study="unlearning", stage="prune", method=method, sparsity=sparsity, step=0)
    s.ids["old_train"] = s.train("attribution", 0.3, [(0, 9.0), (10, 9.0), (20, 9.0)])
    for method, sparsity in PAIRS:
        train = s.train(method, sparsity, [(0, 2.6 - sparsity), (10, 2.3 - sparsity), (20, 2.1 - sparsity)])
        s.ids[("train", method)] = train
        s.register(f"m-{method}", train, study="unlearning", stage="train", method=method, sparsity=sparsity, step=20)
    s.train("random", 0.3, [(0, 7.0)], status="RUNNING")
    s.register("elsewhere", s.ids[("train", "none")], study="forgetting", stage="train", method="none",
               sparsity=0.0, step=20)
    for method, sparsity in PAIRS:
        for step in STEPS:
            for task in TASKS:
                s.ids[(method, step, task)] = s.finetune(method, sparsity, step, task)
    s.ids["rerun"] = s.finetune("attribution", 0.3, 20, "arc_easy", best_acc=0.91)  # newest wins
    s.finetune("attribution", 0.3, 20, "arc_easy", best_acc=0.11, status="FAILED")
    s.finetune("attribution", 0.3, 20, "arc_easy", best_acc=0.12, entry_point="analyze")
    foundation = Study(experiment_id("foundation"))  # evaluate runs live in the experiment that launched them
    for method, sparsity, asr in [("none", 0.0, 0.25), ("random", 0.3, 0.75)]:
        model = {"upstream_model": f"models:/m-{method}-python/2", "method": method, "sparsity": sparsity, "step": 20}
        s.ids[("attack", method)] = foundation.run("evaluate", model | {"suite": "attacks", "attack": "gcg"},
                                                   {"asr": asr, "asr_plain": 0.5})
        s.run("evaluate", model | {"suite": "accuracy", "task": "arc_easy"}, {"accuracy": 0.4 - sparsity / 3})
    s.run("evaluate", {"upstream_model": "models:/other/1", "suite": "attacks", "attack": "gcg", "method": "none",
                       "sparsity": 0.0, "step": 0}, {"asr": 1.0, "asr_plain": 1.0}, tags={"forgetting.study": "forgetting"})
    parent = s.ids[("random", 20, "counterfact")]
    for trial, lr in enumerate([1e-5, 1e-4, 1e-3]):
        s.run(None, {"lr": lr, "method": "random", "sparsity": 0.3, "step": 20, "task": "counterfact"},
              {"accuracy": 0.3 + 0.1 * trial}, tags={"mlflow.parentRunId": parent, "forgetting.trial": str(trial)})
    return s


def experiments():
    return [experiment_id("unlearning")]


def test_finetune_results_keep_the_newest_finished_stage_run_per_key(study):
    results = query.finetune_results(experiments(), "unlearning")
    assert list(results.columns) == query.FINETUNE_COLUMNS
    assert len(results) == len(PAIRS) * len(STEPS) * len(TASKS)
    assert not results.duplicated(["method", "sparsity", "step", "task"]).any()
    assert results["sparsity"].dtype == float and results["step"].dtype == int
    rerun = results.query("method == 'attribution' and step == 20 and task == 'arc_easy'")
    assert rerun["run_id"].tolist() == [study.ids["rerun"]] and rerun["best_acc"].item() == 0.91
    expected = {study.ids[key] for key in study.ids if isinstance(key, tuple) and len(key) == 3} - {
        study.ids[("attribution", 20, "arc_easy")]} | {study.ids["rerun"]}
    assert set(results["run_id"]) == expected  # no FAILED, analyze or trial run
    row = results.query("method == 'random' and step == 0 and task == 'counterfact'").iloc[0]
    assert row["baseline_acc"] == baseline("random", 0, "counterfact") and row["best_lr"] == 1e-4


def test_training_curves_follow_the_metric_history_of_the_newest_finished_train_run(study):
    curves = query.training_curves(experiments(), "unlearning")
    assert list(curves.columns) == query.CURVE_COLUMNS
    assert set(curves["run_id"]) == {study.ids[("train", m)] for m, _ in PAIRS}
    attribution = curves.query("method == 'attribution'")
    assert attribution["step"].tolist() == [0, 10, 20]
    assert attribution["heldout_loss"].round(6).tolist() == [2.3, 2.0, 1.8]


def test_checkpoints_and_trials_come_from_the_registry_and_the_nested_runs(study):
    versions = query.checkpoint_versions("unlearning")
    assert list(versions.columns) == query.CHECKPOINT_COLUMNS
    assert len(versions) == 5 and "elsewhere" not in set(versions["name"])
    assert sorted(versions.query("stage == 'train'")["step"]) == [20, 20, 20]
    assert set(versions.query("name == 'm-none'")["run_id"]) == {study.ids[("train", "none")]}
    sweeps = query.trials(experiments(), [study.ids[("random", 20, "counterfact")]])
    assert sweeps["trial"].tolist() == [0, 1, 2] and sweeps["lr"].tolist() == [1e-5, 1e-4, 1e-3]
    assert query.trials(experiments(), []).empty


def test_results_table_reports_the_last_step_with_the_dense_row_first(study):
    table = figures.results_table(query.finetune_results(experiments(), "unlearning"))
    assert len(table) == len(PAIRS) * len(TASKS)
    assert set(table["step"]) == {20}
    assert table["method"].tolist()[:2] == ["none", "none"]
    dense = table.query("method == 'none' and task == 'arc_easy'").iloc[0]
    assert dense["baseline_acc"] == baseline("none", 20, "arc_easy")
    assert dense["gain"] == pytest.approx(0.05)
    assert table.query("method == 'attribution' and task == 'arc_easy'")["best_acc"].item() == 0.91
    shown = figures.formatted_table(table)
    assert shown.iloc[0]["MLP neurons pruned"] == "0%" and shown.iloc[0]["recovered by fine-tuning"] == "+5.0 pts"


def test_figures_facet_by_sparsity_and_repeat_the_dense_reference(study):
    curves = query.training_curves(experiments(), "unlearning")
    figure = figures.heldout_loss_figure(curves)
    dense = [trace for trace in figure.data if trace.name == "none"]
    assert len(dense) == 1 and dense[0].line.dash == "dash"  # the one 30% column holds the reference
    assert {a.text for a in figure.layout.annotations} == {"MLP neurons pruned: 30%"}
    assert figure.layout.xaxis.title.text == "Python-training step"
    accuracy = figures.finetuned_accuracy_figure(query.finetune_results(experiments(), "unlearning"))
    assert {a.text for a in accuracy.layout.annotations} >= {"task: arc_easy", "task: counterfact"}
    empty = pd.DataFrame(columns=query.FINETUNE_COLUMNS)
    assert figures.baseline_accuracy_figure(empty) is None
    assert figures.table_figure(figures.results_table(empty)) is None


def test_attack_results_join_the_accuracy_of_the_same_checkpoint_across_experiments(study):
    attacks = query.attack_results("unlearning")
    assert list(attacks.columns) == query.ATTACK_COLUMNS
    assert attacks[["method", "asr", "task"]].values.tolist() == [["none", 0.25, "arc_easy"], ["random", 0.75, "arc_easy"]]
    assert attacks["accuracy"].round(3).tolist() == [0.4, 0.3]
    assert set(attacks["run_id"]) == {study.ids[("attack", "none")], study.ids[("attack", "random")]}
    success = figures.attack_success_figure(attacks)
    assert {t.name for t in success.data if t.showlegend is not False} == {"none", "random"}
    assert figures.attack_vs_accuracy_figure(attacks) is not None
    assert figures.attack_success_figure(attacks.iloc[:0]) is None


def analyze_runs(study="unlearning"):
    return mlflow.search_runs([experiment_id(study)], f"attributes.run_name = 'analyze-{study}'",
                              order_by=["attributes.start_time DESC"], output_format="list")


def test_analyze_writes_a_self_contained_report_and_logs_it(study, capsys):
    before = len(analyze_runs())
    path = analyze_stage(AnalyzeConfig())
    assert path == Path(mlflow.get_tracking_uri().removeprefix("sqlite:///")).parent / "reports" / "unlearning.html"
    page = path.read_text()
    assert page.count("plotly.js v") == 1  # the library itself, once
    assert not re.search(r"<script[^>]+src=", page)  # no CDN <script src>
    assert "0.91" not in page and "91.0%" in page and "unlearning study" in page
    assert "No FINISHED" not in page
    assert capsys.readouterr().out.strip().endswith(
        f"2 attack runs, 5 checkpoints, 12 finetune runs, 3 train runs, 3 trials -> {path}")

    runs = analyze_runs()
    assert len(runs) == before + 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.metrics == {"n_finetune_runs": 12, "n_train_runs": 3, "n_checkpoints": 5, "n_trials": 3,
                                "n_attack_runs": 2}
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for folder in ("figures", "data") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"report.html", "figures/results_table.html", "figures/baseline_accuracy.html",
            "figures/finetuned_accuracy.html", "figures/heldout_loss.html", "data/results_table.csv",
            "data/finetune_results.csv", "data/training_curves.csv", "data/checkpoints.csv",
            "figures/attack_success.html", "figures/attack_vs_accuracy.html", "data/attacks.csv"} <= logged
    figure_page = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/figures/heldout_loss.html"))
    assert "plotly.js v" in figure_page.read_text()
    table = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/data/results_table.csv"))
    assert table.read_text().splitlines()[0] == ",".join(figures.TABLE_COLUMNS)

    second = analyze_stage(AnalyzeConfig())  # never reused: a new run, the analyze runs stay out of the counts
    assert second == path
    again = analyze_runs()
    assert len(again) == before + 2 and again[0].data.metrics["n_finetune_runs"] == 12
    assert again[0].data.tags["forgetting.entry_point"] == "analyze"


def test_analyze_of_an_empty_study_says_what_is_missing(study, tmp_path):
    path = analyze_stage(AnalyzeConfig(study="attribution", output=str(tmp_path / "out" / "empty.html")))
    page = path.read_text()
    assert path == tmp_path / "out" / "empty.html"
    assert "No FINISHED attribute runs in study &#x27;attribution&#x27;" in page and "No model versions" in page
    assert "plotly.js v" not in page


@pytest.mark.parametrize("config", [AnalyzeConfig(study="nope"), AnalyzeConfig(output="/")])
def test_bad_input_fails_before_any_run(study, config):
    runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    with pytest.raises(UsageError):
        analyze_stage(config)
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == runs
    assert mlflow.get_experiment_by_name("nope") is None


def test_entry_point_help():
    result = subprocess.run([sys.executable, "entrypoints/analyze.py", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--study" in result.stdout and "--output" in result.stdout


SIZES = {"smollm2-135m": 134_515_008, "org/big-model": 1_711_376_384}  # a bundled name and a hub id


def two_model_grid(s: Study) -> None:
    """The unlearning grid on two base models, written the way ``main -P models=…`` writes it: each model's
    prune run logs its parameter count; train and finetune runs only name the checkpoint they start from."""
    from forgetting.tracking.checkpoints import registered_name

    for model, count in SIZES.items():
        name = registered_name(model)
        prune = s.run("prune", {"model": model, "method": "random", "sparsity": 0.5},
                      {"parameters_before": count, "parameters_after": 0.7 * count})
        s.register(f"{name}-random-50", prune, study="unlearning", stage="prune", method="random", sparsity=0.5, step=0)
        for method, sparsity, start in (("none", 0.0, model), ("random", 0.5, f"models:/{name}-random-50/1")):
            trained = f"{name}-python" if method == "none" else f"{name}-random-50-python"
            train = s.run("train", {"model": start, "method": method, "sparsity": sparsity},
                          {"tokens_per_second": 4e10 / count, "peak_rss_mb": count / 1e5},
                          history=[(0, 3.0), (10, 2.5)])
            for step in (0, 10):
                s.register(trained, train, study="unlearning", stage="train", method=method, sparsity=sparsity,
                           step=step)
                s.run("finetune", {"model": f"models:/{trained}/{step // 10 + 1}", "task": "counterfact",
                                   "method": method, "sparsity": sparsity, "step": step},
                      {"baseline_acc": 0.5 - sparsity / 2, "best_acc": 0.6 + count / 1e10, "best_lr": 1e-4})


def test_unlearning_analysis_of_two_model_sizes_draws_one_point_per_size(store, tmp_path):
    two_model_grid(Study(experiment_id("unlearning")))
    results = query.finetune_results(experiments(), "unlearning")
    assert len(results) == 2 * 2 * 2  # models x (dense, pruned) x steps
    assert dict(zip(results["base_model"], results["parameters"])) == SIZES  # traced back through the registry
    table = figures.results_table(results)
    assert table["base_model"].tolist() == ["smollm2-135m"] * 2 + ["org/big-model"] * 2  # the smallest first
    assert figures.formatted_table(table)["model"].tolist()[::2] == ["smollm2-135m (135M)", "org/big-model (1.71B)"]

    scale = figures.scale_figure(table)
    assert sorted(trace.name for trace in scale.data) == ["none", "random"]
    for trace in scale.data:  # one point per model size on a parameter-count axis
        assert sorted(trace.x) == sorted(SIZES.values())
    assert scale.layout.xaxis.type == "log"
    accuracy = figures.baseline_accuracy_figure(results)
    assert {a.text for a in accuracy.layout.annotations} >= {"model size · task: 135M · counterfact",
                                                             "model size · task: 1.71B · counterfact"}
    assert all(len(set(trace.y)) == 1 for trace in accuracy.data)  # a model's runs are never drawn as one line
    curves = query.training_curves(experiments(), "unlearning")
    assert len(curves) == 2 * 2 * 2 and set(curves["parameters"]) == set(SIZES.values())
    loss = figures.heldout_loss_figure(curves)
    assert {a.text for a in loss.layout.annotations} >= {"model size: 135M", "model size: 1.71B"}
    cost = figures.train_cost_figure(query.train_costs(experiments(), "unlearning"))
    assert {len(trace.x) for trace in cost.data} == {2}

    path = analyze_stage(AnalyzeConfig(output=str(tmp_path / "two-models.html")))
    [run] = analyze_runs()
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")}
    assert {"figures/recovery_vs_model_size.html", "figures/train_cost_vs_model_size.html"} <= logged
    assert "org/big-model (1.71B)" in path.read_text()


def test_forgetting_and_attribution_analyses_draw_one_point_per_model_size(store, tiny_checkpoint):
    from forgetting.analysis import attribution, forgetting
    from forgetting.models.tiny import tiny_llama
    from forgetting.tracking.checkpoints import registered_name

    s = Study(experiment_id("forgetting"))
    for model, count in SIZES.items():
        for method, forgot in (("gt-sft", 0.1), ("off-rl", 0.05)):
            name = f"{registered_name(model)}-{method}-math"
            posttrain = s.run("posttrain", {"model": model, "method": method, "domain": "math"}, {"parameters": count},
                              tags={"forgetting.study": "forgetting"})
            s.register(name, posttrain, study="forgetting", stage="posttrain", method=method, domain="math",
                       start="base", scale=count, start_model=model)
            s.run("evaluate", {"model": f"models:/{name}/1", "method": method, "domain": "math", "start": "base",
                               "suite": "all", "reference": model},
                  {"gsm8k_accuracy": 0.2, "gsm8k_delta": 0.1, "gsm8k_forgetting_rate": 0.0, "gsm8k_learning_rate": 0.1,
                   "arc_easy_accuracy": 0.5, "arc_easy_delta": -forgot, "arc_easy_forgetting_rate": forgot * count / 1e9,
                   "arc_easy_learning_rate": 0.0, "refusal_rate": 0.3}, tags={"forgetting.study": "forgetting"})
    frames, drawn, counts, notes, said = forgetting.collect("forgetting")
    assert counts == {"n_evaluated_models": 4} and not [note for note in notes if "suite=forgetting" in note]
    assert any("no attack success rate" in note for note in notes)  # absent, and the report says so
    assert set(frames["forgetting_results"]["scale"]) == set(SIZES.values())
    scale = drawn["forgetting_vs_scale"]
    assert sorted(trace.name.split(",")[0] for trace in scale.data) == ["gt-sft", "off-rl"]
    for trace in scale.data:
        assert sorted(trace.x) == sorted(SIZES.values())
    rows = {a.text for a in drawn["forgetting_heatmap"].layout.annotations}
    assert {"start · model size=base · 135M", "start · model size=base · 1.71B"} <= rows
    fronts = [trace for trace in drawn["safety_vs_task_pareto"].data if trace.name == "Pareto front"]
    assert len(fronts) == 2  # one front per model size

    a = Study(experiment_id("attribution"))
    runs = [("smollm2-135m", SIZES["smollm2-135m"], 10.0), ("org/big-model", SIZES["org/big-model"], 80.0),
            (str(tiny_checkpoint), None, 1.0)]  # the last run logged no count: read from its config.json
    for model, count, seconds in runs:
        a.run("attribute", {"model": model, "train_data": "planted"},
              {"runtime_s_untrac": seconds, "runtime_s_tracin": 2 * seconds, "peak_rss_mb": 100 * seconds,
               "rank_untrac": 1} | ({"model_parameters": count} if count else {}),
              tags={"forgetting.study": "attribution"})
    frames, drawn, _, _ = attribution.collect("attribution")
    tiny = float(sum(p.numel() for p in tiny_llama().parameters()))
    assert frames["attribution_results"]["model_parameters"].tolist()[::2] == [tiny, *SIZES.values()]
    for trace in drawn["runtime_vs_model_size"].data:
        assert sorted(trace.x) == sorted([tiny, *SIZES.values()])


def test_unlearning_analysis_aggregates_seeds_and_draws_their_intervals(store):
    """Finetune and attack runs that differ only by seed are one point: the mean over the seeds with a t
    interval, drawn as error bars and printed in the table; the newest run of each seed counts."""
    from scipy import stats

    from forgetting.analysis import noise

    s = Study(experiment_id("unlearning"))
    common = {"model": "models:/m-random/1", "task": "counterfact", "method": "random", "sparsity": 0.3, "step": 20}
    s.run("finetune", common | {"seed": 0}, {"baseline_acc": 0.2, "best_acc": 0.1, "best_lr": 1e-4})  # superseded
    for seed, best in ((0, 0.5), (1, 0.6), (2, 0.7)):
        s.run("finetune", common | {"seed": seed}, {"baseline_acc": 0.2, "best_acc": best, "best_lr": 1e-4})
    s.run("finetune", common | {"method": "none", "sparsity": 0.0, "seed": 0},
          {"baseline_acc": 0.25, "best_acc": 0.3, "best_lr": 1e-4})
    for seed, asr in ((0, 0.2), (1, 0.4)):
        s.run("evaluate", {"upstream_model": "models:/m-random-python/1", "method": "random", "sparsity": 0.3,
                           "step": 20, "suite": "attacks", "attack": "gcg", "seed": seed},
              rates("asr", asr) | rates("asr_plain", 0.5))

    results = query.finetune_results(experiments(), "unlearning")
    assert list(results.columns) == query.FINETUNE_COLUMNS
    row = results.query("method == 'random'").iloc[0]
    half = stats.t.ppf(0.975, 2) * 0.1 / 3 ** 0.5  # sample sd of 0.5, 0.6, 0.7 is 0.1
    assert row["n_seeds"] == 3 and row["seeds"] == "0,1,2" and row["best_acc"] == pytest.approx(0.6)
    assert (row["best_acc_ci_low"], row["best_acc_ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert (row["gain_ci_low"], row["gain_ci_high"]) == pytest.approx((0.4 - half, 0.4 + half))
    assert len(row["run_id"].split(",")) == 3

    table = figures.results_table(results)
    shown = figures.formatted_table(table).set_index("method")
    assert shown.loc["random", "best accuracy after fine-tuning"] == (
        f"60.0% [{100 * (0.6 - half):.1f}%, {100 * (0.6 + half):.1f}%]")
    assert shown.loc["none", "best accuracy after fine-tuning"] == "30.0%"  # one seed, no logged interval
    said = figures.noise_findings(table)
    assert any("recovered +40.0 pts" in line and noise.BEYOND in line for line in said)
    assert not any("vs dense" in line for line in said)  # the dense run has one seed: no interval to compare

    accuracy = figures.finetuned_accuracy_figure(results)
    pruned = next(t for t in accuracy.data if t.name == "random")
    assert list(pruned.error_y.array) == pytest.approx([half]) and list(pruned.error_y.arrayminus) == pytest.approx([half])
    recovery = figures.scale_figure(table.assign(parameters=1e8))
    assert next(t for t in recovery.data if t.name == "random").error_y.array is not None

    attacks = query.attack_results("unlearning")
    assert len(attacks) == 2 and set(attacks["seed"]) == {"0", "1"}
    success = figures.attack_success_figure(attacks)
    [point] = [t for t in success.data if t.showlegend is not False]
    asr_half = stats.t.ppf(0.975, 1) * np.std([0.2, 0.4], ddof=1) / 2 ** 0.5
    assert list(point.y) == pytest.approx([0.3]) and list(point.error_y.array) == pytest.approx([asr_half])
    hollow = [t for t in success.data if t.showlegend is False]
    assert hollow and all(t.error_y.array is not None for t in hollow)


def rates(name, value, n=50):
    from forgetting.scoring.intervals import rate

    return {k: v for k, v in rate(name, round(value * n), n).items()}


def test_over_seeds_keeps_a_single_run_interval_and_formats_intervals():
    from forgetting.analysis import noise

    frame = pd.DataFrame({"condition": ["a", "b", "b"], "seed": ["0", "0", "1"], "x": [0.5, 0.2, 0.4],
                          "x_ci_low": [0.4, 0.1, 0.3], "x_ci_high": [0.6, 0.3, 0.5], "x_mcnemar_p": [0.01, 0.2, 0.3],
                          "run_id": ["r1", "r2", "r3"]})
    out = noise.over_seeds(frame, ["condition"], ["x"]).set_index("condition")
    assert out.loc["a", ["x", "x_ci_low", "x_ci_high", "x_mcnemar_p"]].tolist() == [0.5, 0.4, 0.6, 0.01]
    assert out.loc["b", "x"] == pytest.approx(0.3) and out.loc["b", "n_seeds"] == 2 and np.isnan(out.loc["b", "x_mcnemar_p"])
    assert out.loc["b", "x_ci_high"] - out.loc["b", "x"] == pytest.approx(12.7062 * 0.1414214 / 2 ** 0.5, rel=1e-4)
    assert noise.shown(0.538, 0.49, 0.59) == "0.538 [0.49, 0.59]" and noise.shown(0.5) == "0.500"
    assert noise.verdict(-0.1, 0.2) == noise.WITHIN and noise.verdict(0.01, 0.2) == noise.BEYOND
    assert noise.verdict(None, 0.2) == ""
