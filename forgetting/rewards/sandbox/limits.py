"""The resource limits every program runs under, and the checks on those a caller picks."""
from __future__ import annotations

import os

from forgetting.errors import check_range

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
FILE_SIZE_BYTES = 16 * 1024 * 1024
OPEN_FILES = 64
PROCESSES = 32


def check_limits(timeout: float, memory_mb: int) -> None:
    check_range("timeout", timeout, 0, 3600, low_open=True)
    check_range("memory_mb", memory_mb, 128, 1 << 20)


def cpu_limit(timeout: float) -> int:
    """CPU seconds for a run with this wall-clock ``timeout``."""
    return int(timeout) + 1


def rlimits(mode: str, timeout: float, memory_mb: int) -> list[tuple[str, int, int]]:
    """rlimits the harness sets on itself before any untrusted code runs.

    RLIMIT_NPROC counts every process of the user, except inside a user namespace (bwrap, or
    unshare without root), where it counts the sandbox's own; a plain process of a non-root
    user therefore gets none rather than one that would depend on what else the user runs.
    Linux does not apply it to root at all."""
    cpu = cpu_limit(timeout)
    limits = [("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_AS", memory_mb << 20, memory_mb << 20),
              ("RLIMIT_FSIZE", FILE_SIZE_BYTES, FILE_SIZE_BYTES),
              ("RLIMIT_NOFILE", OPEN_FILES, OPEN_FILES), ("RLIMIT_CORE", 0, 0)]
    if mode != "process" or os.geteuid() == 0:
        limits.append(("RLIMIT_NPROC", PROCESSES, PROCESSES))
    return limits
