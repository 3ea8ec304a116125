"""Every post-training method is a complete spec, and a new one is one file plus one registration line."""
import re

import pytest

from forgetting.posttrain.verl import OBJECTIVES, verl_job
from forgetting.errors import UsageError
from forgetting.posttrain import POSTTRAIN_METHODS
from forgetting.posttrain.data import MethodData
from forgetting.studies.forgetting import ALL_METHODS, ForgettingPreset, forgetting_configs, teacher_of
from forgetting.posttrain.spec import COLLECTED, TEACHERS, PosttrainMethod
from forgetting.posttrain.stage import PosttrainConfig
from forgetting.rewards.domains import DOMAINS


@pytest.mark.parametrize("name", POSTTRAIN_METHODS.in_registration_order())
def test_every_posttrain_method_is_complete(name):
    """A registered method resolves to a trainer, names a known kind of collected data and of teacher
    (one exactly when the other: collected data is some model's collect run), and a verl trainer the
    cluster backend runs; a default config of it validates, with data exactly when it collects."""
    method = POSTTRAIN_METHODS.get(name)
    assert isinstance(method, PosttrainMethod)
    assert callable(method.train)
    assert method.collected in COLLECTED and method.teacher in TEACHERS
    assert bool(method.collected) == bool(method.teacher)
    assert method.verl_trainer in ("", *OBJECTIVES)
    PosttrainConfig(method=name, data="run-id" if method.collected else "").validate_parameters()
    preset = ForgettingPreset(same_family_teacher="same", cross_family_teacher="cross")
    assert (teacher_of(name, "start", preset) is None) == (not method.collected)


def test_the_grid_runs_every_method_in_registration_order_and_cluster_lists_the_verl_ones():
    assert ALL_METHODS == ("gt-sft", "sf-sft", "cf-sft", "self", "on-rl", "off-rl", "pi", "sdft")
    with pytest.raises(UsageError, match=re.escape("method='pi' has no verl trainer; backend=cluster runs gt-sft, "
                                                   "sf-sft, cf-sft, on-rl (use backend=local for the others)")):
        PosttrainConfig(method="pi", backend="cluster", launch="dry-run").validate_parameters()


@pytest.fixture
def teacher_echo():
    POSTTRAIN_METHODS.register("teacher-echo", PosttrainMethod("plugin_teacher_echo:train", collected="sft",
                                                               teacher="cross-family", verl_trainer="sft"))
    yield
    POSTTRAIN_METHODS.unregister("teacher-echo")


def test_a_method_added_in_one_file_and_one_registration_line_runs_in_the_stage_and_the_grid(teacher_echo, tmp_path):
    test_every_posttrain_method_is_complete("teacher-echo")
    with pytest.raises(UsageError, match="method='teacher-echo' trains on collected sft data"):
        PosttrainConfig(method="teacher-echo").validate()
    rows = [{"prompt": "Question: 2+2?\nAnswer:", "completion": " 4 #### 4"}] * 3
    metrics = POSTTRAIN_METHODS.get("teacher-echo").train(None, None, MethodData(DOMAINS["math"], [], rows),
                                                          PosttrainConfig(method="teacher-echo"), tmp_path)
    assert metrics["rows_read"] == 3 and metrics["objective_end"] < metrics["objective_start"]

    preset = ForgettingPreset(domains=("math",), methods=("gt-sft", "teacher-echo"), cross_family_teacher="gemma3-270m")
    assert teacher_of("teacher-echo", "smollm2-135m", preset) == "gemma3-270m"
    collects, posttrains, evaluations = forgetting_configs({"base": "smollm2-135m"}, preset, cluster=True)
    assert [(c.model, c.domain) for c in collects] == [("gemma3-270m", "math")]
    assert [(p.method, p.backend) for p in posttrains] == [("gt-sft", "cluster"), ("teacher-echo", "cluster")]
    assert evaluations[1].model == "models:/smollm2-135m-teacher-echo-math@posttrained"
    job = verl_job(posttrains[1], "/models/start", tmp_path / "train.parquet", tmp_path / "out", gpus=1)
    assert job.trainer == "sft" and job.config_name == "sft_trainer_engine"
    with pytest.raises(UsageError, match="is the base start model itself: teacher-echo needs a teacher of another"):
        forgetting_configs({"base": "gemma3-270m"}, preset)


def test_a_new_methods_collect_run_is_checked_by_its_teachers_family(teacher_echo, store, tmp_path):
    import json

    import mlflow
    import torch
    from safetensors.torch import save_file

    folders = {}
    for name in ("start", "teacher"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "config.json").write_text(json.dumps({"model_type": "llama"}))
        save_file({"weight": torch.zeros(1)}, folders[name] / "model.safetensors")
    with mlflow.start_run(tags={"forgetting.entry_point": "collect"}) as run:
        mlflow.log_params({"model": str(folders["teacher"]), "domain": "math"})
        mlflow.log_metric("n_sft", 3)
    config = PosttrainConfig(model=str(folders["start"]), method="teacher-echo", data=run.info.run_id)
    with pytest.raises(UsageError, match="method='teacher-echo' needs a teacher of another family"):
        config.validate()
