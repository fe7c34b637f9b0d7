"""What the device derived from committed signals, kept in memory so that reads are cheap.

The activity window and the places are loaded from the database at open (and again when
consent is withdrawn), then fed by each commit through the store's hooks. The feature vector
over them is cached until the next commit or the next local day: callers may compare it by
identity to tell whether anything they derived from it is still current.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from ._activity import ActivityWindow
from ._localtime import Zone, day_key, hour_key
from ._place_engine import PlaceEngine
from ._store import Store
from ._types import LocalTime, Moment
from .clock import Clock
from .features import feature_vector, time_of_day

_WEEKEND = (5, 6)


class DerivedState:
    """Thread-safe: the writer thread feeds it, any thread reads."""

    def __init__(self, store: Store, clock: Clock, window_days: int) -> None:
        self._store = store
        self._clock = clock
        self._zone = store.zone
        self.activity = ActivityWindow(window_days)
        self.places = PlaceEngine(window_days)
        self._commits = 0
        self._cached_features: tuple[tuple[int, str], tuple[float, ...]] | None = None
        store.in_transaction.append(self.places.on_commit)
        store.after_commit.append(self._on_commit)

    def feature_vector(self) -> tuple[float, ...]:
        """The schema-ordered feature vector over the window; the same object until it changes."""
        now = self._clock.time()
        key = (self._commits, day_key(now + self._zone.offset(now)))
        cached = self._cached_features
        if cached is not None and cached[0] == key:
            return cached[1]
        vector = feature_vector(
            self.activity.activity(key[1]), self.places.window(now), self.places.labels()
        )
        self._cached_features = (key, vector)
        return vector

    def moment(self, now: float, recent_app_category: str | None) -> Moment:
        """Local time, place and dwell at ``now`` (``EdgePersona.context()``)."""
        local = local_time(now, self._zone)
        place, place_id, dwell = self.places.where(now)
        return Moment(
            ts=now,
            local_time=local.iso,
            hour=local.hour,
            time_of_day=time_of_day(local.hour),
            weekday=local.weekday,
            is_weekend=local.is_weekend,
            place=place,
            place_id=place_id,
            dwell_s=dwell,
            moving=place == "moving",
            recent_app_category=recent_app_category,
        )

    def correct_place(self, label: str, lat: float, lon: float, now: float) -> int:
        """Set ``home`` or ``work`` at this point, logging the correction; the place's id."""

        def write(conn: Any) -> int:
            # The coordinates live with the place (deleted with location); the log keeps the act.
            conn.execute(
                "INSERT INTO corrections (ts, kind, value) VALUES (?, 'place', ?)", (now, label)
            )
            return self.places.override(conn, lat, lon, label, now)

        place_id = self._store.write(write)
        self._commits += 1
        return place_id

    def reload(self) -> None:
        """Rebuild places and the activity window from the database (open, revoke)."""
        now = self._clock.time()
        first_hour = hour_key(now + self._zone.offset(now) - self.activity.window_days * 86400)

        def load(db: Any) -> list[Any]:
            self.places.load(db.conn, now)
            return db.execute(
                "SELECT hour, kind, key, n, seconds, value FROM rollup_hourly WHERE hour >= ?",
                (first_hour,),
            ).fetchall()

        rows = self._store.read(load)
        self.activity.clear()
        self.activity.add(rows)
        self._commits += 1

    def clear(self) -> None:
        """Forget everything (the store was erased)."""
        self.activity.clear()
        self.places.reset()

    def _on_commit(self, hourly: dict[tuple[str, str, str], list[float]]) -> None:
        self.activity.add((*key, *values) for key, values in hourly.items())  # type: ignore[misc]
        self._commits += 1


def local_time(ts: float, zone: Zone) -> LocalTime:
    """``ts`` in ``zone``, with the zone's name (or the system's abbreviation)."""
    offset = zone.offset(ts)
    local = datetime.fromtimestamp(ts, timezone(timedelta(seconds=offset)))
    return LocalTime(
        ts=ts,
        zone=zone.name or time.tzname[0],
        utc_offset_s=offset,
        iso=local.isoformat(),
        hour=local.hour,
        minute=local.minute,
        weekday=local.weekday(),
        is_weekend=local.weekday() in _WEEKEND,
    )
