"""The interpreter that sandboxed programs run in, and the command line that starts it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable


@dataclass(frozen=True)
class Interpreter:
    executable: str
    roots: tuple[str, ...]


@lru_cache(maxsize=None)
def base_interpreter() -> Interpreter:
    """The base interpreter (not a venv shim) and the directories its stdlib lives in."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    probe = "import json,sys;print(json.dumps([sys.base_prefix, sys.base_exec_prefix] + sys.path))"
    out = subprocess.run([executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                         timeout=60, env=clean_env("/"), check=True).stdout
    paths = [os.path.realpath(p) for p in json.loads(out) if p and os.path.isdir(p)]
    paths.append(os.path.dirname(executable))
    return Interpreter(executable, _outermost(paths))


def _outermost(paths: Iterable[str]) -> tuple[str, ...]:
    roots: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
            roots.append(path)
    return tuple(roots)


def clean_env(workdir: str) -> dict[str, str]:
    """Nothing inherited: no tracking URI, no tokens, no PYTHONPATH."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
            "MALLOC_ARENA_MAX": "2"}


def command(wrapper: Iterable[str], interpreter: Interpreter, *python_args: str) -> list[str]:
    """``wrapper -- python -I -S python_args``, or the interpreter alone for an empty wrapper."""
    wrapper = list(wrapper)
    prefix = [*wrapper, "--"] if wrapper else []
    return [*prefix, interpreter.executable, "-I", "-S", *python_args]
