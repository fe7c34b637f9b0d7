"""Places on the device: the stay detector and place index fed by each commit.

Fixes reach the detector in the writer thread, inside the transaction that stores them, so
stays and places are committed together with the fixes they came from; the app's thread
reads the current place from memory. After a restart, the detector replays the raw fixes
since the last stored stay, so a stay in progress survives.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from ._places import Fix, PlaceIndex, Stay, StayDetector
from .features import StaySpan

RECENT_FIX_S = 1800.0  # without a fix for this long, where the user is is "unknown"
# trackintel's 15-minute gap rule suits dense tracking logs; a phone sampling sparsely while
# still (the "responsive" and "low_power" policies, Android's distance filter) sends no fix
# for long stretches precisely because the user did not move, so only a long silence means
# the dwell is unknown.
GAP_THRESHOLD_S = 3 * 3600.0


_new = tuple.__new__


def _detector() -> StayDetector:
    return StayDetector(gap_threshold_s=GAP_THRESHOLD_S)


class PlaceEngine:
    """Thread-safe: the writer thread feeds it, any thread reads."""

    def __init__(self, window_days: int) -> None:
        self._window_s = window_days * 86400.0
        self._lock = threading.Lock()
        self._detector = _detector()
        self._index = PlaceIndex()
        self._stays: deque[StaySpan] = deque()
        self._labels: dict[int, str] | None = None
        self._last_fix: float | None = None

    # -- loading and feeding --------------------------------------------------------------

    def load(self, conn: sqlite3.Connection, now: float) -> None:
        """Rebuild from the database: places, recent stays, and the detector's open stay."""
        rows = conn.execute(
            "SELECT id, lat, lon, visits, dwell_s, night_s, workday_s, label_override FROM places"
        ).fetchall()
        columns = ("id", "lat", "lon", "visits", "dwell_s", "night_s", "workday_s", "override")
        index = PlaceIndex.from_rows([dict(zip(columns, row, strict=True)) for row in rows])
        stays = conn.execute(
            "SELECT start, end, lat, lon, place_id FROM stays WHERE end >= ? ORDER BY start",
            (now - self._window_s,),
        ).fetchall()
        last_end = conn.execute("SELECT MAX(end) FROM stays").fetchone()[0] or 0.0
        pending = conn.execute(
            "SELECT ts, utc_offset, lat, lon, accuracy_m FROM locations WHERE ts > ? ORDER BY ts",
            (last_end,),
        ).fetchall()
        with self._lock:
            self._detector = _detector()
            self._index = index
            self._stays = deque(StaySpan(*row) for row in stays)
            self._labels = None
            self._last_fix = None
        # Refeed without writing: these fixes' stays complete in a later commit.
        self._feed(pending, None)

    def on_commit(self, batch: dict[str, list[tuple[Any, ...]]], conn: sqlite3.Connection) -> None:
        """Store hook, inside the write transaction: feed the new fixes in time order."""
        fixes = batch.get("location")
        if fixes:
            self._feed(sorted(fixes), conn)

    def _feed(self, fixes: Sequence[tuple[Any, ...]], conn: sqlite3.Connection | None) -> None:
        if not fixes:
            return
        with self._lock:
            changed: set[int] = set()
            push = self._detector.push
            last = fixes[-1][0]
            self._last_fix = last if self._last_fix is None else max(self._last_fix, last)
            for row in fixes:  # (ts, utc_offset, lat, lon, accuracy_m, speed_mps)
                # tuple.__new__ skips Fix's Python-level __new__: this runs for every fix.
                stay = push(_new(Fix, (row[0], row[2], row[3], row[4])))
                if stay is None:
                    continue
                offset = row[1]
                place_id = self._index.add(stay, offset)
                changed.add(place_id)
                self._stays.append(StaySpan(stay.start, stay.end, stay.lat, stay.lon, place_id))
                if conn is not None:
                    conn.execute(
                        "INSERT INTO stays (start, end, utc_offset, lat, lon, n, place_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (stay.start, stay.end, offset, stay.lat, stay.lon, stay.n, place_id),
                    )
            if changed:
                self._labels = None
                if conn is not None:
                    self._save_places(conn, changed)

    def _save_places(self, conn: sqlite3.Connection, ids: set[int]) -> None:
        conn.executemany(
            "INSERT INTO places (id, lat, lon, visits, dwell_s, night_s, workday_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET lat = excluded.lat, "
            "lon = excluded.lon, visits = excluded.visits, dwell_s = excluded.dwell_s, "
            "night_s = excluded.night_s, workday_s = excluded.workday_s",
            [
                (p.id, p.lat, p.lon, p.visits, p.dwell_s, p.night_s, p.workday_s)
                for p in self._index.places(ids)
            ],
        )

    # -- corrections ----------------------------------------------------------------------

    def override(
        self, conn: sqlite3.Connection, lat: float, lon: float, label: str, now: float
    ) -> int:
        """The user says this point is ``label`` (home or work): that place, made if needed."""
        with self._lock:
            place_id = self._index.nearest(lat, lon)
            if place_id is None:  # a zero-length stay makes a place without dwell
                place_id = self._index.add(Stay(now, now, lat, lon, 1), 0)
            self._index.override(place_id, label)
            self._labels = None
            self._save_places(conn, {p.id for p in self._index.places()})
            conn.execute("UPDATE places SET label_override = NULL")
            conn.execute("UPDATE places SET label_override = ? WHERE id = ?", (label, place_id))
            return place_id

    # -- reading --------------------------------------------------------------------------

    def labels(self) -> dict[int, str]:
        with self._lock:
            if self._labels is None:
                self._labels = self._index.labels()
            return dict(self._labels)

    def window(self, now: float) -> list[StaySpan]:
        """Stays ending inside the feature window, oldest first."""
        cutoff = now - self._window_s
        with self._lock:
            while self._stays and self._stays[0].end < cutoff:
                self._stays.popleft()
            return list(self._stays)

    def where(self, now: float) -> tuple[str, int | None, float | None]:
        """(place label or ``moving``/``unknown``, place id, dwell seconds) right now."""
        with self._lock:
            ongoing = self._detector.current()
            if ongoing is not None:
                lat, lon, since = ongoing
                place_id = self._index.nearest(lat, lon)
                if self._labels is None:
                    self._labels = self._index.labels()
                label = self._labels.get(place_id, "other") if place_id is not None else "other"
                return label, place_id, max(now - since, 0.0)
            if self._last_fix is not None and now - self._last_fix <= RECENT_FIX_S:
                return "moving", None, None
            return "unknown", None, None

    def places(self) -> list[dict[str, Any]]:
        """Places with labels, centroids, totals and their visits in the feature window."""
        labels = self.labels()
        with self._lock:
            visits: dict[int, list[dict[str, float]]] = {}
            for stay in self._stays:
                visits.setdefault(stay.place_id, []).append(
                    {"start": stay.start, "end": stay.end, "lat": stay.lat, "lon": stay.lon}
                )
            return [
                {
                    "id": p.id,
                    "label": labels.get(p.id, "other"),
                    "lat": p.lat,
                    "lon": p.lon,
                    "visit_count": p.visits,
                    "dwell_s": p.dwell_s,
                    "visits": visits.get(p.id, []),
                }
                for p in self._index.places()
            ]

    def reset(self) -> None:
        with self._lock:
            self._detector = _detector()
            self._index = PlaceIndex()
            self._stays.clear()
            self._labels = None
            self._last_fix = None
