"""One resolver for every model spec a stage accepts.

Specs: ``smollm2-135m`` (bundled default), ``gemma3-270m`` (bundled, another family), a local Hugging Face checkpoint directory,
``models:/name@alias``, ``models:/name/version``, ``runs:/<id>/<path>``, a run ID, or a hub id
(``org/name``; needs hub access or a warm HF cache).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from forgetting.errors import UsageError
from forgetting.models.bundled import BUNDLED, DEFAULT_MODEL, bundled_model_dir

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ACCEPTED = (f"{', '.join(BUNDLED)}, a local HF checkpoint directory, models:/name@alias, "
            "models:/name/version, runs:/<id>/<path>, a run ID, or a hub id org/name")


def resolve_model(spec: str) -> str:
    """A local directory (or a hub id) that ``from_pretrained`` loads; raises UsageError early. Inside
    ``resolved_once`` (``forgetting.tracking.pinned``), the first answer for a spec is the answer for the
    rest of the block."""
    from forgetting.tracking.pinned import pinned

    return pinned("location", spec, lambda: _resolve(spec))


def _resolve(spec: str) -> str:
    from forgetting.tracking.checkpoints import is_tracking_uri, resolve_checkpoint

    if not spec:
        raise UsageError(f"model is empty; use {ACCEPTED}")
    if spec in BUNDLED:
        return str(bundled_model_dir(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(check_checkpoint(spec, path).resolve())
    if is_tracking_uri(spec):
        return str(check_checkpoint(spec, Path(resolve_checkpoint(spec))))
    if HUB_ID.match(spec) and not spec.startswith(("/", ".")):
        offline = _hub_offline()
        if offline and not _in_hf_cache(spec):
            raise UsageError(f"model={spec!r} is a hub id, but it is not in the HF cache and the hub is offline "
                             f"({offline}=1): run with HF_HUB_OFFLINE=0 where the hub is reachable (./run keeps a "
                             f"value you set), or run `hf download {spec}` once where it is")
        return spec
    raise UsageError(f"model={spec!r} is not a known model spec; use {ACCEPTED}")


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_checkpoint(spec: str, path: Path) -> Path:
    """``path`` if it is a loadable HF checkpoint: a ``config.json`` that parses to a model config, a
    weights file, and safetensors headers that read (checked before any run; nothing is loaded)."""
    import json

    config = path / "config.json"
    if not config.is_file():
        raise UsageError(f"model={spec!r} is a directory without config.json (not an HF checkpoint)")
    try:
        parsed = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"model={spec!r} has a corrupt config.json ({type(error).__name__}: {error})") from None
    if not isinstance(parsed, dict) or "model_type" not in parsed:
        raise UsageError(f"model={spec!r}: config.json has no model_type (not a transformers model config)")
    weights = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
    if not weights:
        raise UsageError(f"model={spec!r} has no weights ({', '.join(WEIGHT_FILES)})")
    for shard in sorted(path.glob("*.safetensors")):
        _check_safetensors(spec, shard)
    return path


def _check_safetensors(spec: str, shard: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(shard), framework="pt"):
            pass
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
        raise UsageError(f"model={spec!r}: {shard.name} is not a readable safetensors file "
                         f"({type(error).__name__})") from None


def _hub_offline() -> str | None:
    """``HF_HUB_OFFLINE`` when it is set true (1, on, yes, true: huggingface_hub's reading), else None."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return "HF_HUB_OFFLINE" if offline else None


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def load_model(spec: str, *, dtype=None, device=None):
    """``(model, tokenizer)`` in eval mode on ``device`` (default: the stage's device policy), fp32
    weights by default, padding on the left for generation, attention by ``forgetting.models.attention``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import forgetting.models.variable_llama  # noqa: F401 - registers pruned (variable-size) Llamas
    from forgetting.device import current
    from forgetting.models.attention import use_on

    location = resolve_model(spec)
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = use_on(AutoModelForCausalLM.from_pretrained(location, dtype=dtype or torch.float32))
    return model.to(device or current().device).eval(), tokenizer
