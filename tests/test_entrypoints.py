"""End-to-end: real entry points through ``mlflow run`` on the bundled model with small budgets."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from forgetting.tracking.runs import logged_table

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = sorted(yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"])

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_RUN")}
    environment |= {"FORGETTING_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
                    "PATH": f"{Path(sys.executable).parent}:{environment['PATH']}"}
    return environment


def run(args, env, check=True):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def mlflow_run(entry, params, env, check=True):
    args = [sys.executable, "-m", "mlflow", "run", ".", "-e", entry, "--env-manager", "local",
            "--experiment-name", "foundation"]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    return run(args, env, check)


def runs_in(env, status=None):
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    found = mlflow.search_runs(search_all_experiments=True, output_format="list")
    mlflow.set_tracking_uri(None)
    return [r for r in found if status is None or r.info.status == status]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_has_help(entry, env):
    result = run([sys.executable, f"entrypoints/{entry}.py", "--help"], env)
    assert "usage:" in result.stdout


def test_evaluate_through_mlflow_run_is_cached(env):
    params = {"task": "arc_easy", "limit": 24, "batch_size": 8}
    first = mlflow_run("evaluate", params, env)
    assert "(reused)" not in first.stdout
    finished = runs_in(env, "FINISHED")
    stage = [r for r in finished if "accuracy" in r.data.metrics]
    assert len(stage) == 1
    metrics = stage[0].data.metrics
    assert metrics["n_rows"] == 24 and 0.0 <= metrics["accuracy"] <= 1.0
    assert stage[0].data.params["task"] == "arc_easy"
    second = mlflow_run("evaluate", params, env)
    assert "(reused)" in second.stdout
    assert len([r for r in runs_in(env, "FINISHED") if "accuracy" in r.data.metrics]) == 1


@pytest.mark.parametrize("flag, value, names", [
    ("task", "no_such_task", "task='no_such_task' is not one of"),
    ("model", "no-such-model", "model='no-such-model' is not a known model spec"),
    ("batch-size", "-1", "batch_size=-1 is outside"),
])
def test_bad_input_is_one_line_before_any_run(flag, value, names, env):
    result = run([sys.executable, "entrypoints/evaluate.py", f"--{flag}", value], env, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert names in result.stderr
    assert runs_in(env) == []


def test_bad_input_through_mlflow_run_leaves_only_an_empty_failed_launcher_run(env):
    result = mlflow_run("evaluate", {"task": "no_such_task"}, env, check=False)
    assert result.returncode != 0
    assert "task='no_such_task' is not one of" in result.stderr
    [launcher] = runs_in(env)
    assert launcher.info.status == "FAILED"
    assert launcher.data.metrics == {} and "forgetting.cache_key" not in launcher.data.tags
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    assert mlflow.MlflowClient().list_artifacts(launcher.info.run_id) == []
    mlflow.set_tracking_uri(None)
    assert "no_such_task" in launcher.data.tags["forgetting.error"]


def test_unreachable_tracking_server_fails_before_work(env):
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    result = run([sys.executable, "entrypoints/evaluate.py", "--limit", "2"], env, check=False)
    assert result.returncode == 2
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:9 is unreachable" in result.stderr


def test_main_runs_the_unlearning_grid_and_a_second_call_reuses_every_stage(env, tiny_checkpoint_with_tokenizer):
    params = {"preset": "smoke", "model": tiny_checkpoint_with_tokenizer}
    first = mlflow_run("main", params, env)
    assert "(reused)" not in first.stdout and "open the MLflow UI" in first.stdout
    lines = first.stdout.splitlines()
    assert [sum(line.startswith(f"{stage} ") for line in lines) for stage in ("prune", "train", "finetune")] == [2, 3, 6]
    report = Path(first.stdout.split("-> ")[-1].split()[0])
    assert report.exists() and "Plotly" in report.read_text()
    second = mlflow_run("main", params, env)
    assert second.stdout.count("(reused)") == 2 + 3 + 6
    finetunes = [r for r in runs_in(env, "FINISHED") if r.data.tags.get("forgetting.entry_point") == "finetune"]
    assert sorted((r.data.params["method"], r.data.params["step"]) for r in finetunes) == sorted(
        (method, step) for method in ("none", "random", "attribution") for step in ("0", "2"))


def test_prune_registers_a_smaller_model_that_loads_with_from_pretrained(env, tiny_checkpoint_with_tokenizer):
    from transformers import AutoModelForCausalLM

    import forgetting.models.variable_llama  # noqa: F401

    params = {"model": tiny_checkpoint_with_tokenizer, "method": "attribution", "sparsity": 0.5,
              "calibration_blocks": 2, "eval_blocks": 2, "block_size": 32, "batch_size": 2,
              "register_as": "tiny-pruned"}
    mlflow_run("prune", params, env)
    assert "(reused)" in mlflow_run("prune", params, env).stdout
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        [version] = mlflow.MlflowClient().search_model_versions("name = 'tiny-pruned'")
        assert version.tags["method"] == "attribution" and version.tags["sparsity"] == "0.5"
        path = mlflow.artifacts.download_artifacts("models:/tiny-pruned@pruned")
    finally:
        mlflow.set_tracking_uri(None)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.intermediate_sizes == [64, 64]
    assert [layer.mlp.down_proj.in_features for layer in model.model.layers] == [64, 64]


def test_empty_string_defaults_pass_through_mlflow_run(env):
    """MLflow logs ``-P`` values shell-quoted (``''`` for an empty string); the stage must not clash with it."""
    result = mlflow_run("analyze", {}, env)
    assert "analyze unlearning" in result.stdout
    [analyze] = runs_in(env, "FINISHED")
    assert analyze.data.params["study"] == "unlearning"


@pytest.fixture
def tiny_classifier(tiny_checkpoint_with_tokenizer, tmp_path):
    from forgetting.models.classifier import load_classifier

    model, tokenizer = load_classifier(str(tiny_checkpoint_with_tokenizer))
    path = tmp_path / "tiny-classifier"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("entry, args, names", [
    ("prune", ["--granularity", "weight", "--method", "magnitude", "--sparsity", "1.0"],
     "sparsity=1.0 is outside [0, 1)"),
    ("prune", ["--granularity", "rows", "--method", "magnitude"], "granularity='rows' is not one of: neuron, weight"),
    ("prune", ["--method", "movement"], "method='movement' needs the fine-tuning statistics"),
    ("prune", ["--method", "attribution"], "method='attribution' scores neurons by the language-model loss"),
    ("distill", ["--alpha", "1.5"], "alpha=1.5 is outside [0, 1]"),
    ("distill", ["--temperature", "0"], "temperature=0.0 is outside (0, inf]"),
    ("distill", ["--student", "layers:2"], "student='layers:2': a student needs 1 to 1 layers"),
    ("distill", ["--student", "CLASSIFIER"], "not fewer than the teacher's"),
])
def test_selective_bad_input_is_one_line_before_any_run(entry, args, names, env, tiny_classifier):
    model_flag = "--teacher" if entry == "distill" else "--model"
    args = [str(tiny_classifier) if arg == "CLASSIFIER" else arg for arg in args]
    result = run([sys.executable, f"entrypoints/{entry}.py", model_flag, str(tiny_classifier), *args], env, check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and names in result.stderr
    assert runs_in(env) == []


def test_a_language_model_is_not_pruned_by_weight(env, tiny_checkpoint_with_tokenizer):
    result = run([sys.executable, "entrypoints/prune.py", "--model", str(tiny_checkpoint_with_tokenizer),
                  "--granularity", "weight"], env, check=False)
    assert result.returncode == 2 and "granularity='weight' is for sequence classifiers" in result.stderr


def test_selective_study_finetune_prune_recover_distill_evaluate_analyze(env):
    """The selective chain on the bundled model through mlflow run, with budgets of a few steps."""
    env = env | {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2")}
    limits = {"train_limit": 16, "eval_limit": 16, "batch_size": 8}
    mlflow_run("finetune", {"mode": "classification", "task": "sst2", "lrs": "1e-4", **limits}, env)
    teacher = "models:/smollm2-135m-sst2-classifier@finetuned"
    pruned = mlflow_run("prune", {"model": teacher, "method": "movement", "granularity": "weight", "sparsity": 0.5,
                                  "recovery_steps": 2, "batch_size": 8}, env)
    assert "prune movement weights 50%" in pruned.stdout
    distilled = mlflow_run("distill", {"teacher": teacher, "student": "layers:2", "steps": 2, **limits}, env)
    assert "with x0." in distilled.stdout
    recovered = "models:/smollm2-135m-sst2-classifier-movement-weights-50@recovered"
    evaluated = mlflow_run("evaluate", {"suite": "classification", "task": "sst2", "model": recovered, "limit": 16,
                                        "batch_size": 8, "sparse": "true"}, env)
    assert "sst2 [eval, 16 rows]" in evaluated.stdout
    report = mlflow_run("analyze", {"study": "selective"}, env)
    assert "1 evaluations" in report.stdout and "1 prune runs" in report.stdout

    finished = {r.data.tags.get("forgetting.entry_point"): r for r in runs_in(env, "FINISHED")
                if r.data.tags.get("forgetting.study") == "selective"}
    prune_metrics = finished["prune"].data.metrics
    assert prune_metrics["weight_sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert prune_metrics["recovered_weight_sparsity"] >= 0.5
    evaluation = finished["evaluate"]
    assert evaluation.data.params["source_stage"] == "recover" and evaluation.data.params["method"] == "movement"
    metrics = evaluation.data.metrics
    assert metrics["sparse_layers"] == 30 * 7 and metrics["n_rows"] == 16
    assert metrics["active_parameters"] < 0.7 * metrics["parameters"]
    student = finished["distill"].data.metrics
    assert student["student_parameters"] < student["teacher_parameters"]
    [trial] = [r for r in runs_in(env) if r.data.tags.get("forgetting.trial") == "0"]
    assert trial.data.tags["mlflow.parentRunId"] == finished["finetune"].info.run_id
    assert "accuracy" in trial.data.metrics and "best_acc" not in trial.data.metrics


def test_attribute_toxicity_with_ground_truth_through_mlflow_run_then_analyze(env, tiny_checkpoint_with_tokenizer):
    params = {"model": tiny_checkpoint_with_tokenizer, "train_data": "toxicity", "test_data": "toxicity",
              "examples_per_source": 2, "test_examples": 2, "train_steps": 2, "checkpoints": 1,
              "unlearning_steps": 1, "batch_size": 4, "max_length": 32, "leave_dataset_out": "true",
              "tracin_parameters": "mlp"}
    first = mlflow_run("attribute", params, env)
    assert "leave-dataset-out rank" in first.stdout
    assert "(reused)" in mlflow_run("attribute", params, env).stdout
    [stage] = [r for r in runs_in(env, "FINISHED") if r.data.tags.get("forgetting.entry_point") == "attribute"]
    metrics = stage.data.metrics
    sources = {"python", "gsm8k", "sst2", "facts", "donotanswer", "toxic"}
    for method in ("untrac", "untrac-inv", "tracin", "leave-dataset-out"):
        assert 1 <= metrics[f"rank_{method}"] <= len(sources) and metrics[f"runtime_s_{method}"] > 0
        table = mlflow.artifacts.load_dict(f"{stage.info.artifact_uri}/attribution/{method}_sources.json")
        assert {row[0] for row in table["data"]} == sources
    assert -1 <= metrics["pearson_untrac_vs_leave-dataset-out"] <= 1
    report = mlflow_run("analyze", {"study": "attribution"}, env)
    assert "1 attribute runs" in report.stdout


def test_forgetting_collect_then_posttrain_through_mlflow_run(env, tiny_checkpoint_with_tokenizer):
    model = str(tiny_checkpoint_with_tokenizer)
    collected = mlflow_run("collect", {"model": model, "domain": "qa", "n": 3, "samples": 2, "max_new_tokens": 6}, env)
    assert "6 trajectories" in collected.stdout
    [collect] = [r for r in runs_in(env, "FINISHED") if r.data.tags.get("forgetting.entry_point") == "collect"]
    artifacts = {f.path for f in mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).list_artifacts(collect.info.run_id, "data")}
    assert artifacts == {f"data/{name}.jsonl" for name in ("trajectories", "sft", "ground_truth", "preferences")}

    for method, message in (("off-rl", "holds no preferences rows"), ("sf-sft", "holds no sft rows")):
        failed = run([sys.executable, "entrypoints/posttrain.py", "--model", model, "--method", method,
                      "--domain", "qa", "--data", collect.info.run_id], env, check=False)
        assert failed.returncode == 2 and message in failed.stderr.strip().splitlines()[-1]

    trained = mlflow_run("posttrain", {"model": model, "method": "gt-sft", "domain": "qa", "n": 4, "steps": 2,
                                       "batch_size": 2, "lr": 1e-3, "max_length": 64}, env)
    assert "posttrain gt-sft qa from base" in trained.stdout
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    [version] = mlflow.MlflowClient().search_model_versions("name = 'tiny-with-tokenizer-gt-sft-qa'")
    mlflow.set_tracking_uri(None)
    assert {key: version.tags[key] for key in ("method", "domain", "start")} == \
        {"method": "gt-sft", "domain": "qa", "start": "base"}
    assert int(version.tags["scale"]) > 0

    suite = {"suite": "forgetting", "benchmarks": "arc_easy,naturalqs", "limit": 6, "max_new_tokens": 4,
             "batch_size": 4}
    mlflow_run("evaluate", {"model": model, **suite}, env)
    posttrained = "models:/tiny-with-tokenizer-gt-sft-qa@posttrained"
    evaluated = mlflow_run("evaluate", {"model": posttrained, "reference": model, **suite}, env)
    assert "forgetting: arc_easy" in evaluated.stdout and "forgotten" in evaluated.stdout
    # mlflow run put the launcher in foundation; the evaluation runs in its checkpoint's study and the
    # launcher points at it
    [launcher, evaluation] = sorted((r for r in runs_in(env, "FINISHED") if r.data.params.get("reference") == model),
                                    key=lambda r: "forgetting.cache_key" in r.data.tags)
    assert launcher.data.tags["forgetting.stage_run_id"] == evaluation.info.run_id
    assert evaluation.data.tags["forgetting.study"] == "forgetting"
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    assert mlflow.get_experiment(evaluation.info.experiment_id).name == "forgetting"
    mlflow.set_tracking_uri(None)
    metrics = evaluation.data.metrics
    assert metrics["reference_reused"] == 1.0
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    table = logged_table(evaluation.info.run_id, "forgetting/transitions.json")
    mlflow.set_tracking_uri(None)
    for benchmark in ("arc_easy", "naturalqs"):
        rows = table[table["benchmark"] == benchmark]
        assert len(rows) == metrics[f"{benchmark}_n"] == 6
        for transition in ("correct_to_incorrect", "incorrect_to_correct"):
            assert (rows["transition"] == transition).sum() == metrics[f"{benchmark}_n_{transition}"]
        assert metrics[f"{benchmark}_delta"] == pytest.approx(
            metrics[f"{benchmark}_accuracy"] - metrics[f"{benchmark}_reference_accuracy"])


def test_posttrain_cluster_dry_run_prints_the_verl_job_and_opens_no_run(env):
    result = run([sys.executable, "entrypoints/posttrain.py", "--method", "on-rl", "--backend", "cluster",
                  "--launch", "dry-run"], env)
    assert "python -m verl.trainer.main_ppo" in result.stdout and "#SBATCH --gres=gpu:1" in result.stdout
    # The job reruns the stage with verl on its node: the cluster backend and launch=here (the default, so
    # not passed), never the dry run that printed it.
    assert "-P backend=cluster" in result.stdout and "launch=dry-run" not in result.stdout
    assert runs_in(env) == []
