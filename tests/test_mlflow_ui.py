"""What the MLflow UI shows after ``./run``: the study's parent run with only its own parameters, every
stage nested under it with its own name, parameters and cache key, and no run at all for bad input."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]

PARENT = "mlflow.parentRunId"
SUITE_ONLY = ("attack", "top_k", "probe_c", "behaviours", "benchmarks", "generation_task", "sparse")


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return environment | {"FORGETTING_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true",
                          "PATH": f"{Path(sys.executable).parent}:{environment['PATH']}"}


def test_a_stage_inside_a_run_nests_its_own_run_and_a_stage_alone_is_the_launcher_run(store, monkeypatch):
    """``MLFLOW_RUN_ID`` names the launcher run: a stage started alone is that run (named after the stage);
    a stage inside another run (the grid's parent, started with the same ID) never resumes it."""
    from forgetting.tracking import experiment_id, run_stage

    client = mlflow.MlflowClient()
    launcher = client.create_run(experiment_id("unlearning")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    with mlflow.start_run(run_id=launcher):
        stage, reused = run_stage("unlearning", "prune", {"method": "random"}, lambda run: None)
    assert not reused and stage.info.run_id != launcher and stage.data.tags[PARENT] == launcher
    assert stage.info.run_name == "prune-random" and "method" not in client.get_run(launcher).data.params

    other = client.create_run(experiment_id("unlearning")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", other)
    alone, _ = run_stage("unlearning", "prune", {"method": "attribution"}, lambda run: None)
    assert alone.info.run_id == other and alone.info.run_name == "prune-attribution"
    assert alone.data.params["method"] == "attribution" and PARENT not in alone.data.tags


def run(args, env):
    return subprocess.run(["./run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def stored_runs(env, study):
    """Every run of the store ``./run`` used for ``study``, in all experiments."""
    uri = subprocess.run([sys.executable, "-m", "forgetting.tracking", study], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(search_all_experiments=True, output_format="list")
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.e2e
def test_main_is_the_parent_of_its_stages_each_with_its_own_parameters(env, tiny_checkpoint_with_tokenizer):
    result = run(["main", "-P", "preset=smoke", "-P", f"models={tiny_checkpoint_with_tokenizer}",
                  "-P", "device=cpu"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = stored_runs(env, "unlearning")
    [main] = [r for r in runs if PARENT not in r.data.tags]
    assert main.info.run_name == "main-smoke" and main.info.status == "FINISHED"
    assert main.data.params == {"models": str(tiny_checkpoint_with_tokenizer), "preset": "smoke",
                                "device": "cpu", "gpus": "1", "seeds": "0"}
    assert "forgetting.cache_key" not in main.data.tags and main.data.metrics == {}
    stages = [r for r in runs if "forgetting.cache_key" in r.data.tags]
    assert sorted(r.data.tags["forgetting.entry_point"] for r in stages) == ["finetune"] * 6 + ["prune"] * 2 + [
        "train"] * 3
    assert len({r.data.tags["forgetting.cache_key"] for r in stages}) == len(stages)
    [analyze] = [r for r in runs if r.data.tags.get("forgetting.entry_point") == "analyze"]
    for stage in (*stages, analyze):
        assert stage.data.tags[PARENT] == main.info.run_id
        entry = stage.data.tags["forgetting.entry_point"]
        assert stage.info.run_name.startswith(entry) and "preset" not in stage.data.params
    prunes = [r for r in stages if r.data.tags["forgetting.entry_point"] == "prune"]
    assert sorted(r.data.params["method"] for r in prunes) == ["attribution", "random"]
    assert {r.info.run_name for r in prunes} == {f"prune-{tiny_checkpoint_with_tokenizer}-{m}-0.5"[:120]
                                                 for m in ("random", "attribution")}
    others = [r for r in runs if r not in (main, analyze, *stages)]  # Optuna trials inside fine-tuning
    ids = {r.info.run_id for r in stages}
    assert all(r.data.tags.get(PARENT) in ids for r in others)


@pytest.mark.e2e
def test_evaluate_shows_only_its_suites_parameters_and_bad_input_creates_no_run(env, tiny_checkpoint_with_tokenizer):
    from forgetting.evaluation.suites import EvaluateConfig

    bad = run(["stage", "evaluate", "-P", "suite=nope"], env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: suite='nope' is not one of: accuracy, all, attacks, classification, forgetting, policy, probes, "
        "representation, safety"]
    assert stored_runs(env, "foundation") == []

    result = run(["stage", "evaluate", "-P", f"model={tiny_checkpoint_with_tokenizer}", "-P", "suite=accuracy",
                  "-P", "task=arc_easy", "-P", "limit=4", "-P", "batch_size=4"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    [evaluate] = stored_runs(env, "foundation")
    assert evaluate.info.status == "FINISHED" and PARENT not in evaluate.data.tags
    assert evaluate.info.run_name.startswith("evaluate-") and evaluate.data.metrics["n_rows"] == 4
    params = evaluate.data.params
    assert not set(SUITE_ONLY) & set(params)
    suite = EvaluateConfig(suite="accuracy").params()
    assert set(suite) <= set(params)
    # beyond the suite's parameters: the model's lineage, the upstream run and the data read (eval_*)
    assert {k for k in params if k not in suite and not k.startswith(("upstream_", "eval_"))} <= {
        "method", "sparsity", "step", "granularity", "source_stage", "domain", "start"}
