"""What came of one program: its status, decided from how the child ended."""
from __future__ import annotations

import signal
from dataclasses import dataclass

from forgetting.rewards.sandbox.streams import STARTED_LINE
from forgetting.rewards.sandbox.supervisor import Outcome

STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "forbidden", "output_limit", "sandbox_error")
_CHILD_STATUSES = {"failed": "failed", "memory": "memory", "forbidden": "forbidden", "error": "sandbox_error"}


@dataclass(frozen=True)
class Result:
    """What came of one program. ``passed`` is ``status == "passed"``; ``detail`` says why
    not (the exception, the forbidden operation, the signal); stdout/stderr are tails."""

    passed: bool
    status: str
    stdout: str
    stderr: str
    seconds: float
    detail: str = ""
    returncode: int | None = None


def judge(mode: str, outcome: Outcome, nonce_line: bytes, cpu_limit: int) -> tuple[str, str]:
    """(status, detail) from what the child reported; only the nonce proves a pass."""
    if outcome.killed_for == "timeout":
        return "timeout", "killed after the time limit"
    if outcome.killed_for == "output_limit":
        return "output_limit", "killed after printing too much"
    if nonce_line in outcome.channel.seen and outcome.returncode == 0:
        return "passed", ""
    reported = outcome.channel.last_status()
    if reported and reported[0] in _CHILD_STATUSES:
        return _CHILD_STATUSES[reported[0]], reported[1]
    if STARTED_LINE not in outcome.channel.seen:
        tail = outcome.stderr.text().strip().splitlines()
        return "sandbox_error", tail[-1] if tail else f"exit status {outcome.returncode}"
    signum = _signal_of(mode, outcome.returncode)
    # PID 1 of a namespace (bwrap, unshare) ignores SIGXCPU; the hard limit's SIGKILL remains.
    if signum == signal.SIGXCPU or (signum == signal.SIGKILL and outcome.cpu_seconds >= cpu_limit - 0.5):
        return "timeout", "CPU time limit"
    if signum is not None:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else signum
        return "crashed", f"killed by {name}"
    return "failed", f"exited with status {outcome.returncode} before the tests finished"


def _signal_of(mode: str, returncode: int | None) -> int | None:
    """The signal that ended the program; bwrap reports it as ``128 + signal``."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if mode == "bwrap" and returncode > 128:
        return returncode - 128
    return None
