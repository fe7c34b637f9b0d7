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


_Open = tuple[float, Zone, tuple[Any, ...]]  # ts, zone, fields of the row still open


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
        if current is None:
            closed = []
        elif current[0] == ts and current[2] == fields:
            return None
        else:
            closed = [self._close(current, ts)]
        if duration_s is None:
            self._open = (ts, zone, fields)
        else:
            self._open = None
            cap = self._cap_s
            closed.append(ClosedRow(ts, zone, (*fields, duration_s if duration_s < cap else cap)))
        return closed

    def close_at(self, now: float) -> list[ClosedRow]:
        """Close the open row at ``now`` (the app is closing); empty if none is open."""
        current, self._open = self._open, None
        return [] if current is None else [self._close(current, now)]

    def discard(self) -> None:
        self._open = None

    def _close(self, row: _Open, end: float) -> ClosedRow:
        # A successor that is older than the open row (out-of-order input) gives no duration.
        start, zone, fields = row
        if end < start:
            return ClosedRow(start, zone, (*fields, None))
        duration = end - start
        return ClosedRow(
            start, zone, (*fields, duration if duration < self._cap_s else self._cap_s)
        )


class SessionTracker:
    """Groups closed app rows into sessions: a gap over ``gap_s`` starts a new one."""

    def __init__(self, gap_s: float = 300.0) -> None:
        self._gap_s = gap_s
        self._open: tuple[float, float, Zone] | None = None  # start, end, zone

    def add(self, row: ClosedRow) -> ClosedRow | None:
        """The session this row ended, as a ``("all", duration_s)`` row, if any."""
        end = row.ts + (row.fields[-1] or 0.0)
        current = self._open
        if current is None:
            self._open = (row.ts, end, row.zone)
            return None
        start, current_end, zone = current
        if start <= row.ts <= current_end + self._gap_s:
            self._open = (start, end if end > current_end else current_end, zone)
            return None
        self._open = (row.ts, end, row.zone)
        return ClosedRow(start, zone, ("all", current_end - start))

    def close(self) -> list[ClosedRow]:
        current, self._open = self._open, None
        if current is None:
            return []
        start, end, zone = current
        return [ClosedRow(start, zone, ("all", end - start))]

    def discard(self) -> None:
        self._open = None
