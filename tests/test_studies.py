"""The studies are declared once (``forgetting/tracking/studies.py``), and a run lands in its study's
experiment: chosen before ``mlflow run`` starts, and never by taking over another study's launcher run."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from forgetting.errors import UsageError
from forgetting.mlproject import ENTRY_POINTS
from forgetting.tracking import experiment_id, log_checkpoint, run_stage
from forgetting.tracking.studies import STUDIES, classifier_study, study_names, study_of

ROOT = Path(__file__).resolve().parents[1]


def test_every_entry_point_belongs_to_a_declared_study_and_one_study_holds_classifiers(monkeypatch):
    monkeypatch.delenv("FORGETTING_STUDY", raising=False)
    assert {study_of(entry) for entry in ENTRY_POINTS} <= set(study_names())
    assert len(STUDIES.names_where(lambda study: study.classifiers)) == 1
    assert study_of("evaluate") == "foundation" and study_of("distill") == classifier_study()


def test_a_config_names_its_study_and_forgetting_study_overrides_both(monkeypatch):
    from forgetting.analysis import AnalyzeConfig
    from forgetting.training.finetune_stage import FinetuneConfig

    monkeypatch.delenv("FORGETTING_STUDY", raising=False)
    assert study_of("finetune", FinetuneConfig()) == "unlearning"
    assert study_of("finetune", FinetuneConfig(mode="classification", task="sst2")) == classifier_study()
    assert study_of("analyze", AnalyzeConfig(study="attribution")) == "attribution"
    monkeypatch.setenv("FORGETTING_STUDY", "forgetting")
    assert study_of("finetune", FinetuneConfig(mode="classification", task="sst2")) == "forgetting"
    monkeypatch.setenv("FORGETTING_STUDY", "nope")
    with pytest.raises(UsageError, match="study='nope' is not one of: foundation, unlearning, forgetting"):
        study_of("prune")


def prepare(args, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORGETTING_"))}
    return subprocess.run([sys.executable, "-m", "forgetting.tracking", "prepare", *args], cwd=ROOT,
                          env=env | {"FORGETTING_HOME": str(home), "MLFLOW_LOGGING_LEVEL": "WARNING"},
                          capture_output=True, text=True, timeout=300)


def test_prepare_checks_the_parameters_then_creates_the_runs_experiment(tmp_path):
    """What ``./run`` calls before ``mlflow run``: bad input is one line and exit 2 with no experiment
    created; good input creates the experiment of the run's study and prints it with the store."""
    bad = prepare(["analyze", "-P", "study=nope"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines()[-1].startswith("error: study='nope' is not one of: foundation")
    good = prepare(["finetune", "-P", "mode=classification", "-P", "task=sst2"], tmp_path)
    assert good.returncode == 0, good.stderr
    study, uri = good.stdout.rstrip("\n").split("\t")
    assert study == "selective" and uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        assert {e.name for e in mlflow.search_experiments()} - {"Default"} == {"selective"}
    finally:
        mlflow.set_tracking_uri(None)


def test_a_stage_never_takes_over_a_launcher_run_of_another_study(store, monkeypatch):
    """The launcher lies in ``foundation`` (an evaluate of a checkpoint of the unlearning study, say): the
    stage's run opens in its own study's experiment and the launcher points at it."""
    client = mlflow.MlflowClient()
    launcher = client.create_run(experiment_id("foundation")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    stage, _ = run_stage("unlearning", "evaluate", {"suite": "accuracy"}, lambda run: None)
    assert stage.info.run_id != launcher and stage.info.experiment_id == experiment_id("unlearning")
    assert client.get_run(launcher).data.tags["forgetting.stage_run_id"] == stage.info.run_id


def test_a_checkpoint_is_registered_under_the_study_of_the_run_that_registers_it(store, tiny_checkpoint):
    def register(run):
        log_checkpoint(tiny_checkpoint, "checkpoint", register_as="tiny-selective", tags={"stage": "prune"})

    run_stage("selective", "prune", {"method": "magnitude"}, register)
    [version] = mlflow.MlflowClient().search_model_versions("name = 'tiny-selective'")
    assert version.tags["study"] == "selective" and version.tags["stage"] == "prune"
