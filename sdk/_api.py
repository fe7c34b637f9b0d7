"""``EdgePersona``: the one object an app embeds."""

from __future__ import annotations

import base64
import binascii
import contextlib
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from . import _validate as check
from ._categories import CATEGORIES, AppCategoryResolver
from ._conditions import compile_condition
from ._consent import Consent
from ._decisions import Decider
from ._derived import DerivedState, local_time
from ._export import daily_counts, export_document
from ._fences import Fence, Fences
from ._intake import Intake
from ._localtime import Zone, day_key, zone
from ._location import LocationCollector, policy_named
from ._location import default_gps_source as _default_gps_source
from ._playbook import KNOWN_NAMES
from ._schema import SCHEMA_VERSION
from ._store import Settings, Store
from ._sync import Syncer, SyncResult, SyncSettings
from ._types import Decision, LocalTime, Moment, PersonaEstimate
from ._updates import ModelUpdater
from .clock import Clock, SystemClock
from .errors import InvalidSignalError
from .features import FEATURE_NAMES

__all__ = ["EdgePersona"]


class EdgePersona:
    """The SDK on one device. Create it with :meth:`open`; every method is thread-safe.

    Signals are validated on the caller's thread (bad input raises
    :class:`~edgepersona.sdk.errors.InvalidSignalError` and stores nothing), then buffered and
    committed by a writer thread; see ``flush()`` for what a crash can lose. Without the
    matching consent a signal is dropped and counted, never raised: ``track_*`` and
    ``record_location`` return ``True`` when the signal was kept. A full disk never makes
    ``track_*`` or ``decide()`` raise: the buffer grows to ``Settings.max_buffered_rows``,
    then new signals are dropped and counted as ``storage_full`` (see ``flush()``).
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
        rng: np.random.Generator,
        sync: tuple[str | None, tuple[bytes, ...], httpx.BaseTransport | None, SyncSettings],
    ) -> None:
        if token is not EdgePersona._OPENING:
            raise TypeError("create an EdgePersona with EdgePersona.open(data_dir, app_id)")
        self._store = store
        self._clock = clock
        self.app_id = app_id
        self._categories = resolver
        self._zone = store.zone
        self._fences = Fences()
        self._derived = DerivedState(store, clock, store.settings.feature_window_days)
        store.after_flush.append(self._check_fences)
        self._gps_source = gps
        self._location = LocationCollector(self._record_fix, store.count, clock, self._local_day)
        self.consent = Consent(store, clock, policy_version, self._forget)
        lock = threading.Lock()
        self._intake = Intake(store, self.consent, lock, store.settings.foreground_cap_s)
        self._decider = Decider(
            store,
            clock,
            self._zone,
            self.consent,
            self._derived.activity,
            self._derived.places,
            self._derived.feature_vector,
            self.context,
            rng,
            lock,
        )
        backend_url, public_keys, transport, sync_settings = sync
        self._updater = ModelUpdater(
            store,
            clock,
            self._decider,
            public_keys,
            sync_settings.shadow_decisions,
            sync_settings.max_bundle_bytes,
        )
        self._syncer = Syncer(
            store,
            clock,
            self._zone,
            self.consent,
            self._decider,
            self._updater,
            self._derived.feature_vector,
            backend_url,
            transport,
            sync_settings,
            rng,
        )
        self._reload_derived()
        self._updater.restore()

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        app_id: str,
        *,
        clock: Clock | None = None,
        tz: str | None = None,
        settings: Settings | None = None,
        app_categories: dict[str, str] | None = None,
        policy_version: str = "1",
        location_source: Any = None,
        seed: int | None = None,
        backend_url: str | None = None,
        public_key: str | bytes | Sequence[str | bytes] | None = None,
        transport: httpx.BaseTransport | None = None,
        sync_settings: SyncSettings | None = None,
    ) -> EdgePersona:
        """Open (or create) the SDK's database in ``data_dir``, which the SDK owns.

        Args:
            data_dir: a private directory of the app; created if missing.
            app_id: the host app's id, kept in exports.
            clock: source of "now" (default: the wall clock); tests pass a ``ManualClock``.
            tz: IANA zone for local time (default: the device's zone).
            settings: retention, buffering and durability (``Settings``).
            app_categories: extra ``{package id or prefix: category}`` for the resolver.
            policy_version: the privacy policy version written with each consent change.
            location_source: a plyer-like GPS object (default: ``plyer.gps`` when started).
            seed: seeds the SDK's randomness (offer ranking, privacy noise, backoff jitter),
                for tests; never seed it in a shipped app, the noise must be unpredictable.
                Each opening of the store draws from the seed and how often the store was
                opened, so a reopened seeded SDK repeats neither noise nor upload ids.
            backend_url: the sync service (e.g. ``https://sync.example.com``); without it
                ``sync()`` makes no request.
            public_key: the backend's Ed25519 public key that model bundles must be signed
                with: the base64 ``public_key`` of ``edgepersona backend keygen``'s public key
                file, or its 32 raw bytes; a list of keys while the backend rotates its key.
                Without it, downloaded models are refused (uploads still work).
            transport: an httpx transport for every request the SDK makes (tests, proxies).
            sync_settings: the privacy budget, schedule and limits of sync (``SyncSettings``).

        Raises:
            StoreError: the database cannot be opened or was written by a newer SDK.
            InvalidSignalError: ``tz``, ``app_categories``, ``backend_url`` or ``public_key``
                is invalid.
        """
        if not isinstance(app_id, str) or not app_id:
            raise InvalidSignalError("app_id", "expected the host app's id as a non-empty string")
        sync = (
            _backend_url(backend_url),
            _public_keys(public_key),
            transport,
            sync_settings or SyncSettings(),
        )
        clock = clock or SystemClock()
        resolver = AppCategoryResolver(app_categories)
        store = Store(Path(data_dir), clock, settings or Settings(), zone(tz))
        try:
            opened = store.write(partial(_record_opening, app_id=app_id))
            return cls(
                cls._OPENING,
                store,
                clock,
                app_id,
                resolver,
                policy_version,
                location_source,
                _generator(seed, opened),
                sync,
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
        ``Settings.foreground_cap_s``. ``category`` overrides the resolver.

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
        duration = check.duration(duration_s)
        return self._intake.foreground("app", ts, self._signal_zone(tz), (app, category), duration)

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
        duration = check.duration(duration_s)
        return self._intake.foreground("screen", ts, self._signal_zone(tz), fields, duration)

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
        return self._intake.record("event", ts, self._signal_zone(tz), fields)

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
        return self._intake.record("location", ts, self._signal_zone(tz), fields)

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
            return self._intake.drop("location", "no_consent")
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
        ts = self._clock.time() if ts is None else check.calendar_time(ts)
        return local_time(ts, self._signal_zone(tz))

    # -- what the device knows -------------------------------------------------------------

    def features(self) -> dict[str, float]:
        """The feature vector (schema ``edgepersona.sdk.features``) over the rolling window.

        Computed from committed rollups and places, and cached until the next commit or the
        next local day, so calling it often costs a dict copy.
        """
        return dict(zip(FEATURE_NAMES, self._derived.feature_vector(), strict=True))

    def context(self) -> Moment:
        """The moment: local time of day, weekday, place, dwell, moving, recent app category."""
        now = self._clock.time()
        return self._derived.moment(now, self._intake.recent_app_category(now))

    def places(self) -> list[dict[str, Any]]:
        """The places the device knows: id, label, centroid, visits and dwell."""
        return self._derived.places.places()

    def correct_place(self, label: str, lat: float, lon: float) -> int:
        """The user sets or fixes ``home`` or ``work`` at this point; it wins at once.

        Raises:
            InvalidSignalError: ``label`` is not home or work, or the coordinates are invalid.
        """
        if label not in ("home", "work"):
            raise InvalidSignalError("label", f"{label!r:.20} cannot be set; accepted: home, work")
        lat, lon, now = check.latitude(lat), check.longitude(lon), self._clock.time()
        return self._derived.correct_place(label, lat, lon, now)

    # -- persona and decisions ----------------------------------------------------------------

    def persona(self) -> PersonaEstimate | None:
        """The persona of this user now, or ``None`` when no usable model is loaded
        (``stats()["model_error"]`` says why). Needs no consent to call, but without
        ``personalization`` nothing was collected, so it reflects an empty history."""
        return self._decider.persona()

    def reject_persona(self, persona_id: str | None) -> None:
        """The user says "this persona is not me" (``None`` takes every such statement back).

        It wins at once: that persona gets probability 0 until taken back; kept in the
        store and visible in ``export()``.

        Raises:
            InvalidSignalError: ``persona_id`` is not a persona of the current model.
        """
        self._decider.reject_persona(persona_id)

    def decide(self, surface: str, offers: list[str] | tuple[str, ...] = ()) -> Decision:
        """Choose the UI variant for ``surface`` and rank ``offers`` (ids), with reasons.

        Without ``personalization`` consent (or without a usable model) it returns the
        playbook's default variant and the offers unranked, and says so in ``reasons``.
        Each personalized decision is logged (buffered) with the probability that its top
        offer was ranked first, for sync and offline policy evaluation.

        Raises:
            InvalidSignalError: ``surface`` or an offer id is not a valid name, or there are
                more than 100 offers.
        """
        return self._decider.decide(surface, offers)

    def feedback(self, decision: Decision, offer_id: str, outcome: str) -> bool:
        """Record how the user answered an offer of ``decision``: ``accepted`` or ``dismissed``.

        Counted for sync (noised, per persona and offer) and in the offer-acceptance feature.
        Returns ``False`` (dropped, counted) without ``personalization`` consent.

        Raises:
            InvalidSignalError: ``outcome`` is not accepted/dismissed, or ``offer_id`` was not
                among the decision's offers.
        """
        return self._decider.feedback(decision, offer_id, outcome) or self._intake.drop(
            "feedback", "no_consent"
        )

    # -- sync ---------------------------------------------------------------------------

    def sync(self, force: bool = False) -> SyncResult:
        """Send the week's private aggregate and look for a new model, if it is time.

        Call it from the app's own timer as often as convenient: it does nothing before
        ``SyncSettings.interval_s`` has passed since the last success, or while backing off
        after failures (``force=True``, for a "sync now" button, skips both but still
        honours the server's ``Retry-After``). Without ``sync`` consent or a
        ``backend_url`` it makes no request at all. It never raises for network trouble or
        for a device storage failure (disk full: status ``storage_error``, nothing half
        done, the next call tries again): the returned ``SyncResult`` says what happened.
        See ``docs/upload-payload.md`` for exactly what is sent.

        Raises:
            StoreClosedError: the instance was closed or erased.
        """
        return self._syncer.sync(force)

    def sync_status(self) -> dict[str, Any]:
        """Registration, uploads waiting, the last result, the next attempt, the privacy
        budget spent (``epsilon``: this week's, the budget, all time) and uploads dropped by
        reason."""
        return self._syncer.status()

    def last_upload(self) -> dict[str, Any] | None:
        """The last upload the server accepted, exactly as sent (``payload``), with
        ``sent_at`` and its size in ``bytes``; ``None`` before the first."""
        return self._syncer.last_upload()

    def model_status(self) -> dict[str, Any]:
        """The model in use (``version``, ``source``), a candidate running in ``shadow``
        (decisions so far and how often it agreed), the ``download`` in progress or its
        outcome, and the ``history`` of bundles adopted, shadowed and rejected (with why)."""
        return self._updater.status()

    def use_bundle(self, path: str | Path) -> int:
        """Switch to the bundle at ``path`` (a directory or .zip), e.g. to try a playbook.

        The bundle is checked whole first; if anything is wrong the current one stays in use.
        Returns the version now in use.

        Raises:
            ModelError: the bundle is malformed, tampered with, or its model does not run.
        """
        return self._decider.use_bundle(path)

    def on(self, condition: str, callback: Any) -> Fence:
        """Call ``callback(moment)`` each time ``condition`` becomes true (a fence).

        ``condition`` uses the playbook's condition language over ``moment.*``,
        ``persona.id``, ``persona.p.<id>`` and ``features.<name>``, e.g.
        ``"moment.place == 'work' and not moment.is_weekend and moment.time_of_day ==
        'morning'"``. Checked after each commit of new signals; see ``edgepersona.sdk``'s
        fences documentation for threads. ``cancel()`` the returned fence to remove it.

        Raises:
            ConditionError: the condition does not parse or names an unknown value.
        """
        if not callable(callback):
            raise TypeError("callback must be callable with one argument, the Moment")
        return self._fences.add(compile_condition(condition, known_names=KNOWN_NAMES), callback)

    def _check_fences(self) -> None:
        if self._fences:
            self._fences.evaluate(lambda: (m := self.context(), self._decider.condition_values(m)))

    # -- what the device holds ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Signals dropped since open (by kind and reason, kept in memory only: a declined
        consent leaves no trace on disk), rows waiting in the buffer, the last write error,
        and why no persona model is usable, if none is."""
        return {
            "dropped": dict(self._intake.dropped),
            "buffered": self._store.buffered(),
            "last_write_error": self._store.last_write_error,
            "model_error": self._decider.model_error,
            "schema_version": SCHEMA_VERSION,
        }

    def daily_counts(self, days: int = 7) -> dict[str, dict[str, int]]:
        """Per local day: ``rows.<kind>`` stored, the location collector's counters
        (``location.requested``, ``location.stored``, ``location.dropped.<reason>``), and
        ``dropped.storage_full``: signals dropped because the buffer was full on a full disk.

        Raises:
            InvalidSignalError: ``days`` is not a whole number from 1 to 36,600.
        """
        days = check.days(days)
        now = self._clock.time()
        since = day_key(now + self._zone.offset(now) - days * 86400)
        return self._store.read(lambda db: daily_counts(db, since))

    def export(self) -> dict[str, Any]:
        """Everything the SDK holds about the user, as a JSON-ready dict.

        Raises:
            StoreClosedError: the instance was closed or erased.
        """
        return self._store.read(lambda db: export_document(db, self._clock, self.app_id))

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit buffered signals now. On return they survive a crash of the app.

        Not committed, and so lost if the process dies: signals tracked after the last
        commit (the writer commits every ``flush_interval_s`` or ``flush_max_rows``; while
        the disk is full, everything since it filled, up to ``max_buffered_rows``) and the
        open foreground app and screen rows, whose durations are not known yet. Once that
        buffer is full and the disk still cannot take it, new signals are not kept at all:
        each is counted in ``stats()["dropped"]`` as ``<kind>.storage_full`` and, once there
        is room, in ``daily_counts()`` as ``dropped.storage_full``.

        Raises:
            StoreError: the write failed (disk full...); the rows stay buffered for a retry.
        """
        self._store.flush()

    def maintain(self) -> None:
        """Apply retention now; it also runs by itself at most once an hour of clock time."""
        self._store.maintain()

    def close(self) -> None:
        """Close the open foreground rows at now, commit everything and release the file.

        Raises:
            StoreError: the last commit failed (disk full); what was buffered is lost.
        """
        self._location.stop()
        self._intake.close(self._clock.time())
        self._store.close()

    def erase(self) -> dict[str, str]:
        """Delete everything the SDK holds on this device, and ask the backend to do the same.

        If the device ever registered with the backend, ``DELETE /v1/devices/me`` is sent
        first (even if sync was revoked since: the server may still hold its uploads); then
        the database and downloaded bundles are deleted and the instance is closed. Returns
        ``{"device": "erased", "server": ...}`` with ``server`` one of ``deleted``,
        ``not_registered`` or ``failed: <why>`` (offline: the uploads stay on the server,
        which keeps no coordinates, app ids or places; tell the user so).
        """
        self._location.stop()
        server = self._erase_on_server()
        self._intake.discard()
        shutil.rmtree(self._store.data_dir / "bundles", ignore_errors=True)
        self._store.erase()
        self._derived.clear()
        return {"device": "erased", "server": server}

    def _erase_on_server(self) -> str:
        url = self._syncer.url
        _, token = self._syncer.registration()
        if token is None or not url:
            return "not_registered"
        try:
            with httpx.Client(
                base_url=url,
                transport=self._syncer.transport,
                timeout=self._syncer.settings.timeout_s,
            ) as client:
                response = client.delete(
                    "/v1/devices/me", headers={"Authorization": f"Bearer {token}"}
                )
        except httpx.HTTPError as exc:
            return f"failed: {type(exc).__name__}"
        if response.status_code in (204, 401, 410):  # 401/410: the server holds nothing now
            return "deleted"
        return f"failed: the server answered {response.status_code}"

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
        if purpose == "location":
            self._location.stop()
        if purpose == "sync":
            self._syncer.forget()
        self._intake.forget(purpose)
        self._reload_derived()

    def _reload_derived(self) -> None:
        """Re-read what is kept in memory from the database (open, revoke)."""
        # The decider first: the derived state's reload renews the feature vector, which
        # is what tells the decider's caches to recompute with the new statements.
        self._decider.reload()
        self._derived.reload()


def _backend_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise InvalidSignalError("backend_url", "expected a URL string such as https://host")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidSignalError("backend_url", f"{url!r:.80} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidSignalError("backend_url", f"{url!r:.80} is not an http(s) URL with a host")
    return url.rstrip("/")


def _public_keys(keys: str | bytes | Sequence[str | bytes] | None) -> tuple[bytes, ...]:
    if keys is None:
        return ()
    items = [keys] if isinstance(keys, (str, bytes)) else list(keys)
    raw = []
    for key in items:
        if isinstance(key, str):
            with contextlib.suppress(binascii.Error, ValueError):
                key = base64.b64decode(key, validate=True)
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidSignalError(
                "public_key",
                "expected the backend's Ed25519 public key: the base64 'public_key' of the "
                "key file made by `edgepersona backend keygen`, or its 32 raw bytes",
            )
        raw.append(key)
    return tuple(raw)


def _record_opening(conn: sqlite3.Connection, app_id: str) -> int:
    """Note the host app and count this opening of the store; returns the count."""
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('app_id', ?) "
        "ON CONFLICT DO UPDATE SET value = excluded.value",
        (app_id,),
    )
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('opened', '1') "
        "ON CONFLICT DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )
    (opened,) = conn.execute("SELECT value FROM settings WHERE key = 'opened'").fetchone()
    return int(opened)


def _generator(seed: int | None, opened: int) -> np.random.Generator:
    """The SDK's randomness: from the OS, or for a seeded test from the seed and ``opened``.

    A seeded SDK reopened on the same store must not replay the stream it drew before: the
    new week's ``upload_id`` would repeat an old one (the server would take it for a resend
    and keep nothing) and its privacy noise would repeat the old noise.
    """
    return np.random.default_rng(None if seed is None else [seed, opened])
