"""Folding raw signals into hourly and daily rollups: pure functions, no I/O.

Rollups are what features read (never raw rows), and they outlive the raw rows, so they are
maintained at insert time: a batch folds into per-(local hour, kind, key) sums that the store
adds to its tables. A foreground duration that crosses an hour boundary is split so that
time-of-day shares stay right; its count goes to the hour it started in.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from ._localtime import hour_key

OTHER_KEY = "(other)"


# (local_ts, key, seconds, value) of one raw row, local_ts being UTC seconds plus its offset
Folded = tuple[float, str, float, float]
Sums = dict[tuple[str, str, str], list[float]]  # (hour or day, kind, key) -> [n, seconds, value]


def fold(kind: str, rows: Iterable[Folded], into: dict[tuple[int, str, str], list[float]]) -> None:
    """Add ``rows`` of ``kind`` to ``into``, keyed by (local hour number, kind, key).

    Hours stay integers here (this runs once per signal); ``named`` turns them into
    ``YYYY-MM-DDTHH`` once per distinct hour.
    """
    for local_ts, key, seconds, value in rows:
        slot = int(local_ts // 3600)
        sums = into.get((slot, kind, key))
        if sums is None:
            sums = into[(slot, kind, key)] = [0, 0.0, 0.0]
        sums[0] += 1
        sums[2] += value
        if seconds <= 0:
            continue
        in_hour = min(seconds, (slot + 1) * 3600 - local_ts)
        sums[1] += in_hour
        remaining = seconds - in_hour
        while remaining > 0:
            slot += 1
            in_hour = min(remaining, 3600.0)
            later = into.get((slot, kind, key))
            if later is None:
                later = into[(slot, kind, key)] = [0, 0.0, 0.0]
            later[1] += in_hour
            remaining -= in_hour


def fold_counts(
    kind: str, key: str, local_times: Iterable[float], into: dict[tuple[int, str, str], list[float]]
) -> None:
    """``fold`` for rows that only count (no seconds, no value), such as location fixes.

    Equal to folding ``(local_ts, key, 0.0, 0.0)`` rows; it counts runs of rows in one hour
    first, since fixes arrive in time order and most of a batch's rows share their hour.
    """
    run_slot: int | None = None
    run = 0
    for local_ts in local_times:
        slot = int(local_ts // 3600)
        if slot == run_slot:
            run += 1
            continue
        if run_slot is not None:
            _add_count(into, (run_slot, kind, key), run)
        run_slot, run = slot, 1
    if run_slot is not None:
        _add_count(into, (run_slot, kind, key), run)


def _add_count(
    into: dict[tuple[int, str, str], list[float]], at: tuple[int, str, str], n: int
) -> None:
    sums = into.get(at)
    if sums is None:
        into[at] = [n, 0.0, 0.0]
    else:
        sums[0] += n


def named(hourly: dict[tuple[int, str, str], list[float]]) -> Sums:
    """Hour numbers to ``YYYY-MM-DDTHH`` keys."""
    names: dict[int, str] = {}
    out: Sums = {}
    for (slot, kind, key), sums in hourly.items():
        hour = names.get(slot)
        if hour is None:
            hour = names[slot] = hour_key(slot * 3600)
        out[(hour, kind, key)] = sums
    return out


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
    ``hourly`` itself is returned (not copied) when no key goes over the cap, the usual case.
    """
    capped: Sums | None = None
    for at, ((hour, kind, key), sums) in enumerate(hourly.items()):
        seen = known.get((hour[:10], kind))
        if seen is None:
            seen = known[(hour[:10], kind)] = set()
        if key not in seen:
            if len(seen) < cap:
                seen.add(key)
            else:
                key = OTHER_KEY
                seen.add(key)
                if capped is None:  # the first capped key: copy what came before it
                    capped = {k: list(v) for k, v in itertools.islice(hourly.items(), at)}
        if capped is None:
            continue
        target = capped.get((hour, kind, key))
        if target is None:
            capped[(hour, kind, key)] = list(sums)
        else:
            for i in range(3):
                target[i] += sums[i]
    return hourly if capped is None else capped
