import mlflow
import pytest
import torch
from safetensors.torch import load_file

from forgetting.errors import UsageError
from forgetting.tracking import log_checkpoint, resolve_checkpoint, run_stage
from forgetting.tracking.store import check_reachable, embedded_uri, experiment_id


def test_embedded_store_is_an_absolute_sqlite_path(store):
    assert store == embedded_uri()
    assert store.startswith("sqlite:////")


def test_experiments_are_per_study_with_absolute_artifacts(store):
    experiment = mlflow.get_experiment(experiment_id("unlearning"))
    assert experiment.name == "unlearning"
    assert experiment.artifact_location.startswith("file:///")
    with pytest.raises(UsageError, match="study='nope'"):
        experiment_id("nope")


def test_unreachable_server_is_one_clear_error():
    with pytest.raises(UsageError, match="MLFLOW_TRACKING_URI=http://127.0.0.1:9 is unreachable"):
        check_reachable("http://127.0.0.1:9", timeout=1)


def test_registered_checkpoint_resolves_to_the_same_weights(store, tiny_checkpoint):
    with mlflow.start_run(experiment_id=experiment_id("foundation")) as run:
        version = log_checkpoint(tiny_checkpoint, register_as="tiny", alias="current",
                                 tags={"study": "foundation", "stage": "test", "step": 0})
        again = log_checkpoint(tiny_checkpoint, register_as="tiny", alias="current")
    assert str(version.version) == str(again.version) == "1"
    assert version.tags["step"] == "0" and version.tags["parent_run"] == run.info.run_id
    original = load_file(tiny_checkpoint / "model.safetensors")
    for spec in ("models:/tiny@current", "models:/tiny/1", f"runs:/{run.info.run_id}/checkpoint",
                 run.info.run_id):
        restored = load_file(resolve_checkpoint(spec) / "model.safetensors")
        assert restored.keys() == original.keys()
        assert all(torch.equal(restored[k], original[k]) for k in original)


def test_unknown_registry_uri_is_a_usage_error(store):
    with pytest.raises(UsageError, match="not in the model registry"):
        resolve_checkpoint("models:/missing@current")


def test_finished_stage_is_reused_and_upstream_change_reruns(store):
    calls = []

    def body(run):
        calls.append(run.info.run_id)
        mlflow.log_metric("value", 1.0)

    first, reused_first = run_stage("foundation", "evaluate", {"task": "x"}, body, upstream={"model": "a"})
    second, reused_second = run_stage("foundation", "evaluate", {"task": "x"}, body, upstream={"model": "a"})
    third, _ = run_stage("foundation", "evaluate", {"task": "x"}, body, upstream={"model": "b"})
    assert (reused_first, reused_second) == (False, True)
    assert second.info.run_id == first.info.run_id != third.info.run_id
    assert len(calls) == 2
    assert first.data.params == {"task": "x", "upstream_model": "a"}


def test_a_local_model_directory_is_keyed_on_its_weight_files(store, tiny_checkpoint):
    import os
    from dataclasses import dataclass

    from forgetting.models.tiny import tiny_llama
    from forgetting.stages import cached_model_stage

    @dataclass(frozen=True)
    class Config:
        model: str

        def validate(self):
            pass

    def stage():
        return cached_model_stage("foundation", "evaluate", Config(str(tiny_checkpoint)),
                                  lambda run, origin: mlflow.log_metric("value", 1.0))

    first, _ = stage()
    again, reused = stage()
    assert reused and again.info.run_id == first.info.run_id  # unchanged folder: the same key
    weights = tiny_checkpoint / "model.safetensors"
    before = weights.stat()
    tiny_llama(seed=1).save_pretrained(tiny_checkpoint)  # other weights of the same shapes, same folder
    # a later save shows a later mtime; pinned here so a coarse-grained filesystem clock cannot hide it
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert weights.stat().st_size == before.st_size
    changed, reused = stage()
    assert not reused and changed.info.run_id != first.info.run_id
    assert changed.data.params["upstream_model_weights"] != first.data.params["upstream_model_weights"]


def test_failed_stage_is_not_reused(store):
    def failing(run):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage("foundation", "evaluate", {"task": "y"}, failing)
    run, reused = run_stage("foundation", "evaluate", {"task": "y"}, lambda run: None)
    assert not reused and run.info.status == "FINISHED"


