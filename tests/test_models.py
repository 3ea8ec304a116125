import pytest
import torch

from forgetting.errors import UsageError
from forgetting.evaluation.generation import generate
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
