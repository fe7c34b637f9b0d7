"""Foreground streams: turning "app X is in front now" calls into rows with durations.

Hosts report what came to the foreground, rarely how long it stayed. A row stays open until
the next row of the same stream arrives, then gets the time between them, capped so that a
phone left on a table does not count as hours of use. The open row lives only in memory
until it is closed: it is what a crash can lose beyond the store's buffer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._localtime import Zone


class ClosedRow(NamedTuple):
    ts: float
    zone: Zone
    fields: tuple[Any, ...]  # the stream's fields followed by duration_s


class _Open(NamedTuple):
    ts: float
    zone: Zone
    fields: tuple[Any, ...]


class ForegroundStream:
    """One stream (apps, or the host's screens); not thread-safe: the caller holds a lock."""

    def __init__(self, cap_s: float) -> None:
        self._cap_s = cap_s
        self._open: _Open | None = None

    def push(
        self, ts: float, zone: Zone, fields: tuple[Any, ...], duration_s: float | None
    ) -> list[ClosedRow] | None:
        """Rows closed by this signal, oldest first; ``None`` if it repeats the open row."""
        current = self._open
        if current is not None and current.ts == ts and current.fields == fields:
            return None
        closed = [] if current is None else [self._close(current, ts)]
        if duration_s is None:
            self._open = _Open(ts, zone, fields)
        else:
            self._open = None
            closed.append(ClosedRow(ts, zone, (*fields, min(duration_s, self._cap_s))))
        return closed

    def close_at(self, now: float) -> list[ClosedRow]:
        """Close the open row at ``now`` (the app is closing); empty if none is open."""
        current, self._open = self._open, None
        return [] if current is None else [self._close(current, now)]

    def discard(self) -> None:
        self._open = None

    def _close(self, row: _Open, end: float) -> ClosedRow:
        # A successor that is older than the open row (out-of-order input) gives no duration.
        duration = min(end - row.ts, self._cap_s) if end >= row.ts else None
        return ClosedRow(row.ts, row.zone, (*row.fields, duration))
