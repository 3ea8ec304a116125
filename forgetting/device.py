"""One device policy for every stage: where models and batches live and what ``precision`` means there.

A stage selects the policy once, from its ``device``, ``precision`` and ``gpus`` parameters, before
any run exists (``select``: a device that is not there is a one-line error). From then on
``load_model`` places models on ``current().device``, every forward pass moves its batch to
``model.device`` (``on_device``), and ``autocast`` uses the device's type, so no stage names a
device itself.

- ``device``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` (the process's own GPU:
  ``LOCAL_RANK`` under ``torchrun``) or ``cuda:N``.
- ``precision``: ``auto`` is fp32 on a CPU (numbers match lm-eval's fp32 default) and bf16 autocast
  over fp32 master weights on a GPU that supports bf16 (attention through PyTorch SDPA, whose flash
  kernel runs in bf16), fp32 on one that does not; ``fp32`` and ``bf16-autocast`` mean the same on
  every device. Weights stay fp32: pure bf16 parameters do not learn at small learning rates, and
  bf16 autocast is ~2.5x faster than fp32 for training SmolLM2 on a CPU too (DESIGN.md).
- Host memory the process frees is kept for its next allocations (``keep_freed_host_memory``).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import resource
from dataclasses import dataclass

import torch

from forgetting.errors import UsageError, check_choice

PRECISIONS = ("auto", "fp32", "bf16-autocast")
DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
GPUS_HELP = ("data-parallel processes started with torchrun, one per GPU (with device=cpu: CPU processes "
             "on the gloo backend)")


@dataclass(frozen=True)
class DevicePolicy:
    device: torch.device
    precision: str  # the resolved one: fp32 or bf16-autocast

    @property
    def gpu_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "none"

    def tags(self) -> dict[str, str]:
        """What the run's UI shows about where it ran."""
        return {"device": str(self.device), "gpu_name": self.gpu_name, "compute_precision": self.precision}


_current: DevicePolicy | None = None


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def parse_device(spec: str) -> torch.device:
    """The device ``spec`` names on this machine; UsageError (naming what is available) if it is not here."""
    available = cuda_count()
    have = f"this machine has {available} CUDA device{'s' if available != 1 else ''}" + (
        f" (cuda:0..cuda:{available - 1})" if available else "")
    if spec == "auto":
        return torch.device("cuda", local_rank()) if available else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        index = local_rank() if spec == "cuda" else int(spec[5:])
        if index >= available:
            raise UsageError(f"device={spec!r} is not available: {have}")
        return torch.device("cuda", index)
    raise UsageError(f"device={spec!r} is not one of: {DEVICE_HELP}")


def resolve_precision(precision: str, device: torch.device) -> str:
    check_choice("precision", precision, PRECISIONS)
    bf16 = device.type == "cpu" or torch.cuda.is_bf16_supported()
    if precision == "auto":
        return "bf16-autocast" if device.type == "cuda" and bf16 else "fp32"
    if precision == "bf16-autocast" and not bf16:
        raise UsageError(f"precision='bf16-autocast' is not supported on {device} "
                         f"({torch.cuda.get_device_name(device)}); use fp32 or auto")
    return precision


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(gpus: int, device: str) -> None:
    """``gpus`` processes fit the machine: one GPU each, or (device=cpu) one core each."""
    if gpus < 1:
        raise UsageError(f"gpus={gpus} must be at least 1")
    if gpus == 1:
        return
    if device == "cpu":
        if gpus > (os.cpu_count() or 1):
            raise UsageError(f"gpus={gpus} CPU processes is more than this machine's {os.cpu_count()} cores")
        return
    if device.startswith("cuda:"):
        raise UsageError(f"gpus={gpus} needs device=auto or cuda (each process takes its own GPU), not {device!r}")
    if gpus > cuda_count():
        raise UsageError(f"gpus={gpus} is more than this machine's {cuda_count()} CUDA devices"
                         + ("" if cuda_count() else "; use device=cpu for CPU processes"))


