"""Bounded capture of what a child writes: stream tails, and the harness's report channel."""
from __future__ import annotations

from typing import Iterable

TAIL_BYTES = 64 * 1024
STARTED_LINE = b"started\n"


class Tail:
    """Keeps the last ``keep`` bytes of a stream and counts all of them."""

    def __init__(self, keep: int = TAIL_BYTES):
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[: len(self.data) - self.keep]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class ReportChannel(Tail):
    """The harness's report stream; watches for marker lines across chunk boundaries."""

    def __init__(self, markers: Iterable[bytes]):
        super().__init__(keep=16 * 1024)
        self.markers = tuple(markers)
        self.seen: set[bytes] = set()
        self._carry = b""
        self._overlap = max(len(m) for m in self.markers) - 1

    def feed(self, chunk: bytes) -> None:
        super().feed(chunk)
        window = self._carry + chunk
        self.seen.update(m for m in self.markers if m in window)
        self._carry = window[-self._overlap:]

    def last_status(self) -> tuple[str, str] | None:
        """``(kind, detail)`` of the last ``status`` line the harness wrote, if any."""
        for line in reversed(self.data.split(b"\n")):
            if line.startswith(b"status "):
                kind, _, detail = line[7:].decode("utf-8", "replace").partition(" ")
                return kind, detail.strip()
        return None
