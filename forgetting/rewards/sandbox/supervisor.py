"""Drive one started child to its end: feed it the job, capture its streams within the output
cap, enforce the wall clock, then kill and reap everything it started."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from forgetting.rewards.sandbox.streams import STARTED_LINE, ReportChannel, Tail


@dataclass
class Outcome:
    """How the child ended. ``killed_for`` is ``timeout`` or ``output_limit`` when the parent
    ended it; ``cpu_seconds`` covers the whole process tree."""

    returncode: int | None
    killed_for: str | None
    stdout: Tail
    stderr: Tail
    channel: ReportChannel
    seconds: float
    cpu_seconds: float


def supervise(process: subprocess.Popen, job_bytes: bytes, channel_fd: int, info_fd: int | None,
              nonce_line: bytes, timeout: float, max_output: int) -> Outcome:
    """Feed the job, read every stream into bounded tails, enforce time and output caps."""
    start = time.monotonic()
    deadline = start + timeout
    stdout, stderr = Tail(), Tail()
    channel = ReportChannel([STARTED_LINE, nonce_line])
    info = Tail(4096) if info_fd is not None else None
    sinks = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr, channel_fd: channel}
    if info is not None:
        sinks[info_fd] = info
    pending = memoryview(job_bytes)
    killed_for = None
    with selectors.DefaultSelector() as selector:
        stdin_fd = process.stdin.fileno()
        os.set_blocking(stdin_fd, False)
        selector.register(stdin_fd, selectors.EVENT_WRITE)
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and killed_for is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed_for = "timeout"
                break
            for key, _ in selector.select(remaining):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[: 1 << 16]):]
                    except OSError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(fd)
                        process.stdin.close()
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    selector.unregister(fd)
                    continue
                sinks[fd].feed(chunk)
                if stdout.total + stderr.total + channel.total > max_output:
                    killed_for = "output_limit"
                    break
    if killed_for is None and not _exited(process.pid, deadline):
        killed_for = "timeout"
    _kill_tree(process, info)
    cpu_seconds = _reap(process)
    return Outcome(process.returncode, killed_for, stdout, stderr, channel,
                   time.monotonic() - start, cpu_seconds)


def _exited(pid: int, deadline: float) -> bool:
    """Wait until ``pid`` has exited, without reaping it: while it is a zombie its process
    group id cannot be reused, so killing the group afterwards cannot hit a stranger."""
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _inner_pid(process: subprocess.Popen, info: Tail | None) -> int | None:
    """The process that bwrap or ``unshare --fork`` runs the program in, if it is not ours.

    bwrap reports it on ``--info-fd``; for unshare it is the wrapper's only child."""
    if info is not None:
        found = re.search(rb'"child-pid"\s*:\s*(\d+)', info.data)
        return int(found.group(1)) if found else None
    try:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
            pids = children.read().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def _kill_tree(process: subprocess.Popen, info: Tail | None) -> None:
    """SIGKILL everything we started, the leader not yet reaped.

    A wrapped program is killed first and reaped by its wrapper (killing bwrap first would
    orphan it to init, which may never reap it), then the whole process group. Its pid
    namespace dies with it."""
    if not _exited(process.pid, time.monotonic()):
        inner = _inner_pid(process, info)
        if inner is not None:
            try:
                os.kill(inner, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _exited(process.pid, time.monotonic() + 2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(process: subprocess.Popen) -> float:
    """Reap the leader ourselves to learn the CPU time of the whole tree it reaped."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime
