"""``sdpa_or_eager``: SDPA's results with eager attention for small CPU calls, SDPA itself everywhere else."""
import json

import pytest
import torch

from forgetting.models import attention
from forgetting.models.tiny import tiny_llama


def _pair():
    """Two copies of the tiny Llama with grouped-query attention: SDPA, and ``sdpa_or_eager``."""
    reference = tiny_llama(num_attention_heads=2, num_key_value_heads=1)
    return reference, attention.use_on(tiny_llama(num_attention_heads=2, num_key_value_heads=1))


def _block_mask():
    """A scoring batch's 4D boolean mask: a context of 3 tokens, two choices of 2 that see it and themselves, and
    a shorter padded row."""
    segments = torch.tensor([[0, 0, 0, 1, 1, 2, 2], [0, 0, 1, 2, -1, -1, -1]])
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    mask = causal & ((segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None]))
    mask &= (segments[:, None, :] >= 0) & (segments[:, :, None] >= 0)
    return (mask | torch.eye(7, dtype=torch.bool))[:, None]


@pytest.mark.parametrize("mask", ["causal", "padded", "block"])
def test_the_eager_path_gives_sdpas_outputs_and_gradients(mask):
    reference, model = _pair()
    assert model.config._attn_implementation == attention.NAME
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    masks = {"causal": None, "padded": torch.tensor([[1] * 7, [1] * 4 + [0] * 3]), "block": _block_mask()}
    compared = torch.tensor([[True] * 7, [True] * 4 + [False] * 3]) if mask != "causal" else torch.ones(2, 7).bool()
    outputs = [network(input_ids=ids, attention_mask=masks[mask]).logits for network in (reference, model)]
    torch.testing.assert_close(outputs[1][compared], outputs[0][compared], atol=1e-5, rtol=1e-5)
    for output in outputs:
        output[compared].logsumexp(-1).sum().backward()
    for (name, expected), actual in zip(reference.named_parameters(), model.parameters()):
        torch.testing.assert_close(actual.grad, expected.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_generation_with_a_cache_is_unchanged():
    reference, model = _pair()
    prompt = torch.randint(0, 256, (1, 5), generator=torch.Generator().manual_seed(1))
    options = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(prompt))
    assert torch.equal(model.generate(prompt, **options), reference.generate(prompt, **options))


def test_sdpa_runs_where_the_matrix_is_large_or_the_tensors_are_not_on_a_cpu(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *args, **kwargs: calls.append(args[0].device.type) or real(*args, **kwargs))
    _, model = _pair()
    ids = torch.randint(0, 256, (2, 7))
    model(input_ids=ids)
    assert calls == []  # 2 x 2 heads x 7 x 7: eager
    monkeypatch.setattr(attention, "EAGER_MAX_ELEMENTS", 2 * 2 * 7 * 7 - 1)
    model(input_ids=ids)
    assert calls == ["cpu", "cpu"]  # one call per layer
    query = torch.empty(1, 2, 3, 4, device="meta")
    monkeypatch.setattr(attention, "EAGER_MAX_ELEMENTS", 1 << 30)
    output, _ = attention.attention(torch.nn.Module(), query, query, query, None)
    assert calls[-1] == "meta" and output.shape == (1, 3, 2, 4)


def test_load_model_uses_it_for_an_sdpa_model_and_checkpoints_do_not_record_it(tiny_checkpoint_with_tokenizer,
                                                                                  tmp_path):
    from forgetting.models import load_model

    model, _ = load_model(str(tiny_checkpoint_with_tokenizer), device="cpu")
    assert model.config._attn_implementation == attention.NAME
    model.save_pretrained(tmp_path / "saved")
    assert attention.NAME not in (tmp_path / "saved" / "config.json").read_text()
    assert "attn_implementation" not in json.loads((tmp_path / "saved" / "config.json").read_text())
    eager = tiny_llama(attn_implementation="eager")
    assert attention.use_on(eager).config._attn_implementation == "eager"
