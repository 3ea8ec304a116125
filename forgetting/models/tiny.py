"""A tiny random-init Llama for unit tests (hidden 64, 2 layers, head_dim 32): no file needed."""
from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int = 256, seed: int = 0, **overrides) -> LlamaForCausalLM:
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=32, max_position_embeddings=512, tie_word_embeddings=True)
    config = LlamaConfig(vocab_size=vocab_size, **(shape | overrides))
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()