def test_a_killed_attempt_left_running_is_marked_killed_by_the_next_attempt(store):
    """A SIGKILLed stage never ends its run; the next attempt with the same cache key marks it KILLED and
    names it ``previous_attempt`` (what train resumes its curves from), whatever the stage."""
    from forgetting.tracking.runs import cache_key, previous_attempt

    params = {"method": "gt-sft"}
    key = cache_key("posttrain", params, {})
    client = mlflow.MlflowClient()
    killed = client.create_run(experiment_id("forgetting"), tags={"forgetting.cache_key": key}).info.run_id
    run, _ = run_stage("forgetting", "posttrain", params, lambda run: None)
    assert client.get_run(killed).info.status == "KILLED" and run.info.status == "FINISHED"
    assert previous_attempt(run.info.run_id).info.run_id == killed
    again, reused = run_stage("forgetting", "posttrain", params, lambda run: None)
    assert reused and again.info.run_id == run.info.run_id


def test_version_key_dedupes_a_checkpoint_across_runs(store, tiny_checkpoint):
    from forgetting.tracking.checkpoints import version_by_key

    with mlflow.start_run(experiment_id=experiment_id("unlearning")):
        first = log_checkpoint(tiny_checkpoint, "checkpoints/step-1", register_as="tiny-python",
                               alias="step-1", version_key="key:1", tags={"step": 1})
    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as resumed:
        again = log_checkpoint(tiny_checkpoint, "checkpoints/step-1", register_as="tiny-python",
                               alias="step-1", version_key="key:1", tags={"step": 1})
    assert again.version == first.version == version_by_key("tiny-python", "key:1").version
    assert len(mlflow.MlflowClient().search_model_versions("name = 'tiny-python'")) == 1
    assert mlflow.MlflowClient().list_artifacts(resumed.info.run_id) == []


@pytest.fixture
def resolve_calls(monkeypatch):
    """The specs ``resolve_checkpoint`` is asked for (a registry round trip each), in order."""
    import forgetting.tracking.checkpoints as checkpoints

    calls = []
    real = checkpoints.resolve_checkpoint
    monkeypatch.setattr(checkpoints, "resolve_checkpoint", lambda spec: calls.append(spec) or real(spec))
    return calls


def test_inside_a_stage_a_model_spec_resolves_once_even_if_its_alias_moves(store, tiny_checkpoint, tmp_path,
                                                                           resolve_calls):
    from forgetting.models import resolve_model
    from forgetting.models.tiny import tiny_llama
    from forgetting.tracking.checkpoints import checkpoint_version
    from forgetting.tracking.pinned import resolved_once

    other = tmp_path / "other"
    tiny_llama(seed=1).save_pretrained(other)
    with mlflow.start_run(experiment_id=experiment_id("foundation")):
        log_checkpoint(tiny_checkpoint, "checkpoints/a", register_as="tiny", alias="current")
        moved_to = log_checkpoint(other, "checkpoints/b", register_as="tiny", alias="next")
    with resolved_once():
        first = resolve_model("models:/tiny@current")
        version = checkpoint_version("models:/tiny@current").version
        mlflow.MlflowClient().set_registered_model_alias("tiny", "current", moved_to.version)
        assert [resolve_model("models:/tiny@current") for _ in range(3)] == [first] * 3
        assert checkpoint_version("models:/tiny@current").version == version  # the lineage read is pinned too
    assert resolve_calls.count("models:/tiny@current") == 1
    assert resolve_model("models:/tiny@current") != first  # outside a stage: the alias as it is now
    assert checkpoint_version("models:/tiny@current").version == moved_to.version


def test_a_prune_stage_resolves_its_registered_model_once(store, tiny_checkpoint_with_tokenizer, resolve_calls):
    from forgetting.pruning.stage import PruneConfig
    from forgetting.stages import prune_stage

    with mlflow.start_run(experiment_id=experiment_id("foundation")):
        log_checkpoint(tiny_checkpoint_with_tokenizer, "checkpoints/a", register_as="tiny", alias="current")
    prune_stage(PruneConfig(model="models:/tiny@current", method="random", sparsity=0.5, calibration_blocks=2,
                            eval_blocks=2, block_size=32, batch_size=2))
    assert resolve_calls.count("models:/tiny@current") == 1
