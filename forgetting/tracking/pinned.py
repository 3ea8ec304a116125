"""Registry lookups pinned for the length of a stage.

Inside ``resolved_once`` the first answer to a lookup of a model spec (its local directory, its registered
version) is the answer for the rest of the block: one registry round trip per ``models:/`` spec, and an
alias moved by someone else meanwhile does not change what the rest of the stage reads, so its checks,
cache key, lineage and body all see one checkpoint.
"""
from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar
from typing import Callable, TypeVar

T = TypeVar("T")
_PINNED: ContextVar[dict | None] = ContextVar("pinned_lookups", default=None)


@contextlib.contextmanager
def resolved_once():
    token = _PINNED.set({}) if _PINNED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _PINNED.reset(token)


def each_spec_resolved_once(stage):
    """``stage`` run inside ``resolved_once``."""
    @functools.wraps(stage)
    def wrapper(*args, **kwargs):
        with resolved_once():
            return stage(*args, **kwargs)
    return wrapper


def pinned(kind: str, spec: str, lookup: Callable[[], T]) -> T:
    """``lookup()``; inside ``resolved_once``, the first answer for (``kind``, ``spec``)."""
    memo = _PINNED.get()
    if memo is None:
        return lookup()
    if (kind, spec) not in memo:
        memo[kind, spec] = lookup()
    return memo[kind, spec]
