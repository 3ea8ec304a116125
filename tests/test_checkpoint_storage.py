"""Checkpoints that fit on disk: identical checkpoints stored once, bf16 storage of trained weights."""
import json
import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from forgetting.tracking import experiment_id, home, log_checkpoint, resolve_checkpoint
from forgetting.tracking.checkpoints import (DIGEST_TAG, SAME_WEIGHTS_AS_TAG, cast_checkpoint, checkpoint_digest,
                                             checkpoint_version, needs_cast)

TINY_TRAIN = {"block_size": 32, "batch_size": 2, "eval_blocks": 2, "lr": 1e-3, "precision": "fp32"}


def weights(directory) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        tensors |= load_file(path)
    return tensors


def dtypes(directory) -> set[str]:
    found = set()
    for path in Path(directory).glob("*.safetensors"):
        with safe_open(path, "pt") as handle:
            found |= {handle.get_slice(key).get_dtype() for key in handle.keys()}
    return found


def loaded(spec) -> dict[str, torch.Tensor]:
    from forgetting.models import load_model

    model, _ = load_model(str(spec), device="cpu")
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def artifact_files(run_id: str, path: str = "") -> list[str]:
    client, files, folders = mlflow.MlflowClient(), [], [path]
    while folders:
        for item in client.list_artifacts(run_id, folders.pop() or None):
            (folders if item.is_dir else files).append(item.path)
    return sorted(files)


def test_a_model_in_memory_is_written_once_in_its_stored_dtype_and_moved_into_the_store(store,
                                                                                     tiny_checkpoint_with_tokenizer):
    from forgetting.models import load_model
    from forgetting.tracking.checkpoints import log_model

    model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer), device="cpu")
    written = []
    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as run:
        version = log_model(model, tokenizer, register_as="tiny-once", dtype="bf16",
                            add_files=lambda folder: written.append(folder))
    stored = resolve_checkpoint(f"models:/tiny-once/{version.version}")
    assert dtypes(stored) == {"BF16"} and json.loads((stored / "config.json").read_text())["dtype"] == "bfloat16"
    assert not written[0].exists() and not any((home() / "tmp").iterdir())  # taken by a rename, nothing left
    assert Path(run.info.artifact_uri.removeprefix("file://"), "checkpoint") == stored
    # tied weights stay one tensor: bf16 is half the bytes of the fp32 checkpoint
    size = lambda folder: sum(path.stat().st_size for path in Path(folder).glob("*.safetensors"))
    assert 0.49 < size(stored) / size(tiny_checkpoint_with_tokenizer) < 0.51
    reloaded = loaded(stored)
    assert all(torch.equal(reloaded[k], v.to(torch.bfloat16).float()) for k, v in loaded(tiny_checkpoint_with_tokenizer).items())


def test_a_model_a_killed_attempt_registered_is_not_written_again(store, tiny_checkpoint_with_tokenizer,
                                                                    monkeypatch):
    from forgetting.models import load_model
    from forgetting.tracking import checkpoints

    model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer), device="cpu")
    with mlflow.start_run(experiment_id=experiment_id("unlearning")):
        first = checkpoints.log_model(model, tokenizer, register_as="tiny-resumed", version_key="key:8")
    monkeypatch.setattr(checkpoints, "save_checkpoint", lambda *args, **kwargs: pytest.fail("written again"))
    with mlflow.start_run(experiment_id=experiment_id("unlearning")):
        again = checkpoints.log_model(model, tokenizer, register_as="tiny-resumed", version_key="key:8", alias="step-8")
    assert again.version == first.version
    assert mlflow.MlflowClient().get_model_version_by_alias("tiny-resumed", "step-8").version == first.version


def test_digest_covers_the_files_and_is_cached_per_folder(store, tiny_checkpoint, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, copy)
    (copy / ".complete").write_text("runs:/whatever/checkpoint")  # hidden files are not the checkpoint
    digest = checkpoint_digest(tiny_checkpoint)
    assert checkpoint_digest(copy) == digest and checkpoint_digest(tiny_checkpoint) == digest
    assert len(list((home() / "digests").glob("*.json"))) == 2
    config = json.loads((copy / "config.json").read_text()) | {"note": 1}
    (copy / "config.json").write_text(json.dumps(config))
    assert checkpoint_digest(copy) != digest


