"""Local wall-clock time for signals: the user's day is lived in local time, stored in UTC.

A signal keeps its UTC timestamp plus the UTC offset that applied where it was recorded, so
time-of-day features stay right across travel and daylight-saving changes. Offsets are cached
per UTC day, and per 15-minute slot on the rare days with a transition (every zone's
transitions fall on such boundaries), so a signal costs a dict lookup, not a tz query.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidSignalError

_SLOT_S = 900
_FIXED_RE = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?")


class Zone:
    """A time zone: an IANA name, ``UTC``, a fixed offset like ``+05:30``, or the system's."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.tzinfo = None if name is None else _parse_zone(name)
        # UTC day -> its offset, or None when a transition falls inside that day.
        self._days: dict[int, int | None] = {}
        self._slots: dict[int, int] = {}  # 15-minute slot -> offset, on transition days only

    def offset(self, ts: float) -> int:
        """Seconds east of UTC in force at ``ts``."""
        return self.span(ts)[0]

    def span(self, ts: float) -> tuple[int, float, float]:
        """(offset at ``ts``, start, end) of an interval around ``ts`` with that offset.

        A whole UTC day when no transition falls in it (all but a couple of days a year),
        else the 15-minute slot: callers keep the offset while ``start <= ts < end``.
        """
        day = int(ts // 86400)
        if day not in self._days:
            if len(self._days) > 20_000:  # bounded: a long replay sweeps through many days
                self._days.clear()
                self._slots.clear()
            first, last = self._compute(day * 86400), self._compute(day * 86400 + 86399)
            self._days[day] = first if first == last else None
        whole_day = self._days[day]
        if whole_day is not None:
            return whole_day, day * 86400.0, (day + 1) * 86400.0
        slot = int(ts // _SLOT_S)
        cached = self._slots.get(slot)
        if cached is None:
            cached = self._slots[slot] = self._compute(slot * _SLOT_S)
        return cached, slot * float(_SLOT_S), (slot + 1) * float(_SLOT_S)

    def _compute(self, ts: float) -> int:
        if self.tzinfo is None:
            return time.localtime(ts).tm_gmtoff
        delta = datetime.fromtimestamp(ts, self.tzinfo).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0


def _parse_zone(name: str) -> tzinfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidSignalError(
            "tz", f"expected an IANA zone name such as 'Europe/Paris', got {name!r:.70}"
        )
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    fixed = _FIXED_RE.fullmatch(name)
    if fixed:
        sign, hours, minutes = fixed.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise InvalidSignalError("tz", f"{name!r} is too far; accepted: -14:00 to +14:00")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSignalError(
            "tz",
            f"{name!r} is not a known zone; accepted: IANA names like 'Europe/Paris', "
            "'UTC' or an offset like '+05:30'",
        ) from exc


@lru_cache(maxsize=256)
def zone(name: str | None) -> Zone:
    """The shared, cached ``Zone`` for a name (``None``: the system's zone)."""
    return Zone(name)


def hour_key(local_ts: float) -> str:
    """``YYYY-MM-DDTHH`` of a local timestamp (UTC seconds plus offset)."""
    return time.strftime("%Y-%m-%dT%H", time.gmtime(local_ts))


def day_key(local_ts: float) -> str:
    """``YYYY-MM-DD`` of a local timestamp (UTC seconds plus offset)."""
    return time.strftime("%Y-%m-%d", time.gmtime(local_ts))
