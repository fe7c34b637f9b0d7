"""Local wall-clock time for signals: the user's day is lived in local time, stored in UTC.

A signal keeps its UTC timestamp plus the UTC offset that applied where it was recorded, so
time-of-day features stay right across travel and daylight-saving changes. Offsets are cached
per 15-minute slot of UTC: every zone's transitions fall on such boundaries, and a signal then
costs one dict lookup instead of a tz database query.
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
        self._cache: dict[int, int] = {}

    def offset(self, ts: float) -> int:
        """Seconds east of UTC in force at ``ts``."""
        slot = int(ts // _SLOT_S)
        cached = self._cache.get(slot)
        if cached is None:
            cached = self._compute(slot * _SLOT_S)
            if len(self._cache) > 50_000:  # bounded: a long replay sweeps through many slots
                self._cache.clear()
            self._cache[slot] = cached
        return cached

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
