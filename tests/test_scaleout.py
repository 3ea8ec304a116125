"""Scale-out: a real PostgreSQL and a real ``mlflow server`` on loopback, Optuna workers sharing a
study in PostgreSQL, the Slurm scripts of the unlearning grid, and what happens when the server
is unreachable or lost.

PostgreSQL comes from Debian's ``postgresql`` package, installed by the fixture when it is missing
(as root with apt-get); a test that needs it fails, never skips, when it cannot be started.
"""
import dataclasses
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import sqlalchemy

from forgetting.backends.commands import parameter_text, stage_parameters
from forgetting.studies.slurm import LaunchConfig, launch, unlearning_jobs
from forgetting.models import DEFAULT_MODEL
from forgetting.posttrain.collect import CollectConfig
from forgetting.posttrain.stage import PosttrainConfig
from forgetting.pruning.stage import PruneConfig
from forgetting.tracking import postgres as postgres_service
from forgetting.tracking import store as store_module
from forgetting.tracking.server import start_server
from forgetting.training.stage import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("finetune_results", "training_curves", "checkpoints", "trials", "results_table")
STORAGE = "postgresql+psycopg2://db-host/optuna"


@pytest.fixture(scope="session")
def postgres():
    try:
        service = postgres_service.start()
    except postgres_service.PostgresUnavailable as error:
        pytest.fail(f"PostgreSQL could not be installed or started: {error}")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def servers(postgres, tmp_path_factory):
    """Two ``mlflow server``s on PostgreSQL with proxied artifacts, on 127.0.0.1 and free ports:
    the shared one and one to lose. Each takes seconds to start, so both start at once, in the
    background, and a test waits for the one it needs."""
    folder = tmp_path_factory.mktemp("servers")
    started = {name: start_server(postgres.create_database(database), folder / name, wait=False)
               for name, database in (("shared", "mlflow"), ("lost", "mlflow_lost"))}
    yield started
    for server in started.values():
        server.kill()  # throwaway: no need to wait for a clean shutdown


@pytest.fixture(scope="session")
def tracking_server(servers):
    return servers["shared"].wait_until_healthy()


