"""Which isolation programs run under, chosen by ``FORGETTING_SANDBOX`` or ``isolation=``.

``auto`` takes the first of bwrap, unshare and a plain process that actually runs here: each
candidate is proven by running a trivial program the way real ones run, once per process.
Naming ``bwrap`` or ``unshare`` refuses to fall back (:class:`SandboxUnavailable`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from forgetting.errors import UsageError, check_choice
from forgetting.rewards.sandbox.interpreter import Interpreter, base_interpreter, clean_env, command

ENV_VAR = "FORGETTING_SANDBOX"
SETTINGS = ("auto", "bwrap", "unshare", "process")
SANDBOX_DIR = "/sandbox"
TMPFS_BYTES = 64 * 1024 * 1024


class SandboxUnavailable(UsageError):
    """The isolation that ``FORGETTING_SANDBOX`` (or ``isolation=``) requires cannot run here."""


@dataclass(frozen=True)
class Isolation:
    """``argv`` is the wrapper that the interpreter's command line goes after (empty for a
    plain process)."""

    mode: str
    argv: tuple[str, ...]
    description: str


def isolation_mode(isolation: str | None = None) -> str:
    """``bwrap``, ``unshare`` or ``process``: what programs run under with this setting."""
    return chosen_isolation(isolation).mode


def active_isolation(isolation: str | None = None) -> str:
    """One line describing the isolation that programs run under with this setting."""
    return chosen_isolation(isolation).description


def chosen_isolation(isolation: str | None) -> Isolation:
    """The isolation for ``isolation`` or, when it is None, for ``FORGETTING_SANDBOX``."""
    return _resolve(_setting(isolation))


def _setting(isolation: str | None) -> str:
    setting = (isolation or os.environ.get(ENV_VAR) or "auto").strip().lower()
    check_choice(ENV_VAR if isolation is None else "isolation", setting, SETTINGS)
    return setting


@lru_cache(maxsize=None)
def _resolve(setting: str) -> Isolation:
    if setting == "process":
        return _plain_process()
    interpreter = base_interpreter()
    reasons = []
    for mode, attempt in (("bwrap", _try_bwrap), ("unshare", _try_unshare)):
        if setting in ("auto", mode):
            isolation, why = attempt(interpreter)
            if isolation is not None:
                return isolation
            reasons.append(why)
    if setting == "auto":
        return _plain_process()
    raise SandboxUnavailable(f"{ENV_VAR}={setting} but {'; '.join(reasons)}")


def _try_bwrap(interpreter: Interpreter) -> tuple[Isolation | None, str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    why = ""
    for hardened in (True, False):
        argv = _bwrap_argv(bwrap, interpreter, hardened)
        why = _probe(argv, interpreter) or ""
        if not why:
            extra = ", nested user namespaces disabled, capabilities dropped" if hardened else ""
            return Isolation("bwrap", argv, (
                "bwrap: new user/pid/network/ipc/uts/mount namespaces" + extra + "; no network; "
                "interpreter and system libraries read-only; private tmpfs working directory; "
                "empty environment; rlimits; audit hook")), ""
    return None, f"bwrap does not run here: {why}"


def _bwrap_argv(bwrap: str, interpreter: Interpreter, hardened: bool) -> tuple[str, ...]:
    # --as-pid-1: without it bwrap's monitor exits before reaping its pid-1 reaper, leaving
    # one zombie per run for the container's init (which may never reap it).
    argv = [bwrap, "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in clean_env(SANDBOX_DIR).items():
        argv += ["--setenv", key, value]
    if hardened:
        argv += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    argv += _system_library_args()
    for root in interpreter.roots:
        if not (root == "/usr/lib" or root.startswith("/usr/lib/")):
            argv += ["--ro-bind", root, root]
    argv += ["--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", SANDBOX_DIR,
             "--chdir", SANDBOX_DIR, "--remount-ro", "/"]
    return tuple(argv)


def _system_library_args() -> list[str]:
    args: list[str] = []
    for path in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32"):
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    for path in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _try_unshare(interpreter: Interpreter) -> tuple[Isolation | None, str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "unshare (util-linux) is not installed"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    why = ""
    for flags in (["--net", "--pid", "--fork", "--kill-child"], ["--net"]):
        argv = tuple([unshare, *user, *flags])
        why = _probe(argv, interpreter) or ""
        if not why:
            spaces = "network and pid namespaces" if "--pid" in flags else "network namespace"
            return Isolation("unshare", argv, (
                f"unshare: new {spaces}{' in a user namespace' if user else ''}; no network; "
                "shared filesystem guarded only by the audit hook; private temporary working "
                "directory; empty environment; rlimits; audit hook")), ""
    return None, f"unshare does not run here: {why}"


def _plain_process() -> Isolation:
    return Isolation("process", (), (
        "process: separate process and session, private temporary working directory, empty "
        "environment, rlimits; network, signals and files outside the working directory are "
        "guarded only by an in-process audit hook, which is not isolation"))


def _probe(argv: tuple[str, ...], interpreter: Interpreter) -> str | None:
    """Run a trivial program the way real ones run; return why it failed, or None."""
    probe = command(argv, interpreter, "-c", "print('ok')")
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30,
                              env=clean_env("/"), cwd="/", start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode == 0 and done.stdout.strip() == "ok":
        return None
    return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
