"""One program and its tests in a fresh sandboxed interpreter: :func:`run_tests`."""
from __future__ import annotations

import importlib.resources
import marshal
import os
import secrets
import shutil
import subprocess
import tempfile

from forgetting.rewards.sandbox.interpreter import base_interpreter, clean_env, command
from forgetting.rewards.sandbox.isolation import SANDBOX_DIR, chosen_isolation
from forgetting.rewards.sandbox.limits import MAX_OUTPUT_BYTES, check_limits, cpu_limit, rlimits
from forgetting.rewards.sandbox.supervisor import supervise
from forgetting.rewards.sandbox.verdict import Result, judge

HARNESS = importlib.resources.files(__package__).joinpath("harness.py").read_text(encoding="utf-8")
# Runs the harness in a private globals dict with a private copy of builtins; see harness.py.
BOOTSTRAP = (
    "import sys;exec(compile(sys.argv[1],'<sandbox-harness>','exec'),"
    "{'__builtins__':__builtins__.__dict__.copy(),'__name__':'sandbox_harness'})"
)
READABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def run_tests(program: str, tests: str, timeout: float = 10, memory_mb: int = 512, *,
              isolation: str | None = None, max_output_bytes: int = MAX_OUTPUT_BYTES,
              _audit_hook: bool = True) -> Result:
    """Run ``program`` then ``tests`` (which raise on failure) in a fresh sandboxed interpreter.

    ``timeout`` is wall-clock seconds for the whole run; ``memory_mb`` caps the address space.
    ``isolation`` overrides ``FORGETTING_SANDBOX`` (auto, bwrap, unshare, process).
    ``_audit_hook=False`` exists only so tests can show the namespaces hold on their own.
    """
    check_limits(timeout, memory_mb)
    chosen = chosen_isolation(isolation)
    interpreter = base_interpreter()
    nonce = secrets.token_hex(16)
    nonce_line = b"pass " + nonce.encode() + b"\n"
    workdir = _make_workdir(chosen.mode)
    inside_dir = workdir or SANDBOX_DIR
    pipes = {"channel": os.pipe()}
    if chosen.mode == "bwrap":
        pipes["info"] = os.pipe()
    try:
        job = {"program": program, "tests": tests, "nonce": nonce, "channel": pipes["channel"][1],
               "limits": rlimits(chosen.mode, timeout, memory_mb), "audit": _audit_hook,
               "write_roots": [inside_dir], "read_roots": [*interpreter.roots, *READABLE_DEVICES]}
        argv = list(chosen.argv) + (["--info-fd", str(pipes["info"][1])] if "info" in pipes else [])
        child = command(argv, interpreter, "-B", "-u", "-c", BOOTSTRAP, HARNESS)
        try:
            process = subprocess.Popen(child, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, pass_fds=[w for _, w in pipes.values()],
                                       cwd=workdir or "/", env=clean_env(inside_dir),
                                       start_new_session=True)
        except OSError as error:
            return Result(False, "sandbox_error", "", "", 0.0, f"cannot start: {error}")
        for name, (read_end, write_end) in pipes.items():
            os.close(write_end)
            pipes[name] = (read_end, -1)
        with process:
            outcome = supervise(process, marshal.dumps(job), pipes["channel"][0],
                                pipes["info"][0] if "info" in pipes else None, nonce_line, timeout,
                                max_output_bytes)
    finally:
        for read_end, write_end in pipes.values():
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        _remove_workdir(workdir)
    status, detail = judge(chosen.mode, outcome, nonce_line, cpu_limit(timeout))
    return Result(status == "passed", status, outcome.stdout.text(), outcome.stderr.text(),
                  round(outcome.seconds, 4), detail, outcome.returncode)


def _make_workdir(mode: str) -> str | None:
    """A private temporary directory, or None under bwrap, whose tmpfs is the working directory."""
    return None if mode == "bwrap" else tempfile.mkdtemp(prefix="forgetting-sandbox-")


def _remove_workdir(path: str | None) -> None:
    """Remove it all, even what the program made read-only."""
    if path is None:
        return

    def make_writable_and_retry(function, failed_path, _):
        try:
            os.chmod(os.path.dirname(failed_path), 0o700)
            os.chmod(failed_path, 0o700)
            function(failed_path)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)
