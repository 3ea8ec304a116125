"""Units of work for :func:`~forgetting.rewards.sandbox.run_batch`, and how to build them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Job:
    """One unit for :func:`run_batch`: the arguments of :func:`run_tests`."""

    program: str
    tests: str
    timeout: float = 10.0
    memory_mb: int = 512


def humaneval_job(problem: Mapping, completion: str, timeout: float = 10, memory_mb: int = 512) -> Job:
    """The HumanEval way: prompt + completion is the program; ``check(entry_point)`` the test."""
    return Job(program=problem["prompt"] + completion,
               tests=f"{problem['test']}\n\ncheck({problem['entry_point']})\n",
               timeout=timeout, memory_mb=memory_mb)
