"""``EdgePersona``: the one object an app embeds."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import _validate as check
from ._categories import CATEGORIES, AppCategoryResolver
from ._consent import KINDS_OF_PURPOSE, Consent
from ._localtime import Zone, day_key, zone
from ._location import LocationCollector, policy_named
from ._location import default_gps_source as _default_gps_source
from ._schema import SCHEMA_VERSION
from ._signals import ForegroundStream
from ._store import Store, StoreSettings
from ._types import LocalTime
from .clock import Clock, SystemClock
from .errors import InvalidSignalError

__all__ = ["MICROCONVERSIONS", "EdgePersona"]

EXPORT_FORMAT = "edgepersona-export/1"
MICROCONVERSIONS = (
    "view",
    "add_to_cart",
    "purchase",
    "offer_shown",
    "offer_accepted",
    "offer_dismissed",
)
_WEEKEND = (5, 6)


class EdgePersona:
    """The SDK on one device. Create it with :meth:`open`; every method is thread-safe.

    Signals are validated on the caller's thread (bad input raises
    :class:`~edgepersona.sdk.errors.InvalidSignalError` and stores nothing), then buffered and
    committed by a writer thread; see ``flush()`` for what a crash can lose. Without the
    matching consent a signal is dropped and counted, never raised: ``track_*`` and
    ``record_location`` return ``True`` when the signal was kept.
    """

    _OPENING = object()

    def __init__(
        self,
        token: object,
        store: Store,
        clock: Clock,
        app_id: str,
        resolver: AppCategoryResolver,
        policy_version: str,
        gps: Any,
    ) -> None:
        if token is not EdgePersona._OPENING:
            raise TypeError("create an EdgePersona with EdgePersona.open(data_dir, app_id)")
        self._store = store
        self._clock = clock
        self.app_id = app_id
        self._categories = resolver
        self._zone = store.zone
        self._lock = threading.Lock()
        self._streams = {
            kind: ForegroundStream(store.settings.foreground_cap_s) for kind in ("app", "screen")
        }
        self._last_row: dict[str, tuple[Any, ...]] = {}
        self._dropped: Counter[str] = Counter()
        self._gps_source = gps
        self._location = LocationCollector(self._record_fix, store.count, clock, self._local_day)
        self.consent = Consent(store, clock, policy_version, self._forget)

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        app_id: str,
        *,
        clock: Clock | None = None,
        tz: str | None = None,
        settings: StoreSettings | None = None,
        app_categories: dict[str, str] | None = None,
        policy_version: str = "1",
        location_source: Any = None,
    ) -> EdgePersona:
        """Open (or create) the SDK's database in ``data_dir``, which the SDK owns.

        Args:
            data_dir: a private directory of the app; created if missing.
            app_id: the host app's id, kept in exports.
            clock: source of "now" (default: the wall clock); tests pass a ``ManualClock``.
            tz: IANA zone for local time (default: the device's zone).
            settings: retention, buffering and durability (``StoreSettings``).
            app_categories: extra ``{package id or prefix: category}`` for the resolver.
            policy_version: the privacy policy version written with each consent change.
            location_source: a plyer-like GPS object (default: ``plyer.gps`` when started).

        Raises:
            StoreError: the database cannot be opened or was written by a newer SDK.
            InvalidSignalError: ``tz`` or ``app_categories`` is invalid.
        """
        if not isinstance(app_id, str) or not app_id:
            raise InvalidSignalError("app_id", "expected the host app's id as a non-empty string")
        clock = clock or SystemClock()
        resolver = AppCategoryResolver(app_categories)
        store = Store(Path(data_dir), clock, settings or StoreSettings(), zone(tz))
        try:
            store.write(
                lambda conn: conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('app_id', ?) "
                    "ON CONFLICT DO UPDATE SET value = excluded.value",
                    (app_id,),
                )
            )
            return cls(
                cls._OPENING, store, clock, app_id, resolver, policy_version, location_source
            )
        except BaseException:
            store.close()
            raise

    # -- signals --------------------------------------------------------------------------

    def track_app(
        self,
        app: str,
        *,
        ts: float | None = None,
        category: str | None = None,
        duration_s: float | None = None,
        tz: str | None = None,
    ) -> bool:
        """An app came to the foreground (``app`` is its package id, e.g. ``com.whatsapp``).

        Without ``duration_s`` the row lasts until the next ``track_app``, capped at
        ``StoreSettings.foreground_cap_s``. ``category`` overrides the resolver.

        Raises:
            InvalidSignalError: bad ``app``, ``ts``, ``category``, ``duration_s`` or ``tz``.
        """
        ts = self._ts(ts)
        app = check.app_id(app)
        if category is None:
            category = self._categories.resolve(app)
        elif category not in CATEGORIES:
            raise InvalidSignalError(
                "category", f"{category!r:.40} is unknown; accepted: {', '.join(CATEGORIES)}"
            )
        return self._foreground("app", ts, tz, (app, category), check.duration(duration_s))

    def track_screen(
        self,
        name: str,
        *,
        ts: float | None = None,
        duration_s: float | None = None,
        tz: str | None = None,
    ) -> bool:
        """A screen of the host app was shown; lasts until the next screen, like ``track_app``.

        Raises:
            InvalidSignalError: bad ``name``, ``ts``, ``duration_s`` or ``tz``.
        """
        ts = self._ts(ts)
        fields = (check.name("name", name),)
        return self._foreground("screen", ts, tz, fields, check.duration(duration_s))

    def track_event(
        self,
        name: str,
        value: float | None = None,
        *,
        ts: float | None = None,
        tz: str | None = None,
    ) -> bool:
        """A named event, such as a microconversion (see ``MICROCONVERSIONS``), with a value.

        Raises:
            InvalidSignalError: bad ``name``, ``value``, ``ts`` or ``tz``.
        """
        ts = self._ts(ts)
        fields = (check.name("name", name), check.value(value))
        signal_zone = self._signal_zone(tz)
        if not self.consent.allows("personalization"):
            return self._drop("event", "no_consent")
        with self._lock:
            if self._last_row.get("event") == (ts, *fields):
                return self._drop("event", "duplicate")
            self._last_row["event"] = (ts, *fields)
            self._store.append("event", ts, signal_zone, fields)
        return True

    def record_location(
        self,
        lat: float,
        lon: float,
        accuracy_m: float | None = None,
        speed_mps: float | None = None,
        *,
        ts: float | None = None,
        tz: str | None = None,
    ) -> bool:
        """A location fix from the host's own location code (or a replayed trace).

        Raises:
            InvalidSignalError: NaN or out-of-range coordinates, implausible accuracy or
                speed, a bad ``ts`` or ``tz``.
        """
        ts = self._ts(ts)
        fields = (
            check.latitude(lat),
            check.longitude(lon),
            check.accuracy(accuracy_m),
            check.speed(speed_mps),
        )
        signal_zone = self._signal_zone(tz)
        if not self.consent.allows("location"):
            return self._drop("location", "no_consent")
        with self._lock:
            if self._last_row.get("location") == (ts, *fields):
                return self._drop("location", "duplicate")
            self._last_row["location"] = (ts, *fields)
            self._store.append("location", ts, signal_zone, fields)
        return True

    # -- location collection --------------------------------------------------------------

    def start_location(
        self, policy: Any = "responsive", *, daily_budget: int | None = None, source: Any = None
    ) -> bool:
        """Collect fixes through plyer's GPS with a sampling policy and a daily fix budget.

        ``policy``: ``"continuous"``, ``"responsive"`` (sparse while still, woken by
        movement), ``"low_power"``, ``"off"``, or a ``SamplingPolicy``. Returns ``False``
        without touching the GPS when the user has not granted ``location`` (no battery is
        spent on fixes that would be dropped); revoking ``location`` stops the collector.

        Raises:
            InvalidSignalError: unknown policy or a budget that is not a positive integer.
            LocationUnavailableError: plyer is missing or this platform has no GPS through it.
        """
        chosen = policy_named(policy, daily_budget)
        if chosen is None:
            self._location.stop()
            return False
        if not self.consent.allows("location"):
            self._drop("location", "no_consent")
            return False
        gps = source or self._gps_source or _default_gps_source()
        self._location.start(chosen, gps)
        return True

    def stop_location(self) -> None:
        """Stop the GPS subscription (nothing happens if it was not started)."""
        self._location.stop()

    def location_status(self) -> dict[str, Any]:
        """Policy, mode and today's fixes requested, stored and dropped by reason."""
        return self._location.status()

    # -- time -----------------------------------------------------------------------------

    def local_time(self, ts: float | None = None, tz: str | None = None) -> LocalTime:
        """Local time of day and weekday at ``ts`` (default: now) in ``tz`` or the device's zone.

        Raises:
            InvalidSignalError: bad ``ts`` or ``tz``.
        """
        ts = self._clock.time() if ts is None else check.timestamp(ts, math.inf)
        signal_zone = self._signal_zone(tz)
        offset = signal_zone.offset(ts)
        local = datetime.fromtimestamp(ts, timezone(timedelta(seconds=offset)))
        return LocalTime(
            ts=ts,
            zone=signal_zone.name or time.tzname[0],
            utc_offset_s=offset,
            iso=local.isoformat(),
            hour=local.hour,
            minute=local.minute,
            weekday=local.weekday(),
            is_weekend=local.weekday() in _WEEKEND,
        )

    # -- what the device holds ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Signals dropped since open (by kind and reason, kept in memory only: a declined
        consent leaves no trace on disk), rows waiting in the buffer and the last write error."""
        return {
            "dropped": dict(self._dropped),
            "buffered": self._store.buffered(),
            "last_write_error": self._store.last_write_error,
            "schema_version": SCHEMA_VERSION,
        }

    def daily_counts(self, days: int = 7) -> dict[str, dict[str, int]]:
        """Per local day: ``rows.<kind>`` stored, and the location collector's counters
        (``location.requested``, ``location.stored``, ``location.dropped.<reason>``)."""
        since = day_key(self._clock.time() + self._zone.offset(self._clock.time()) - days * 86400)

        def query(db: Any) -> dict[str, dict[str, int]]:
            report: dict[str, dict[str, int]] = {}
            for day, name, n in db.execute(
                "SELECT day, 'rows.' || kind, SUM(n) FROM rollup_daily WHERE day > ? "
                "GROUP BY day, kind UNION ALL "
                "SELECT day, name, n FROM daily_counts WHERE day > ? ORDER BY 1, 2",
                (since, since),
            ):
                report.setdefault(day, {})[name] = int(n)
            return report

        return self._store.read(query)

    def export(self) -> dict[str, Any]:
        """Everything the SDK holds about the user, as a JSON-ready dict.

        Raises:
            StoreClosedError: the instance was closed or erased.
        """

        def collect(db: Any) -> dict[str, Any]:
            return {
                "format": EXPORT_FORMAT,
                "exported_at": datetime.fromtimestamp(self._clock.time(), timezone.utc).isoformat(),
                "app_id": self.app_id,
                "schema_version": SCHEMA_VERSION,
                "consent": {row["purpose"]: row for row in db["consent"].rows},
                "consent_audit": list(db["consent_audit"].rows_where(order_by="id")),
                "signals": {
                    kind: list(db[table].rows_where(order_by="id"))
                    for kind, table in (
                        ("location", "locations"),
                        ("app", "app_usage"),
                        ("screen", "screens"),
                        ("event", "events"),
                    )
                },
                "rollups": {
                    "hourly": list(db["rollup_hourly"].rows_where(order_by="hour, kind, key")),
                    "daily": list(db["rollup_daily"].rows_where(order_by="day, kind, key")),
                },
                "daily_counts": list(db["daily_counts"].rows_where(order_by="day, name")),
            }

        return self._store.read(collect)

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit buffered signals now. On return they survive a crash of the app.

        Not committed, and so lost if the process dies: signals tracked after the last
        commit (the writer commits every ``flush_interval_s`` or ``flush_max_rows``) and the
        open foreground app and screen rows, whose durations are not known yet.

        Raises:
            StoreError: the write failed (disk full...); the rows stay buffered for a retry.
        """
        self._store.flush()

    def maintain(self) -> None:
        """Apply retention now; it also runs by itself at most once an hour of clock time."""
        self._store.maintain()

    def close(self) -> None:
        """Close the open foreground rows at now, commit everything and release the file."""
        self._location.stop()
        now = self._clock.time()
        with self._lock:
            for kind, stream in self._streams.items():
                for row in stream.close_at(now):
                    self._store.append(kind, row.ts, row.zone, row.fields)
        self._store.close()

    def erase(self) -> None:
        """Delete everything the SDK holds on this device; the instance is closed after it."""
        self._location.stop()
        with self._lock:
            for stream in self._streams.values():
                stream.discard()
        self._store.erase()

    def __enter__(self) -> EdgePersona:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _ts(self, ts: float | None) -> float:
        now = self._clock.time()
        return now if ts is None else check.timestamp(ts, now)

    def _signal_zone(self, tz: str | None) -> Zone:
        return self._zone if tz is None else zone(tz)

    def _foreground(
        self,
        kind: str,
        ts: float,
        tz: str | None,
        fields: tuple[Any, ...],
        duration_s: float | None,
    ) -> bool:
        signal_zone = self._signal_zone(tz)
        if not self.consent.allows("personalization"):
            return self._drop(kind, "no_consent")
        with self._lock:
            closed = self._streams[kind].push(ts, signal_zone, fields, duration_s)
            if closed is None:
                return self._drop(kind, "duplicate")
            for row in closed:
                self._store.append(kind, row.ts, row.zone, row.fields)
        return True

    def _drop(self, kind: str, reason: str) -> bool:
        self._dropped[f"{kind}.{reason}"] += 1
        return False

    def _record_fix(
        self, lat: float, lon: float, accuracy_m: float | None, speed_mps: float | None, ts: float
    ) -> bool:
        """The collector's sink: ``False`` only for lack of consent (a repeat counts as kept)."""
        if not self.consent.allows("location"):
            return False
        self.record_location(lat, lon, accuracy_m, speed_mps, ts=ts)
        return True

    def _local_day(self, ts: float) -> str:
        return day_key(ts + self._zone.offset(ts))

    def _forget(self, purpose: str) -> None:
        """Consent was withdrawn: drop what is held in memory for that purpose."""
        if "app" in KINDS_OF_PURPOSE[purpose]:
            with self._lock:
                for stream in self._streams.values():
                    stream.discard()
                self._last_row.pop("event", None)
        if purpose == "location":
            self._location.stop()
            with self._lock:
                self._last_row.pop("location", None)
