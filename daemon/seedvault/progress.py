"""Progress on a terminal: one line on stderr, redrawn at most five times a second.

Shown only when stderr is a TTY (``TerminalProgress.maybe``); logs and data stay clean in pipes
and under service managers.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class TerminalProgress:
    """Files done / total, bytes, rate and ETA for a capture, export or verify."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.files = 0
        self.files_total = 0
        self.bytes = 0
        self.bytes_total: int | None = None
        self.started = time.monotonic()
        self._drawn = 0.0

    @classmethod
    def maybe(cls, label: str, stream: TextIO | None = None) -> TerminalProgress | None:
        out = stream or sys.stderr
        return cls(label, out) if out.isatty() else None

    def start(self, files: int, total_bytes: int | None) -> None:
        self.files_total, self.bytes_total = files, total_bytes
        self._draw(force=True)

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes
        self._draw()

    def file_done(self, path: str) -> None:
        self.files += 1
        self._draw()

    def set(self, files: int, files_total: int, nbytes: int) -> None:
        self.files, self.files_total, self.bytes = files, files_total, nbytes
        self._draw()

    def close(self) -> None:
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.2:
            return
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.bytes / elapsed
        total = f" / {human_bytes(self.bytes_total)}" if self.bytes_total else ""
        eta = ""
        if self.bytes_total and rate > 0 and self.bytes < self.bytes_total:
            left = int((self.bytes_total - self.bytes) / rate)
            eta = f"  ETA {left // 60}:{left % 60:02d}"
        line = (
            f"\r{self.label}: files {self.files}/{self.files_total}  "
            f"{human_bytes(self.bytes)}{total}  {human_bytes(rate)}/s{eta}"
        )
        self.stream.write(line.ljust(78))
        self.stream.flush()
