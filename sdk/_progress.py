"""A small progress bar for long CLI work, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update(done)`` redraws at most ten times a second; ``close()`` ends the line."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = total
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self._started
        if self._total:
            share = min(done / self._total, 1.0)
            bar = "#" * int(share * 30)
            text = f"\r{self._label} [{bar:<30}] {share:4.0%} {elapsed:5.1f}s"
        else:
            text = f"\r{self._label} {done:,} {elapsed:5.1f}s"
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._last:
            self._stream.write("\n")
            self._stream.flush()
