"""Batched greedy generation with transformers (left padding, per-sequence stop strings)."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from forgetting.models.precision import autocast

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
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                           add_special_tokens=False)
        stop = StopOnStrings(tokenizer, stop_strings, inputs["input_ids"].shape[1])
        with autocast(precision):
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    stopping_criteria=StoppingCriteriaList([stop]),
                                    pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        for row, index in enumerate(batch):
            ids = new_tokens[row][new_tokens[row] != tokenizer.pad_token_id]
            generated += len(ids)
            completions[index] = cut_at_stop(tokenizer.decode(ids, skip_special_tokens=False), stop_strings)
    return completions, generated


def cut_at_stop(text: str, stop_strings) -> str:
    cut = min((text.find(s) for s in stop_strings if s in text), default=len(text))
    return text[:cut]


class StopOnStrings(StoppingCriteria):
    """Marks a sequence done once its recent tokens decode to text holding a stop string.

    transformers' own ``stop_strings`` builds per-vocabulary tables on every call (slow for a
    49k vocabulary on CPU); decoding the last few tokens per step is cheap.
    """

    def __init__(self, tokenizer, stop_strings, prompt_length: int, window: int = 8):
        self.tokenizer, self.stop_strings = tokenizer, tuple(stop_strings)
        self.prompt_length, self.window = prompt_length, window

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:])
        return torch.tensor([any(s in tail for s in self.stop_strings) for tail in tails])
