"""A text corpus as fixed-length causal-LM blocks: documents joined by EOS, cut into blocks."""
from __future__ import annotations

from typing import Iterable, Iterator

import torch


def token_blocks(tokenizer, texts: Iterable[str], block_size: int, max_blocks: int) -> torch.Tensor:
    """``(n, block_size)`` token ids from the start of ``texts``, stopping after ``max_blocks`` blocks."""
    separator = [tokenizer.eos_token_id]
    buffer: list[int] = []
    needed = block_size * max_blocks
    for text in texts:
        buffer += tokenizer(text, add_special_tokens=False)["input_ids"] + separator
        if len(buffer) >= needed:
            break
    usable = min(len(buffer), needed) // block_size * block_size
    return torch.tensor(buffer[:usable], dtype=torch.long).view(-1, block_size)


def lm_batches(blocks: torch.Tensor, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Causal-LM batches (labels = inputs; no padding inside a block)."""
    for start in range(0, len(blocks), batch_size):
        ids = blocks[start:start + batch_size]
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def python_code_blocks(tokenizer, split: str, block_size: int, max_blocks: int, seed: int = 0) -> torch.Tensor:
    """Blocks of the Python-code corpus (the interpreter's standard library, split by file)."""
    from forgetting.data import load_task

    files = load_task("python_code", split, seed=seed, limit=max_blocks * 4)
    return token_blocks(tokenizer, (row["text"] for row in files), block_size, max_blocks)