def use_store(monkeypatch, home: Path, uri: str | None) -> None:
    """Point this process at ``uri`` (the embedded store when None) with its own FORGETTING_HOME."""
    while mlflow.active_run():
        mlflow.end_run()
    monkeypatch.setenv("FORGETTING_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    if uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store_module.configure.cache_clear()
    store_module.configure()


@pytest.fixture
def restore_store():
    yield
    while mlflow.active_run():
        mlflow.end_run()
    store_module.configure.cache_clear()
    mlflow.set_tracking_uri(None)


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return env | {"PATH": f"{Path(sys.executable).parent}:{env['PATH']}", "OMP_NUM_THREADS": "1",
                  "MLFLOW_DISABLE_TELEMETRY": "true"} | extra


def run_unlearning_stages(model: Path) -> None:
    """prune -> train -> finetune on the tiny model, the way ``main`` chains them."""
    from forgetting.pruning.stage import PruneConfig
    from forgetting.stages import finetune_stage, prune_stage, train_stage
    from forgetting.training.finetune_stage import FinetuneConfig
    from forgetting.training.stage import TrainConfig
    from forgetting.studies.unlearning import pruned_version

    pruned = prune_stage(PruneConfig(model=str(model), method="random", sparsity=0.5, calibration_blocks=2,
                                     eval_blocks=2, block_size=32, batch_size=2))
    train = TrainConfig(model=pruned_version(pruned), steps=2, checkpoint_every=2, batch_size=2, block_size=32,
                        eval_blocks=2)
    train_stage(train)
    finetune_stage(FinetuneConfig(model=f"models:/{train.model_name()}@step-2", task="counterfact", lrs="1e-4",
                                  train_limit=8, eval_limit=8))


def analysis_tables(run_id: str) -> dict[str, pd.DataFrame]:
    """The CSV tables an analyze run logged, read back through the current store, without run ids."""
    import io

    frames = {}
    for name in TABLES:
        frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/data/{name}.csv")))
        frames[name] = frame.drop(columns=[c for c in frame.columns if c.endswith("run_id")])
    return frames


def test_stages_against_the_server_give_the_tables_of_the_embedded_store(
        servers, postgres, tiny_checkpoint_with_tokenizer, tmp_path, monkeypatch, restore_store):
    from forgetting.analysis import AnalyzeConfig, analyze_stage

    use_store(monkeypatch, tmp_path / "embedded", None)
    run_unlearning_stages(tiny_checkpoint_with_tokenizer)
    analyze_stage(AnalyzeConfig(study="unlearning", output=str(tmp_path / "embedded.html")))
    [embedded_analyze] = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                            filter_string="tags.`forgetting.entry_point` = 'analyze'")
    embedded = analysis_tables(embedded_analyze.info.run_id)

    tracking_server = servers["shared"].wait_until_healthy()
    use_store(monkeypatch, tmp_path / "server-home", tracking_server.url)
    run_unlearning_stages(tiny_checkpoint_with_tokenizer)
    analyze = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", ".", "-e", "analyze", "--env-manager", "local",
         "--experiment-name", "unlearning", "-P", f"output={tmp_path / 'server.html'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=subprocess_env(MLFLOW_TRACKING_URI=tracking_server.url, FORGETTING_HOME=str(tmp_path / "server-home")))
    assert analyze.returncode == 0, analyze.stderr[-3000:]
    assert (tmp_path / "server.html").exists()
    [served_analyze] = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                          filter_string="tags.`forgetting.entry_point` = 'analyze'")
    assert served_analyze.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    served = analysis_tables(served_analyze.info.run_id)

    assert len(embedded["finetune_results"]) == 1 and len(embedded["training_curves"]) == 2
    assert len(embedded["checkpoints"]) == 3 and len(embedded["trials"]) == 1  # prune + train steps 0, 2
    for name in TABLES:
        pd.testing.assert_frame_equal(served[name], embedded[name], obj=name)
    with sqlalchemy.create_engine(postgres.url("mlflow")).connect() as database:  # the runs live in PostgreSQL
        stages = database.execute(sqlalchemy.text(
            "SELECT value FROM tags WHERE key = 'forgetting.entry_point' ORDER BY value")).scalars().all()
    assert stages == ["analyze", "finetune", "prune", "train"]


WORKER = """
import math, sys, time
from forgetting.backends.shared_study import run_worker_share
from forgetting.sweep import open_lr_study

storage, index, grid = sys.argv[1], int(sys.argv[2]), tuple(float(v) for v in sys.argv[3].split(","))
study = open_lr_study("shared-grid", storage, grid)

def objective(trial):
    lr = trial.suggest_float("lr", min(grid), max(grid), log=True)
    trial.set_user_attr("worker", index)
    time.sleep(0.25)
    return -abs(math.log10(lr) + 5)

run_worker_share(study, objective, len(grid), 2, index)
"""


def test_two_workers_share_one_grid_study_without_losing_or_repeating_a_trial(postgres):
    import optuna

    from forgetting.backends.shared_study import prepare_storage, worker_share
    from forgetting.sweep import open_lr_study

    grid = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4)
    storage = postgres.create_database("optuna")
    prepare_storage(storage)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, storage, str(index), ",".join(map(repr, grid))],
                                cwd=ROOT, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
               for index in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read()[-3000:]

    trials = open_lr_study("shared-grid", storage, grid).trials
    assert len(trials) == len(grid)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.params["lr"] for t in trials) == sorted(grid)
    assert all(math.isclose(t.value, -abs(math.log10(t.params["lr"]) + 5)) for t in trials)
    by_worker = {index: [t for t in trials if t.user_attrs["worker"] == index] for index in range(2)}
    assert [len(by_worker[i]) for i in range(2)] == [worker_share(len(grid), 2, i) for i in range(2)] == [5, 4]
    first_done = min(max(t.datetime_complete for t in mine) for mine in by_worker.values())
    last_started = max(min(t.datetime_start for t in mine) for mine in by_worker.values())
    assert last_started < first_done  # the two workers ran trials at the same time


