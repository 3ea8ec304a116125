import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh embedded tracking store in a temporary FORGETTING_HOME."""
    import mlflow

    from forgetting.tracking import store as store_module

    monkeypatch.setenv("FORGETTING_HOME", str(tmp_path / "home"))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    store_module.configure.cache_clear()
    uri = store_module.configure()
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    store_module.configure.cache_clear()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A tiny random-init Llama saved as an HF checkpoint directory."""
    from forgetting.models.tiny import tiny_llama

    path = tmp_path / "tiny"
    tiny_llama().save_pretrained(path)
    return path


@pytest.fixture
def tiny_checkpoint_with_tokenizer(tmp_path):
    """The tiny Llama sized to the bundled tokenizer, saved with it: a complete model spec."""
    from transformers import AutoTokenizer

    from forgetting.models.bundled import bundled_model_dir
    from forgetting.models.tiny import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    path = tmp_path / "tiny-with-tokenizer"
    tiny_llama(vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
