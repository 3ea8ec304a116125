import pytest
import torch

from forgetting.errors import UsageError
from forgetting.scoring.generation import generate
from forgetting.models import DEFAULT_MODEL, load_model, resolve_model
from forgetting.models.tiny import tiny_llama


@pytest.fixture(scope="module")
def bundled():
    return load_model(DEFAULT_MODEL)


def test_bundled_model_is_the_real_smollm2(bundled):
    model, tokenizer = bundled
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert len(tokenizer) == 49152


def test_bundled_model_knows_the_capital_of_france(bundled):
    completions, _ = generate(*bundled, ["The capital of France is"], max_new_tokens=8)
    assert "Paris" in completions[0]


def test_local_directory_spec(tiny_checkpoint):
    assert resolve_model(str(tiny_checkpoint)) == str(tiny_checkpoint.resolve())


@pytest.mark.parametrize("spec, message", [
    ("no-such-model", "is not a known model spec"),
    ("", "model is empty"),
    ("models:/nope@x", "not in the model registry"),
])
def test_bad_model_specs(spec, message, store):
    with pytest.raises(UsageError, match=message):
        resolve_model(spec)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(UsageError, match="without config.json"):
        resolve_model(str(tmp_path))


def test_tiny_llama_is_deterministic():
    first, second = tiny_llama(seed=3), tiny_llama(seed=3)
    assert first.config.head_dim >= 32
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


@pytest.mark.parametrize("damage, message", [
    (lambda path: (path / "config.json").write_text("{not json"), "has a corrupt config.json"),
    (lambda path: (path / "config.json").write_text("[]"), "config.json has no model_type"),
    (lambda path: (path / "model.safetensors").unlink(), "has no weights"),
    (lambda path: (path / "model.safetensors").write_bytes(b"\x00" * 64), "model.safetensors is not a readable"),
])
def test_a_damaged_checkpoint_is_one_line_before_any_run(damage, message, store, tiny_checkpoint_with_tokenizer):
    """The evaluate entry point refuses it with exit 2 and leaves no run in the store."""
    import subprocess
    import sys
    from pathlib import Path

    import mlflow

    damage(tiny_checkpoint_with_tokenizer)
    done = subprocess.run([sys.executable, "entrypoints/evaluate.py", "--model", str(tiny_checkpoint_with_tokenizer)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1]
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_an_unknown_split_is_refused_by_every_suite_before_any_run():
    from forgetting.evaluation.suites import EvaluateConfig

    for suite in ("accuracy", "attacks", "classification", "forgetting", "policy", "safety"):
        config = EvaluateConfig(suite=suite, task="sst2" if suite == "classification" else "arc_easy", split="dev")
        with pytest.raises(UsageError, match="split='dev' is not one of"):
            config.validate()