def test_the_same_checkpoint_logged_twice_is_stored_once(store, tiny_checkpoint):
    client = mlflow.MlflowClient()
    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as first:
        original = log_checkpoint(tiny_checkpoint, register_as="tiny", alias="pruned", tags={"step": 0})
    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as second:
        # a different folder with the same files: found by the digest tag
        copy = log_checkpoint(shutil.copytree(tiny_checkpoint, tiny_checkpoint.with_name("copy")),
                              "checkpoints/step-000000", register_as="tiny-python", alias="step-0",
                              tags={"step": 0})
        # the stored artifact itself (a resolved spec): found by its location
        again = log_checkpoint(resolve_checkpoint("models:/tiny/1"), "again", register_as="tiny-again")
        log_checkpoint(resolve_checkpoint("models:/tiny/1"), "unregistered")
    assert artifact_files(second.info.run_id) == []
    assert artifact_files(first.info.run_id) == ["checkpoint/config.json", "checkpoint/generation_config.json",
                                                 "checkpoint/model.safetensors"]
    for version in (copy, again):
        assert version.source == original.source == f"runs:/{first.info.run_id}/checkpoint"
        assert version.tags[SAME_WEIGHTS_AS_TAG] == "models:/tiny/1"
        assert version.tags[DIGEST_TAG] == original.tags[DIGEST_TAG] == checkpoint_digest(tiny_checkpoint)
        assert version.tags["parent_run"] == second.info.run_id
    assert SAME_WEIGHTS_AS_TAG not in original.tags
    assert checkpoint_version(f"runs:/{second.info.run_id}/checkpoints/step-000000").version == copy.version
    assert checkpoint_version(f"runs:/{first.info.run_id}/checkpoint").name == "tiny"
    stored = resolve_checkpoint("models:/tiny/1")
    for spec in ("models:/tiny-python@step-0", "models:/tiny-again/1",
                 f"runs:/{second.info.run_id}/checkpoints/step-000000", f"runs:/{second.info.run_id}/unregistered",
                 second.info.run_id):
        assert resolve_checkpoint(spec) == stored
    expected = weights(tiny_checkpoint)
    assert all(torch.equal(weights(stored)[k], expected[k]) for k in expected)
    assert len(client.search_model_versions("name = 'tiny-python'")) == 1


def test_a_download_logged_again_reuses_what_was_downloaded(store, tiny_checkpoint):
    from forgetting.tracking.checkpoints import _download_once

    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as first:
        log_checkpoint(tiny_checkpoint, register_as="tiny")
    downloaded = _download_once("models:/tiny/1", home() / "downloads" / "x")
    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as second:
        version = log_checkpoint(downloaded, register_as="tiny-python")
    assert artifact_files(second.info.run_id) == []
    assert version.source == f"runs:/{first.info.run_id}/checkpoint"


