"""Numeric precision on CPU.

bf16 autocast over fp32 master weights is ~2.5x faster for training SmolLM2 on CPU (DESIGN.md);
pure bf16 parameters do not learn at small learning rates, so weights stay fp32.
"""
from __future__ import annotations

import contextlib

import torch

from forgetting.errors import check_choice

PRECISIONS = ("fp32", "bf16-autocast")


def autocast(precision: str, device: str = "cpu"):
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)
