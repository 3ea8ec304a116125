"""Name -> plug-in registries with lazy imports.

Each kind of plug-in (task, pruning criterion, post-training method, reward, evaluation suite,
attribution method) has one ``Registry``. An entry is either the object itself or a
``"package.module:attribute"`` string imported on first use, so listing the names never imports
heavy dependencies and adding a method is one file plus one ``register`` line.
"""
from __future__ import annotations

import importlib
from typing import Any, Iterator

from forgetting.errors import UsageError


def load(path: str) -> Any:
    """The attribute a ``"package.module:attribute"`` string names, its module imported now."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, target: Any = None):
        """Register ``target`` under ``name``; without ``target``, return a decorator."""
        if target is None:
            return lambda obj: self.register(name, obj) or obj
        if name in self._entries:
            raise KeyError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = target
        return target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's throwaway plug-in)."""
        del self._entries[name]

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise UsageError(f"{self.kind}={name!r} is not one of: {', '.join(self.names())}")
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = load(entry)
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def names_where(self, predicate) -> list[str]:
        """The names, in registration order, whose entry satisfies ``predicate`` (a spec's flag, say)."""
        return [name for name in self._entries if predicate(self.get(name))]

    def in_registration_order(self) -> list[str]:
        """The names as registered: the order a stage runs ``all`` of them in, so what it logs per pair
        of them keeps its names."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