def test_bf16_copy_halves_the_weights_and_loads_as_fp32(store, tiny_checkpoint_with_tokenizer, tmp_path):
    source = tiny_checkpoint_with_tokenizer
    assert needs_cast(source, "bf16") and not needs_cast(source, "fp32")
    copy = cast_checkpoint(source, tmp_path / "bf16", "bf16")
    assert dtypes(copy) == {"BF16"} and not needs_cast(copy, "bf16")
    ratio = (copy / "model.safetensors").stat().st_size / (source / "model.safetensors").stat().st_size
    assert 0.49 < ratio < 0.51
    assert json.loads((copy / "config.json").read_text())["dtype"] == "bfloat16"
    assert (copy / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    fp32, bf16 = loaded(source), loaded(copy)
    assert all(t.dtype == torch.float32 for t in bf16.values())
    assert all(torch.equal(bf16[k], fp32[k].to(torch.bfloat16).float()) for k in fp32)


def test_train_step_zero_is_its_registered_input_and_stores_no_files(store, tiny_checkpoint_with_tokenizer):
    from forgetting.stages import train_stage
    from forgetting.training.stage import TrainConfig

    with mlflow.start_run(experiment_id=experiment_id("unlearning")) as prune:
        pruned = log_checkpoint(tiny_checkpoint_with_tokenizer, register_as="tiny-pruned", alias="pruned",
                                tags={"study": "unlearning", "stage": "prune", "method": "random", "sparsity": 0.5,
                                      "step": 0})
    run = train_stage(TrainConfig(model="models:/tiny-pruned/1", steps=2, checkpoint_every=2,
                                  register_as="tiny-python", **TINY_TRAIN))
    files = artifact_files(run.info.run_id)
    assert files and all(f.startswith("checkpoints/step-000002/") for f in files), files
    step0 = checkpoint_version("models:/tiny-python@step-0")
    assert step0.source == pruned.source == f"runs:/{prune.info.run_id}/checkpoint"
    assert step0.tags[SAME_WEIGHTS_AS_TAG] == "models:/tiny-pruned/1"
    assert step0.tags["step"] == "0" and step0.tags["method"] == "random"
    assert step0.tags["parent_run"] == run.info.run_id
    assert resolve_checkpoint("models:/tiny-python@step-0") == resolve_checkpoint("models:/tiny-pruned/1")
    expected, restored = loaded(tiny_checkpoint_with_tokenizer), loaded("models:/tiny-python@step-0")
    assert restored.keys() == expected.keys() and all(torch.equal(restored[k], expected[k]) for k in expected)
    assert SAME_WEIGHTS_AS_TAG not in checkpoint_version("models:/tiny-python@step-2").tags


def test_bf16_training_registers_bf16_weights_of_the_fp32_run(store, tiny_checkpoint_with_tokenizer):
    from forgetting.stages import train_stage
    from forgetting.training.stage import TrainConfig

    model = str(tiny_checkpoint_with_tokenizer)
    for dtype in ("fp32", "bf16"):
        train_stage(TrainConfig(model=model, steps=2, checkpoint_every=2, register_as=f"tiny-{dtype}",
                                checkpoint_dtype=dtype, **TINY_TRAIN))
    fp32_dir, bf16_dir = resolve_checkpoint("models:/tiny-fp32@step-2"), resolve_checkpoint("models:/tiny-bf16@step-2")
    assert dtypes(fp32_dir) == {"F32"} and dtypes(bf16_dir) == {"BF16"}
    assert json.loads((bf16_dir / "config.json").read_text())["dtype"] == "bfloat16"
    ratio = (bf16_dir / "model.safetensors").stat().st_size / (fp32_dir / "model.safetensors").stat().st_size
    assert 0.49 < ratio < 0.51
    fp32, bf16 = loaded(fp32_dir), loaded(bf16_dir)
    assert all(t.dtype == torch.float32 for t in bf16.values())
    assert all(torch.equal(bf16[k], fp32[k].to(torch.bfloat16).float()) for k in fp32)
    original = loaded(model)
    assert not all(torch.equal(fp32[k], original[k]) for k in fp32), "training changed nothing"
    # step 0 of a model outside the registry is stored in checkpoint_dtype; of a registered one, a reference
    assert dtypes(resolve_checkpoint("models:/tiny-fp32@step-0")) == {"F32"}
    assert dtypes(resolve_checkpoint("models:/tiny-bf16@step-0")) == {"BF16"}
    registered = "models:/tiny-bf16@step-2"
    train_stage(TrainConfig(model=registered, steps=2, checkpoint_every=2, register_as="tiny-again",
                            checkpoint_dtype="bf16", **TINY_TRAIN))
    again = checkpoint_version("models:/tiny-again@step-0")
    assert again.source == checkpoint_version(registered).source and SAME_WEIGHTS_AS_TAG in again.tags


def test_checkpoint_dtype_is_checked():
    from forgetting.errors import UsageError
    from forgetting.training.stage import TrainConfig

    with pytest.raises(UsageError, match="checkpoint_dtype='fp16' is not one of: fp32, bf16"):
        TrainConfig(checkpoint_dtype="fp16").validate()


def test_a_tracking_server_stores_an_equal_checkpoint_once(tiny_checkpoint, tmp_path, monkeypatch):
    """Through ``mlflow server`` (proxied artifacts, downloads): a server takes a ``runs:/`` source only
    from the run holding it, so the reused artifact's version names that run; the registering run is in
    ``parent_run``."""
    from forgetting.tracking import store as store_module
    from forgetting.tracking.server import start_server

    server = start_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts")
    try:
        monkeypatch.setenv("FORGETTING_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            monkeypatch.delenv(name, raising=False)
        store_module.configure.cache_clear()
        with mlflow.start_run(experiment_id=experiment_id("unlearning")) as first:
            original = log_checkpoint(tiny_checkpoint, register_as="tiny", alias="pruned")
        stored = resolve_checkpoint("models:/tiny@pruned")  # a download, marked with what it is
        assert stored.is_relative_to(home() / "downloads")
        with mlflow.start_run(experiment_id=experiment_id("unlearning")) as second:
            from_download = log_checkpoint(stored, "checkpoints/step-000000", register_as="tiny-python")
            from_digest = log_checkpoint(tiny_checkpoint, "other", register_as="tiny-other")
            assert log_checkpoint(stored, "checkpoints/step-000000", register_as="tiny-python").version == from_download.version
        assert artifact_files(second.info.run_id) == []
        for version in (from_download, from_digest):
            assert version.source == original.source and version.run_id == first.info.run_id
            assert version.tags["parent_run"] == second.info.run_id
            assert version.tags[SAME_WEIGHTS_AS_TAG] == "models:/tiny/1"
            assert resolve_checkpoint(f"models:/{version.name}/{version.version}") == stored
        assert resolve_checkpoint(f"runs:/{second.info.run_id}/other") == stored
        assert checkpoint_version(f"runs:/{first.info.run_id}/checkpoint").name == "tiny"
        assert checkpoint_version(f"runs:/{second.info.run_id}/other").name == "tiny-other"
        expected = weights(tiny_checkpoint)
        assert all(torch.equal(weights(stored)[k], expected[k]) for k in expected)
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        server.stop()
        store_module.configure.cache_clear()
        mlflow.set_tracking_uri(None)
