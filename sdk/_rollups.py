"""Folding raw signals into hourly and daily rollups: pure functions, no I/O.

Rollups are what features read (never raw rows), and they outlive the raw rows, so they are
maintained at insert time: a batch folds into per-(local hour, kind, key) sums that the store
adds to its tables. A foreground duration that crosses an hour boundary is split so that
time-of-day shares stay right; its count goes to the hour it started in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ._localtime import hour_key

OTHER_KEY = "(other)"


class Folded(NamedTuple):
    kind: str
    local_ts: float
    key: str
    seconds: float
    value: float


Sums = dict[tuple[str, str, str], list[float]]  # (hour or day, kind, key) -> [n, seconds, value]


def fold(rows: Iterable[Folded]) -> Sums:
    """Hourly sums of ``rows``, keyed by local hour ``YYYY-MM-DDTHH``."""
    hourly: Sums = {}
    hour_names: dict[int, str] = {}
    for kind, local_ts, key, seconds, value in rows:
        start = local_ts
        remaining = seconds
        first = True
        while True:
            slot = int(start // 3600)
            hour = hour_names.get(slot)
            if hour is None:
                hour = hour_names[slot] = hour_key(slot * 3600)
            in_hour = min(remaining, (slot + 1) * 3600 - start)
            sums = hourly.get((hour, kind, key))
            if sums is None:
                sums = hourly[(hour, kind, key)] = [0, 0.0, 0.0]
            if first:
                sums[0] += 1
                sums[2] += value
                first = False
            sums[1] += in_hour
            remaining -= in_hour
            if remaining <= 0:
                break
            start = (slot + 1) * 3600
    return hourly


def days_of(hourly: Sums) -> Sums:
    """Daily sums from hourly ones; a day is the first 10 characters of its hours' keys."""
    daily: Sums = {}
    for (hour, kind, key), (n, seconds, value) in hourly.items():
        sums = daily.get((hour[:10], kind, key))
        if sums is None:
            daily[(hour[:10], kind, key)] = [n, seconds, value]
        else:
            sums[0] += n
            sums[1] += seconds
            sums[2] += value
    return daily


def cap_keys(hourly: Sums, known: dict[tuple[str, str], set[str]], cap: int) -> Sums:
    """Merge keys beyond ``cap`` distinct ones per (day, kind) into ``(other)``.

    ``known`` holds the keys already stored per (day, kind) and is updated in place. This is
    what keeps the rollups bounded when an app invents a new event name for every call.
    """
    capped: Sums = {}
    for (hour, kind, key), sums in hourly.items():
        seen = known.setdefault((hour[:10], kind), set())
        if key not in seen:
            if len(seen) < cap:
                seen.add(key)
            else:
                key = OTHER_KEY
                seen.add(key)
        target = capped.get((hour, kind, key))
        if target is None:
            capped[(hour, kind, key)] = list(sums)
        else:
            for i in range(3):
                target[i] += sums[i]
    return capped
