"""Validators for every signal argument: pure functions that return a clean value or raise.

They run on the app's thread inside every ``track_*`` call, so each is a few comparisons;
the messages say what was wrong and what is accepted.
"""

from __future__ import annotations

import math
import re

from .errors import InvalidSignalError

EARLIEST_TS = 946_684_800.0  # 2000-01-01T00:00:00Z: no phone signal we accept predates it
MAX_FUTURE_S = 86_400.0  # a device clock may run ahead, but not by more than a day
LATEST_CALENDAR_TS = 253_370_764_800.0  # 9998-12-31T00:00:00Z: local dates stay in datetime's
MAX_DAYS = 36_600  # a century: any report over more days is a caller's mistake
MAX_ACCURACY_M = 50_000.0  # coarser than 50 km is not a position fix
MAX_SPEED_MPS = 350.0  # faster than an airliner is a sensor glitch
MAX_DURATION_S = 86_400.0
MAX_NAME_LEN = 64
MAX_APP_LEN = 255
MAX_ABS_VALUE = 1e12

_NAME_RE = re.compile(r"[A-Za-z0-9_.:/\- ]+")
_APP_RE = re.compile(r"[A-Za-z0-9_.\-]+")


def _number(field: str, value: object) -> float:
    # bool is an int subclass; True as a latitude is a bug in the caller, not 1.0 degrees.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSignalError(
            field, f"expected a number, got {type(value).__name__} {value!r:.40}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise InvalidSignalError(
            field, "expected a finite number, got an int past the float range"
        ) from None
    if math.isnan(number) or math.isinf(number):
        raise InvalidSignalError(field, f"expected a finite number, got {number}")
    return number


def timestamp(value: object, now: float) -> float:
    """Unix seconds, not before 2000-01-01 and at most a day after ``now``."""
    if type(value) is float and EARLIEST_TS <= value <= now + MAX_FUTURE_S:
        return value  # the common case, decided in two comparisons (NaN fails them)
    ts = _number("ts", value)
    if ts < EARLIEST_TS:
        raise InvalidSignalError(
            "ts", f"{ts} is before 2000-01-01; accepted: Unix seconds from 2000 to a day ahead"
        )
    if ts > now + MAX_FUTURE_S:
        hint = " (milliseconds? divide by 1000)" if ts > 1e11 else ""
        raise InvalidSignalError(
            "ts",
            f"{ts} is more than a day after the device clock ({now:.0f}){hint}; "
            "accepted: Unix seconds from 2000 to a day ahead",
        )
    return ts


def calendar_time(value: object) -> float:
    """Unix seconds that a local date can be computed for, whatever the device clock says."""
    ts = _number("ts", value)
    if not EARLIEST_TS <= ts <= LATEST_CALENDAR_TS:
        raise InvalidSignalError(
            "ts", f"{ts} is outside the calendar; accepted: Unix seconds from 2000 to year 9998"
        )
    return ts


def days(value: object) -> int:
    """A whole number of days for a report, from 1 to a century."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSignalError("days", f"expected a whole number, got {type(value).__name__}")
    if not 1 <= value <= MAX_DAYS:
        raise InvalidSignalError("days", f"{value} is outside 1..{MAX_DAYS}")
    return value


def latitude(value: object) -> float:
    if type(value) is float and -90.0 <= value <= 90.0:
        return value
    lat = _number("lat", value)
    if not -90.0 <= lat <= 90.0:
        raise InvalidSignalError("lat", f"{lat} is outside -90..90; accepted: -90 to 90 degrees")
    return lat


def longitude(value: object) -> float:
    if type(value) is float and -180.0 <= value <= 180.0:
        return value
    lon = _number("lon", value)
    if not -180.0 <= lon <= 180.0:
        raise InvalidSignalError("lon", f"{lon} is outside; accepted: -180 to 180 degrees")
    return lon


def accuracy(value: object) -> float | None:
    if value is None or (type(value) is float and 0.0 < value <= MAX_ACCURACY_M):
        return value
    acc = _number("accuracy_m", value)
    if not 0.0 < acc <= MAX_ACCURACY_M:
        raise InvalidSignalError(
            "accuracy_m", f"{acc} m is not a plausible accuracy; accepted: above 0 up to 50000 m"
        )
    return acc


def speed(value: object) -> float | None:
    if value is None or (type(value) is float and 0.0 <= value <= MAX_SPEED_MPS):
        return value
    mps = _number("speed_mps", value)
    if not 0.0 <= mps <= MAX_SPEED_MPS:
        raise InvalidSignalError(
            "speed_mps", f"{mps} m/s is not plausible; accepted: 0 to 350 m/s, or None if unknown"
        )
    return mps


def duration(value: object) -> float | None:
    if value is None or (type(value) is float and 0.0 <= value <= MAX_DURATION_S):
        return value
    seconds = _number("duration_s", value)
    if not 0.0 <= seconds <= MAX_DURATION_S:
        raise InvalidSignalError(
            "duration_s", f"{seconds} s is out of range; accepted: 0 to 86400 s, or None"
        )
    return seconds


def value(raw: object) -> float | None:
    if raw is None or (type(raw) is float and -MAX_ABS_VALUE <= raw <= MAX_ABS_VALUE):
        return raw
    number = _number("value", raw)
    if abs(number) > MAX_ABS_VALUE:
        raise InvalidSignalError("value", f"{number} is too large; accepted: -1e12 to 1e12")
    return number


# Strings that passed a check already: names and app ids repeat all day, the regex need not.
_CHECKED_NAMES: set[str] = set()
_CHECKED_APPS: set[str] = set()
_CHECKED_MAX = 4096


def name(field: str, raw: object) -> str:
    """A screen or event name: 1-64 characters of letters, digits, space and ``_.:/-``."""
    if type(raw) is str and raw in _CHECKED_NAMES:
        return raw
    if not isinstance(raw, str):
        raise InvalidSignalError(field, f"expected a string, got {type(raw).__name__}")
    if not raw or len(raw) > MAX_NAME_LEN:
        raise InvalidSignalError(field, f"expected 1 to {MAX_NAME_LEN} characters, got {len(raw)}")
    if not _NAME_RE.fullmatch(raw):
        raise InvalidSignalError(
            field, f"{raw!r} has other characters; accepted: letters, digits, space and _ . : / -"
        )
    if len(_CHECKED_NAMES) < _CHECKED_MAX:
        _CHECKED_NAMES.add(raw)
    return raw


def app_id(raw: object) -> str:
    """An app package id such as ``com.whatsapp``: 1-255 letters, digits and ``_.-``."""
    if type(raw) is str and raw in _CHECKED_APPS:
        return raw
    if not isinstance(raw, str):
        raise InvalidSignalError("app", f"expected a package id string, got {type(raw).__name__}")
    if not raw or len(raw) > MAX_APP_LEN:
        raise InvalidSignalError("app", f"expected 1 to {MAX_APP_LEN} characters, got {len(raw)}")
    if not _APP_RE.fullmatch(raw):
        raise InvalidSignalError(
            "app", f"{raw!r:.80} is not a package id; accepted: letters, digits and _ . -"
        )
    if len(_CHECKED_APPS) < _CHECKED_MAX:
        _CHECKED_APPS.add(raw)
    return raw
