"""Run model-written Python against tests, never in this process.

Every code reward and code evaluation goes through :func:`run_tests` (one program) or
:func:`run_batch` (many, in parallel). Each program runs in a fresh interpreter
(``python -I -S``) inside the strongest isolation the machine offers:

``bwrap``
    bubblewrap: new user/pid/network/ipc/uts/mount namespaces, only the interpreter and the
    system libraries bound read-only, a private tmpfs working directory, no environment.
``unshare``
    util-linux ``unshare``: a new network namespace (no network) and pid namespace (cannot
    see or signal this process); the filesystem is shared.
``process``
    a plain child process in its own session with a private temporary working directory.

All three add resource limits (CPU seconds, address space, file size, open files, processes,
no core files), a wall-clock timeout that kills the whole process tree, an output cap, and an
in-child audit hook that ends the run as ``forbidden`` on fork/exec, signals, sockets, writes
outside the working directory, ctypes, and introspection of the harness. The audit hook is
not a security boundary (CPython does not promise it is complete); the namespaces are.
``FORGETTING_SANDBOX=bwrap`` refuses to run without bubblewrap; see ``docs/sandbox.md``.

How a pass is decided (threat model in ``docs/sandbox.md``): the child gets a random nonce on
stdin before any untrusted code runs and keeps it only in the main thread's frame; the
program and tests run in a second thread. The main thread writes the nonce to a private
channel only when the test thread reports success through an object the program cannot
reach, so exiting early (``exit()``, ``os._exit(0)``), printing, or tampering with builtins,
``sys.modules`` or module attributes before the tests cannot produce a pass.

Modules: ``runner`` (one run), ``pool`` (a batch), ``jobs`` (what a batch is made of),
``isolation`` (which wrapper, and the probe), ``interpreter`` (the child's interpreter and
command line), ``limits`` (rlimits), ``supervisor`` (time and output caps, killing the tree),
``streams`` (bounded capture), ``verdict`` (the status), ``harness`` (the child's side).
"""
from forgetting.rewards.sandbox.isolation import (ENV_VAR, SANDBOX_DIR, SETTINGS, TMPFS_BYTES,
                                                  SandboxUnavailable, active_isolation,
                                                  isolation_mode)
from forgetting.rewards.sandbox.jobs import Job, humaneval_job
from forgetting.rewards.sandbox.limits import FILE_SIZE_BYTES, MAX_OUTPUT_BYTES, OPEN_FILES, PROCESSES
from forgetting.rewards.sandbox.pool import default_workers, run_batch, run_job
from forgetting.rewards.sandbox.runner import run_tests
from forgetting.rewards.sandbox.streams import TAIL_BYTES
from forgetting.rewards.sandbox.verdict import STATUSES, Result

__all__ = [
    "ENV_VAR",
    "Job",
    "Result",
    "STATUSES",
    "SandboxUnavailable",
    "active_isolation",
    "default_workers",
    "humaneval_job",
    "isolation_mode",
    "run_batch",
    "run_job",
    "run_tests",
]