def quick_config(tmp_path, **changes) -> LaunchConfig:
    values = dict(preset="quick", tracking_uri="http://10.1.2.3:5000", storage=STORAGE, partition="gpu",
                  account="lab", time="02:00:00", cpus_per_task=4, mem="16G", gpus=1, max_parallel=3,
                  output=str(tmp_path / "slurm"), setup=f"export PATH={tmp_path / 'bin'}:$PATH")
    return LaunchConfig(**(values | changes))


def fake_commands(folder: Path, **bodies: str) -> None:
    folder.mkdir(exist_ok=True)
    for name, body in bodies.items():
        (folder / name).write_text(f"#!/bin/bash\n{body}\n")
        (folder / name).chmod(0o755)


def run_script(text: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(**env))


def test_dry_run_prints_one_array_job_per_stage_with_the_grid_of_main(tmp_path, capsys):
    from forgetting.studies.unlearning import PRESETS, stage_configs

    config = quick_config(tmp_path)
    texts = launch(config)
    printed = capsys.readouterr().out
    assert not (tmp_path / "slurm").exists()  # a dry run writes nothing
    assert list(texts) == ["01-prune.sbatch", "02-train.sbatch", "03-finetune.sbatch", "04-analyze.sbatch",
                           "submit.sh"]
    for text in texts.values():
        assert text in printed
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
        assert "export MLFLOW_TRACKING_URI=http://10.1.2.3:5000\n" in text

    preset = PRESETS["quick"]
    prunes, train, finetunes = stage_configs(config.model, preset)
    starts = 1 + len(prunes)
    counts = {"prune": len(prunes), "train": starts, "finetune": starts * 2 * len(finetunes)}  # first, last step
    for name, text in texts.items():
        stage = name[3:-7]
        if stage in counts:
            assert f"#SBATCH --array=0-{counts[stage] - 1}%3\n" in text
            assert "#SBATCH --gres=gpu:1\n" in text
        for directive in ("--partition=gpu", "--account=lab", "--time=02:00:00", "--cpus-per-task=4", "--mem=16G"):
            assert f"#SBATCH {directive}\n" in text or name == "submit.sh"
    assert "--array" not in texts["04-analyze.sbatch"] and "--gres" not in texts["04-analyze.sbatch"]

    # Each array task runs its stage through mlflow run with the parameters main would use.
    fake_commands(tmp_path / "bin", mlflow='printf "%s\\n" "$@"', python="true")
    jobs = unlearning_jobs(config.model, "quick", STORAGE)
    for job, (name, text) in zip(jobs, texts.items()):
        for index, parameters in enumerate(job.tasks):
            result = run_script(text, tmp_path, SLURM_ARRAY_TASK_ID=str(index))
            assert result.returncode == 0, result.stderr
            words = result.stdout.splitlines()
            assert words[:8] == ["run", ".", "-e", job.stage, "--env-manager", "local", "--experiment-name",
                                 "unlearning"]
            assert words[8::2] == ["-P"] * len(parameters)
            assert dict(w.split("=", 1) for w in words[9::2]) == parameters
        if len(job.tasks) > 1:
            assert run_script(text, tmp_path, SLURM_ARRAY_TASK_ID=str(len(job.tasks))).returncode == 2
    prune_tasks, train_tasks, finetune_tasks, _ = (job.tasks for job in jobs)
    assert prune_tasks == tuple(stage_parameters(p) for p in prunes)
    # A task passes only what differs from the entry point's defaults: the dense run's model is the default one.
    assert [t.get("model", DEFAULT_MODEL) for t in train_tasks] == [config.model] + [
        f"models:/{p.model_name()}@pruned" for p in prunes]
    assert all(value == "" or value != str(getattr(PruneConfig(), name)) for t in prune_tasks for name, value in t.items())
    last = train.checkpoint_steps()[-1]
    assert {t["model"] for t in finetune_tasks} == {
        f"models:/{start}-python@step-{step}" for start in ["smollm2-135m"] + [p.model_name() for p in prunes]
        for step in (0, last)}
    assert all(t["storage"] == STORAGE for t in finetune_tasks)


