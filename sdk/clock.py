"""Clocks: the SDK's only source of "now", injected so tests never sleep."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Anything with ``time()`` returning Unix seconds (UTC) as a float."""

    def time(self) -> float: ...


class SystemClock:
    """The wall clock."""

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, start: float) -> None:
        self._now = float(start)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward; got a negative step")
        self._now += seconds

    def set(self, now: float) -> None:
        """Jump to ``now`` if it is later than the current time; earlier values are ignored."""
        if now > self._now:
            self._now = float(now)
