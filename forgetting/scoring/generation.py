"""Batched greedy generation with transformers (left padding, per-sequence stop strings).

The decoding loop is our own because ``model.generate`` keeps finished rows in the batch until the
longest one stops; dropping them from the KV cache as they finish makes a GSM8K batch ~2x cheaper
on CPU, where a step costs in proportion to the rows it carries. Every tensor of the loop lives on
``model.device``; only the chosen token ids come back to Python, once per step.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from forgetting.device import autocast, on_device

STOP_STRINGS = ("\n\nQuestion:", "\nQuestion:", "<|im_end|>", "<|endoftext|>")


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 256, batch_size: int = 8,
             stop_strings=STOP_STRINGS, precision: str = "fp32") -> tuple[list[str], int]:
    """Greedy completions in the prompts' order, cut at the first stop string; also tokens generated."""
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    completions, generated = [""] * len(prompts), 0
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", leave=False):
        batch = order[start:start + batch_size]
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True)  # BOS where one exists
        with autocast(precision, model.device):
            new_tokens = greedy_decode(model, tokenizer, inputs["input_ids"], inputs["attention_mask"],
                                       max_new_tokens, stop_strings)
        for index, ids in zip(batch, new_tokens):
            generated += len(ids)
            completions[index] = cut_at_stop(tokenizer.decode(ids, skip_special_tokens=False), stop_strings)
    return completions, generated


def greedy_engine(model, tokenizer, batch_size: int = 8, precision: str = "fp32"):
    """``(prompts, max_new_tokens, stop_strings) -> (completions, tokens generated)`` by ``generate`` on
    ``model``: the greedy engine the scorers call, which ``generate_greedy_with_vllm``
    (``forgetting.scoring.engines``) can stand in for."""
    return lambda prompts, max_new_tokens, stop_strings=STOP_STRINGS: generate(
        model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, precision)


def greedy_decode(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  max_new_tokens: int, stop_strings=STOP_STRINGS, window: int = 8) -> list[list[int]]:
    """New token ids per row; a row leaves the batch (and the KV cache) once it emits an end-of-sequence
    token or its last ``window`` tokens decode to text holding a stop string. The inputs may be on any
    device: the loop runs on ``model.device``."""
    end_ids = set(_as_list(model.generation_config.eos_token_id)) | {tokenizer.eos_token_id}
    input_ids, attention_mask = on_device(input_ids, model.device), on_device(attention_mask, model.device)
    outputs = [[] for _ in range(len(input_ids))]
    active = list(range(len(input_ids)))
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    step_ids = input_ids
    for _ in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=positions,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        next_ids = logits[:, -1].argmax(-1)
        keep = []
        for row, token in zip(active, next_ids.tolist()):
            outputs[row].append(token)
            tail = tokenizer.decode(outputs[row][-window:])
            keep.append(token not in end_ids and not any(s in tail for s in stop_strings))
        if not any(keep):
            break
        if not all(keep):
            active = [row for row, kept in zip(active, keep) if kept]
            rows = torch.tensor([index for index, kept in enumerate(keep) if kept], device=model.device)
            cache.batch_select_indices(rows)
            next_ids, attention_mask, positions = next_ids[rows], attention_mask[rows], positions[rows]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], dim=-1)
        positions = positions[:, -1:] + 1
        step_ids = next_ids[:, None]
    return outputs


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def cut_at_stop(text: str, stop_strings) -> str:
    cut = min((text.find(s) for s in stop_strings if s in text), default=len(text))
    return text[:cut]