def with_defaults(parameters: dict, config_class) -> dict:
    """A task's ``-P`` values over its entry point's defaults (a job passes only what differs from them)."""
    defaults = config_class()
    return {field.name: parameter_text(getattr(defaults, field.name))
            for field in dataclasses.fields(config_class)} | parameters


def test_submit_checks_the_server_prepares_the_stores_and_chains_the_stages_with_afterok(
        tracking_server, postgres, tmp_path, monkeypatch):
    storage = postgres.create_database("optuna_submit")
    calls = tmp_path / "sbatch.calls"
    fake_commands(tmp_path / "bin", sbatch=f'echo "$*" >> {calls}; echo "$((100 + $(wc -l < {calls})));cluster"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    texts = launch(quick_config(tmp_path, tracking_uri=tracking_server.url, storage=storage, dry_run=False))
    submitted = calls.read_text().splitlines()
    folder = tmp_path / "slurm"
    assert [line.split()[-1] for line in submitted] == [str(folder / name) for name in list(texts)[:-1]]
    assert "--dependency" not in submitted[0]
    for position, line in enumerate(submitted[1:], start=1):
        assert f"--dependency=afterok:{100 + position} " in line
    assert (folder / "01-prune.sbatch").read_text() == texts["01-prune.sbatch"]
    mlflow.set_tracking_uri(tracking_server.url)
    assert mlflow.get_experiment_by_name("unlearning") is not None
    with sqlalchemy.create_engine(storage).connect() as database:
        assert "trials" in sqlalchemy.inspect(database).get_table_names()
    mlflow.set_tracking_uri(None)


def test_unreachable_server_fails_in_one_line_before_any_work(tmp_path):
    from forgetting.tracking.postgres import free_port
    from forgetting.errors import UsageError

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = (f"MLFLOW_TRACKING_URI={closed} is unreachable ([Errno 111] Connection refused); "
                   "start the server or unset it")
    config = quick_config(tmp_path, tracking_uri=closed,
                          setup=f"export PATH={tmp_path / 'bin'}:{Path(sys.executable).parent}:$PATH")
    with pytest.raises(UsageError, match=re.escape(unreachable)):
        launch(LaunchConfig(**(vars(config) | {"dry_run": False})))
    assert not (tmp_path / "slurm").exists()  # nothing written, nothing submitted

    # A job whose server went away before it started stops at its first line; mlflow run never starts.
    marker = tmp_path / "mlflow-started"
    fake_commands(tmp_path / "bin", mlflow=f"touch {marker}")
    job = run_script(launch(config)["01-prune.sbatch"], tmp_path, SLURM_ARRAY_TASK_ID="0")
    assert (job.returncode, job.stderr.splitlines()) == (2, [f"error: {unreachable}"])
    assert not marker.exists()


def test_lost_server_retries_then_fails_clearly_keeps_the_checkpoint_and_registers_nothing(
        servers, postgres, tiny_checkpoint_with_tokenizer, tmp_path, monkeypatch, restore_store):
    from forgetting.tracking import experiment_id, log_checkpoint
    from forgetting.errors import TrackingServerLost
    from forgetting.tracking.retry import on_server_loss

    server, backend = servers["lost"].wait_until_healthy(), postgres.url("mlflow_lost")
    try:
        use_store(monkeypatch, tmp_path / "home", server.url)
        for name, value in {"MAX_RETRIES": "2", "BACKOFF_FACTOR": "1", "BACKOFF_JITTER": "0"}.items():
            monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", value)
        local = tmp_path / "home" / "resume" / "key"
        shutil.copytree(tiny_checkpoint_with_tokenizer, local / "model")
        resume = "mlflow run . -e train --env-manager local -P steps=2"
        with pytest.raises(TrackingServerLost) as lost:
            with mlflow.start_run(experiment_id=experiment_id("unlearning")) as run:
                with on_server_loss(local, resume):
                    mlflow.log_metric("train_loss", 1.0, step=1)
                    server.kill()
                    began = time.perf_counter()
                    log_checkpoint(local / "model", "checkpoints/step-000002", register_as="tiny-python",
                                   alias="step-2", version_key="key:2", tags={"step": 2})
        waited = time.perf_counter() - began
    finally:
        server.stop()
    assert 2 <= waited < 30  # MLflow's retries with backoff (0 s, then 2 s), no second round to end the run
    message = str(lost.value)
    assert server.url in message and str(local) in message and f"MLFLOW_TRACKING_URI={server.url} {resume}" in message
    assert mlflow.active_run() is None
    assert (local / "model" / "config.json").exists()
    with sqlalchemy.create_engine(backend).connect() as database:
        assert database.execute(sqlalchemy.text("SELECT count(*) FROM model_versions")).scalar() == 0
        assert database.execute(sqlalchemy.text("SELECT count(*) FROM registered_models")).scalar() == 0
        status = database.execute(sqlalchemy.text("SELECT status FROM runs WHERE run_uuid = :id"),
                                  {"id": run.info.run_id}).scalar()
    assert status == "RUNNING"  # left for the resumed stage to mark KILLED (runs.continue_history)


def test_forgetting_grid_chains_collect_posttrain_evaluate_and_looks_up_the_collect_run(
        tmp_path, capsys, tiny_checkpoint_with_tokenizer):
    safe = str(tiny_checkpoint_with_tokenizer)
    config = quick_config(tmp_path, study="forgetting", preset="smoke", storage="", safe_model=safe)
    texts = launch(config)
    assert list(texts) == ["01-collect.sbatch", "02-posttrain.sbatch", "03-evaluate.sbatch", "04-analyze.sbatch",
                           "submit.sh"]
    for text in texts.values():
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert "#SBATCH --array=0-1%3\n" in texts["01-collect.sbatch"]  # one per start: off-rl and sf-sft share it
    assert "#SBATCH --array=0-5%3\n" in texts["02-posttrain.sbatch"]  # 3 methods x 2 starts
    assert "slurm prepare forgetting  #" in texts["submit.sh"]

    lookups = tmp_path / "lookups"
    fake_commands(tmp_path / "bin", mlflow='printf "%s\\n" "$@"',
                  python=f'if [ "$3" = upstream ]; then echo "$*" >> {lookups}; echo "run-${{6#model=}}"; fi')
    tasks = []
    for index in range(6):
        result = run_script(texts["02-posttrain.sbatch"], tmp_path, SLURM_ARRAY_TASK_ID=str(index))
        assert result.returncode == 0, result.stderr
        words = result.stdout.splitlines()
        tasks.append(with_defaults(dict(w.split("=", 1) for w in words[9::2]), PosttrainConfig))
    by_start = {(t["start"], t["method"]): t for t in tasks}
    assert by_start[("base", "gt-sft")]["data"] == "" and by_start[("base", "gt-sft")]["backend"] == "cluster"
    assert by_start[("base", "off-rl")]["backend"] == "local"  # verl has no DPO
    assert by_start[("base", "sf-sft")]["data"] == "run-smollm2-135m"
    assert by_start[("safe", "off-rl")]["data"] == f"run-{safe}" and by_start[("safe", "off-rl")]["model"] == safe
    assert f"-m forgetting.studies.slurm upstream forgetting collect model={safe} domain=math" in lookups.read_text()

    fake_commands(tmp_path / "bin", python='if [ "$3" = upstream ]; then echo "error: no run" >&2; exit 2; fi')
    failed = run_script(texts["02-posttrain.sbatch"], tmp_path, SLURM_ARRAY_TASK_ID="1")
    assert failed.returncode == 2 and "error: no run" in failed.stderr and "run\n." not in failed.stdout

    result = run_script(texts["03-evaluate.sbatch"], tmp_path, SLURM_ARRAY_TASK_ID="0")
    evaluated = dict(w.split("=", 1) for w in result.stdout.splitlines()[9::2])
    assert evaluated["suite"] == "all" and evaluated["model"] == "models:/smollm2-135m-gt-sft-math@posttrained"
    assert evaluated["reference"] == "smollm2-135m"


def test_upstream_lookup_finds_the_newest_finished_run_with_those_parameters(store):
    from forgetting.studies.slurm import upstream_run
    from forgetting.errors import UsageError
    from forgetting.tracking import experiment_id

    ids = []
    for status in ("FINISHED", "FINISHED", "FAILED"):
        with mlflow.start_run(experiment_id=experiment_id("forgetting"),
                              tags={"forgetting.entry_point": "collect", "forgetting.study": "forgetting"}) as run:
            mlflow.log_params({"model": "m", "domain": "math"})
            ids.append(run.info.run_id)
        mlflow.MlflowClient().set_terminated(run.info.run_id, status)
        time.sleep(0.01)
    assert upstream_run("forgetting", "collect", {"model": "m", "domain": "math"}) == ids[1]
    with pytest.raises(UsageError, match="no FINISHED collect run with model=m domain=qa in study 'forgetting'"):
        upstream_run("forgetting", "collect", {"model": "m", "domain": "qa"})


TWO_MODELS = "smollm2-135m,gemma3-270m"


def test_dry_run_renders_one_chain_of_jobs_per_model_and_one_analyze_after_them(tmp_path, capsys, monkeypatch):
    from forgetting.studies.unlearning import PRESETS, stage_configs

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    config = quick_config(tmp_path, models=TWO_MODELS)
    texts = launch(config)
    assert not (tmp_path / "slurm").exists()  # a dry run writes nothing
    chain = ["01-prune.sbatch", "02-train.sbatch", "03-finetune.sbatch"]
    assert list(texts) == [*(f"{model}/{name}" for model in TWO_MODELS.split(",") for name in chain),
                           "04-analyze.sbatch", "submit.sh"]
    printed = capsys.readouterr().out
    for name, text in texts.items():
        assert f"# ==> {tmp_path / 'slurm' / name} <==" in printed
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
        assert "OFFLINE" not in text  # unset at launch: nothing forced on the job
    for model in TWO_MODELS.split(","):
        assert f"#SBATCH --job-name=unlearning-quick-{model}-train\n" in texts[f"{model}/02-train.sbatch"]

    # Each model's train array trains that model and its own pruned versions, nothing of the other model.
    fake_commands(tmp_path / "bin", mlflow='printf "%s\\n" "$@"', python="true")
    for model in TWO_MODELS.split(","):
        prunes, train, _ = stage_configs(model, PRESETS["quick"])
        starts = [model, *(f"models:/{prune.model_name()}@pruned" for prune in prunes)]
        trained = []
        for index in range(len(starts)):
            result = run_script(texts[f"{model}/02-train.sbatch"], tmp_path, SLURM_ARRAY_TASK_ID=str(index))
            assert result.returncode == 0, result.stderr
            trained.append(with_defaults(dict(w.split("=", 1) for w in result.stdout.splitlines()[9::2]),
                                         TrainConfig)["model"])
        assert trained == starts
        assert f"#SBATCH --array=0-{len(starts) - 1}%3\n" in texts[f"{model}/02-train.sbatch"]
        finetuned = texts[f"{model}/03-finetune.sbatch"]
        assert f"model=models:/{model}-python@step-0" in finetuned and "smollm2" not in finetuned.replace(model, "")

    # submit.sh: each chain after its own previous stage, the one analyze after the end of both chains.
    submit = texts["submit.sh"].splitlines()
    folder = tmp_path / "slurm"
    assert f"prune_1=$(sbatch --parsable {folder}/smollm2-135m/01-prune.sbatch); prune_1=${{prune_1%%;*}}" in submit
    assert f"prune_2=$(sbatch --parsable {folder}/gemma3-270m/01-prune.sbatch); prune_2=${{prune_2%%;*}}" in submit
    assert any(line.startswith("train_2=$(sbatch --parsable --dependency=afterok:$prune_2 ") for line in submit)
    assert any(line.startswith("analyze=$(sbatch --parsable --dependency=afterok:$finetune_1:$finetune_2 ")
               for line in submit)
    fake_commands(tmp_path / "bin", python="true",
                  sbatch=f'echo "$*" >> {tmp_path / "calls"}; echo "$((100 + $(wc -l < {tmp_path / "calls"})));c"')
    assert run_script(texts["submit.sh"], tmp_path).returncode == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [line.split()[-1] for line in calls] == [str(folder / name) for name in list(texts)[:-1]]
    assert "--dependency=afterok:103:106 " in calls[-1]  # analyze waits for both finetune arrays


def test_job_scripts_keep_the_users_hf_hub_offline_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    texts = launch(quick_config(tmp_path))
    for text in texts.values():
        assert "export HF_HUB_OFFLINE=0\n" in text and "export HF_DATASETS_OFFLINE=0\n" in text
        assert "HF_HUB_OFFLINE=1" not in text and "TRANSFORMERS_OFFLINE" not in text


def test_forgetting_grid_per_model_shares_collect_and_takes_the_teachers_of_the_launch(
        store, tmp_path, tiny_checkpoint_with_tokenizer):
    from forgetting.errors import UsageError

    tiny = str(tiny_checkpoint_with_tokenizer)
    config = quick_config(tmp_path, study="forgetting", storage="", posttrain_backend="local",
                          models=f"smollm2-135m,{tiny}", cross_family_teacher="gemma3-270m,smollm2-135m")
    texts = launch(config)
    assert list(texts) == ["01-collect.sbatch", "smollm2-135m/02-posttrain.sbatch", "smollm2-135m/03-evaluate.sbatch",
                           "tiny-with-tokenizer/02-posttrain.sbatch", "tiny-with-tokenizer/03-evaluate.sbatch",
                           "04-analyze.sbatch", "submit.sh"]
    fake_commands(tmp_path / "bin", mlflow='printf "%s\\n" "$@"',
                  python='if [ "$3" = upstream ]; then echo "run-${6#model=}"; fi')

    def tasks(name: str) -> list[dict]:
        config_class = CollectConfig if name.endswith("collect.sbatch") else PosttrainConfig
        found = []
        for index in range(int(re.search(r"--array=0-(\d+)", texts[name])[1]) + 1):
            result = run_script(texts[name], tmp_path, SLURM_ARRAY_TASK_ID=str(index))
            assert result.returncode == 0, result.stderr
            found.append(with_defaults(dict(w.split("=", 1) for w in result.stdout.splitlines()[9::2]),
                                       config_class))
        return found

    collected = {(t["model"], t["domain"]) for t in tasks("01-collect.sbatch")}
    assert len(tasks("01-collect.sbatch")) == len(collected) == 3 * 2  # smollm2 once for both chains; 2 domains
    assert {model for model, _ in collected} == {"smollm2-135m", "gemma3-270m", tiny}
    for chain, start, cross in (("smollm2-135m", "smollm2-135m", "gemma3-270m"),
                                ("tiny-with-tokenizer", tiny, "smollm2-135m")):
        posttrains = {(t["method"], t["domain"]): t for t in tasks(f"{chain}/02-posttrain.sbatch")}
        assert {t["model"] for t in posttrains.values()} == {start}
        assert posttrains[("cf-sft", "qa")]["data"] == f"run-{cross}"  # the launch's cross-family teacher
        assert posttrains[("sf-sft", "qa")]["data"] == f"run-{start}"  # '' = the start model itself

    with pytest.raises(UsageError, match="cross_family_teacher='gemma3-270m' is the base start model itself"):
        launch(quick_config(tmp_path, study="forgetting", storage="", posttrain_backend="local", models=TWO_MODELS))


def test_per_model_launch_values_and_the_model_list_are_checked():
    from forgetting.errors import UsageError
    from forgetting.studies.unlearning import model_specs

    config = LaunchConfig(models="smollm2-135m, org/big-model", safe_model="models:/{model}-gt-sft-safety@posttrained",
                          same_family_teacher="org/teacher", cross_family_teacher="gemma3-270m,google/gemma-3-1b-it")
    assert config.model_list() == ["smollm2-135m", "org/big-model"]
    assert config.per_model("safe_model") == ["models:/smollm2-135m-gt-sft-safety@posttrained",
                                              "models:/org-big-model-gt-sft-safety@posttrained"]
    assert config.per_model("same_family_teacher") == ["org/teacher"] * 2
    assert config.per_model("cross_family_teacher") == ["gemma3-270m", "google/gemma-3-1b-it"]
    assert LaunchConfig().model_list() == ["smollm2-135m"] and LaunchConfig().per_model("safe_model") == [""]
    with pytest.raises(UsageError, match="safe_model='models:/x@safe' names 1 spec for 2 models"):
        LaunchConfig(models=TWO_MODELS, safe_model="models:/x@safe").per_model("safe_model")
    with pytest.raises(UsageError, match="lists 'smollm2-135m' twice"):
        model_specs("smollm2-135m", "smollm2-135m,gemma3-270m,smollm2-135m")
    with pytest.raises(UsageError, match="model='other' and models='gemma3-270m': give one of them"):
        model_specs("other", "gemma3-270m")


def test_main_refuses_a_bad_model_in_the_list_in_one_line_before_any_run(tmp_path, tiny_checkpoint_with_tokenizer):
    env = subprocess_env(FORGETTING_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "entrypoints/main.py", "--preset", "smoke",
                             "--models", f"{tiny_checkpoint_with_tokenizer},no-such-model"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(
        "error: model='no-such-model' is not a known model spec")
    database = tmp_path / "home" / "mlflow.db"
    if database.exists():
        mlflow.set_tracking_uri(f"sqlite:///{database}")
        try:
            assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
        finally:
            mlflow.set_tracking_uri(None)


def test_grid_seeds_each_register_their_own_checkpoints():
    """A grid seed other than 0 seeds every stage and registers its checkpoints under their own names, so two
    seeds never share a version or an alias; bad seed lists are one line."""
    from forgetting.errors import UsageError
    from forgetting.studies.unlearning import PRESETS, seed_list, stage_configs

    assert seed_list("0,1, 2") == [0, 1, 2]
    for bad in ("", "a", "1,1", "-1"):
        with pytest.raises(UsageError, match="seeds=.* is not a comma-separated list of distinct integers"):
            seed_list(bad)
    plain, seeded = (stage_configs("smollm2-135m", PRESETS["smoke"], seed=seed) for seed in (0, 1))
    assert [p.model_name() for p in plain[0]] == ["smollm2-135m-random-50", "smollm2-135m-attribution-50"]
    assert [p.model_name() for p in seeded[0]] == ["smollm2-135m-random-50-seed1", "smollm2-135m-attribution-50-seed1"]
    assert {c.seed for c in (*seeded[0], seeded[1], *seeded[2])} == {1}
    assert plain[0][0].params() != seeded[0][0].params()  # different cache keys


def test_launch_writes_one_chain_per_seed_with_its_own_names(tmp_path):
    """Seed 1's chain prunes, trains and fine-tunes under seed 1 and reads only seed-1 aliases (the forgetting
    study's seeds: tests/test_forgetting_seeds.py)."""
    from forgetting.studies.slurm import study_jobs

    jobs = study_jobs(quick_config(tmp_path, seeds="0,1"))
    assert [job.stage for job in jobs] == ["prune", "train", "finetune"] * 2 + ["analyze"]
    assert [job.chain for job in jobs[:6]] == ["smollm2-135m"] * 3 + ["smollm2-135m-seed1"] * 3
    prune, train, finetune = (job.tasks for job in jobs[3:6])
    assert all(task["seed"] == "1" and task["register_as"].endswith("-seed1") for task in prune)
    assert train[0]["register_as"] == "smollm2-135m-seed1-python"
    assert [t["model"] for t in train[1:]] == [f"models:/{task['register_as']}@pruned" for task in prune]
    assert all(t["seed"] == "1" and "seed1" in t["model"] for t in (*train[1:], *finetune))