def select(device: str = "auto", precision: str = "auto", gpus: int = 1) -> DevicePolicy:
    """Validate and set the process's device policy (every check before any work)."""
    global _current
    check_gpus(gpus, device)
    resolved = parse_device(device)
    _current = DevicePolicy(resolved, resolve_precision(precision, resolved))
    keep_freed_host_memory()
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
        torch.cuda.reset_peak_memory_stats(resolved)
    return _current


ALLOCATOR_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES",
                      "LD_PRELOAD")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters


def keep_freed_host_memory() -> bool:
    """Make glibc's malloc keep freed memory for the process's next allocations; False where it is not glibc
    or the user tuned the allocator (``ALLOCATOR_SETTINGS`` set).

    glibc serves every block above 32 MB (an embedding's gradient, a batch's logits over the vocabulary) with a
    fresh ``mmap`` and unmaps it when freed, so every training step faults those pages in and zeroes them
    again. With no ``mmap`` blocks (``M_MMAP_MAX=0``) and memory handed back only when 2 GB lie free at the top
    of the heap (``M_TRIM_THRESHOLD``), the blocks are reused: SmolLM2-135M on 2 CPU cores, a train step
    (4 x 128 tokens) 1.33 -> 0.99 s, a fine-tuning step 0.66 -> 0.54 s (``benchmarks/bench_allocator.py``)."""
    if any(os.environ.get(name) for name in ALLOCATOR_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def current() -> DevicePolicy:
    """The selected policy; ``auto`` with fp32 when no stage selected one (a library call, a test)."""
    global _current
    if _current is None:
        device = parse_device("auto")
        _current = DevicePolicy(device, resolve_precision("auto", device))
    return _current


def _autocast_device(precision: str | None, device: torch.device | str | None) -> torch.device | None:
    """``device`` (default: the policy's) where ``precision`` (default: the policy's) autocasts there, else None."""
    device = torch.device(device) if device is not None else current().device
    resolved = resolve_precision(precision, device) if precision else current().precision
    return None if resolved == "fp32" else device


def autocast(precision: str | None = None, device: torch.device | str | None = None):
    """The autocast context of ``precision`` (default: the policy's) on ``device`` (default: the policy's)."""
    device = _autocast_device(precision, device)
    return contextlib.nullcontext() if device is None else torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def fp32_outputs(precision: str | None = None, device: torch.device | str | None = None):
    """The context that switches ``autocast(precision, device)`` off again, for work whose results must be fp32
    (a log-softmax over the vocabulary). Under bf16 autocast on a CPU, oneDNN may still read a matmul's fp32
    inputs as bf16 (fpmath mode ``bf16``; fp32 accumulation and outputs): scoring CounterFact's 196 questions
    with the 135M model 1.35 -> 1.15 s, every summed log-probability within 5e-5, no prediction changed."""
    device = _autocast_device(precision, device)
    if device is None:
        yield
        return
    matmul = getattr(torch.backends.mkldnn, "matmul", None) if device.type == "cpu" else None
    before = getattr(matmul, "fp32_precision", None)
    with torch.autocast(device_type=device.type, enabled=False):
        try:
            if before is not None:
                matmul.fp32_precision = "bf16"
            yield
        finally:
            if before is not None:
                matmul.fp32_precision = before


def on_device(batch, device):
    """``batch`` (a tensor, or a mapping of tensors and other values) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def usage_metrics() -> dict[str, float]:
    """``peak_rss_mb`` of this process and ``peak_gpu_memory_mb`` from the CUDA allocator (0 on a CPU)."""
    metrics = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    device = current().device
    metrics["peak_gpu_memory_mb"] = (torch.cuda.max_memory_allocated(device) / 2**20
                                     if device.type == "cuda" else 0.0)
    return metrics
