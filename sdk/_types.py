"""Small value types the public API returns."""

from __future__ import annotations

from typing import NamedTuple


class LocalTime(NamedTuple):
    """A moment in the user's local time; time-of-day features are computed from these."""

    ts: float  # Unix seconds, UTC
    zone: str  # the zone's name as given, or the system's abbreviation
    utc_offset_s: int
    iso: str  # ISO-8601 with offset
    hour: int
    minute: int
    weekday: int  # 0 = Monday
    is_weekend: bool
