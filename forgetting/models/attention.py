"""Attention that picks its kernel by device and size: transformers' SDPA, except for small attention
matrices on a CPU, which are computed as transformers' eager attention does.

Why: torch's CPU flash-attention kernel has a large fixed cost per (batch, head) block in its backward. For a
135M model at 4 x 128 tokens its backward took 0.17 s of a 1.0 s training step, while the whole attention
(both matmuls and the softmax, materialised) is a few GFLOP (``benchmarks/bench_attention.py``). Materialising
costs memory quadratic in the length, so larger matrices, and every other device, keep SDPA.

Models load with ``attn_implementation=NAME`` wherever they would use SDPA (``use_on``); masks are built as for
SDPA (boolean, True = attend), and a checkpoint's ``config.json`` does not record the choice.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_or_eager"
# Per layer call: batch x heads x queries x keys elements at most on the eager path (about 50 MB of probabilities
# kept for the backward per layer at the bound): 2 x 512 tokens with 9 heads, not 1 x 1024, where the two are even.
EAGER_MAX_ELEMENTS = 1 << 23


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    """An ``AttentionInterface`` function with SDPA's signature, masks and output ``(batch, length, heads, dim)``."""
    batch, heads, queries, _ = query.shape
    if query.device.type != "cpu" or batch * heads * queries * key.shape[2] > EAGER_MAX_ELEMENTS:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is None and causal and queries > 1:  # SDPA's is_causal: the last queries see every key
        attention_mask = torch.ones(queries, key.shape[2], dtype=torch.bool, device=query.device).tril(
            key.shape[2] - queries)
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    probabilities = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probabilities = torch.nn.functional.dropout(probabilities, p=dropout, training=module.training)
    return torch.matmul(probabilities, value).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make ``NAME`` an attention implementation transformers knows, with SDPA's masks (idempotent)."""
    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_on(model):
    """``model`` (and its sub-models) switched from SDPA to ``NAME``; any other implementation is left alone."""
    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        register()
        model.set_attn_implementation(NAME)
    return model
