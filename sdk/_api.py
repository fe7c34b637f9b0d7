"""``EdgePersona``: the one object an app embeds."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as check
from ._activity import ActivityWindow
from ._bundle import Bundle, default_bundle, load_bundle
from ._categories import CATEGORIES, AppCategoryResolver
from ._conditions import compile_condition
from ._consent import KINDS_OF_PURPOSE, Consent
from ._fences import Fence, Fences
from ._localtime import Zone, day_key, hour_key, zone
from ._location import LocationCollector, policy_named
from ._location import default_gps_source as _default_gps_source
from ._place_engine import PlaceEngine
from ._playbook import KNOWN_NAMES
from ._ranking import habit_shift, mixed_prior, thompson_sample
from ._schema import SCHEMA_VERSION
from ._signals import ClosedRow, ForegroundStream, SessionTracker
from ._store import Settings, Store
from ._types import Decision, LocalTime, Moment, PersonaEstimate
from .clock import Clock, SystemClock
from .errors import InvalidSignalError, ModelError
from .features import FEATURE_NAMES, FEATURES, feature_vector, time_of_day

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
EVIDENCE_DAYS = 7  # observed days before the persona model's probabilities count in full
_EXPLORE: dict[str, dict[str, tuple[float, float]]] = {}  # no priors: uniform exploration
# Habit shifts are measured in units of each feature's range, so that shares and counts
# compare; a week-to-week spread below 5% of the range is treated as 5% (noise floor).
_RANGES = np.array([f.high - f.low for f in FEATURES])
HABIT_MIN_STD = 0.05


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
        rng: np.random.Generator,
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
        self._rng = rng
        self._bundle: Bundle | None = None
        self._bundle_error: str | None = None
        self._cached_persona: tuple[tuple[float, ...], dict[str, float]] | None = None
        self._cached_shift: tuple[tuple[int, str], Any] | None = None
        self._rejected: set[str] = set()
        # The mixed prior, valid while the same priors, probabilities and offers come back.
        self._cached_prior: tuple[Any, ...] | None = None
        self._fences = Fences()
        self._sessions = SessionTracker()
        self._recent_app: tuple[float, str] | None = None
        window = store.settings.feature_window_days
        self._activity = ActivityWindow(window)
        self._places = PlaceEngine(window)
        self._commits = 0
        self._cached_features: tuple[tuple[int, str], tuple[float, ...]] | None = None
        store.in_transaction.append(self._places.on_commit)
        store.after_commit.append(self._on_commit)
        store.after_flush.append(self._check_fences)
        self._dropped: Counter[str] = Counter()
        self._gps_source = gps
        self._location = LocationCollector(self._record_fix, store.count, clock, self._local_day)
        self.consent = Consent(store, clock, policy_version, self._forget)
        self._reload_derived()

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
            seed: seeds the randomness of offer ranking (Thompson sampling), for tests.

        Raises:
            StoreError: the database cannot be opened or was written by a newer SDK.
            InvalidSignalError: ``tz`` or ``app_categories`` is invalid.
        """
        if not isinstance(app_id, str) or not app_id:
            raise InvalidSignalError("app_id", "expected the host app's id as a non-empty string")
        clock = clock or SystemClock()
        resolver = AppCategoryResolver(app_categories)
        store = Store(Path(data_dir), clock, settings or Settings(), zone(tz))
        try:
            store.write(
                lambda conn: conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('app_id', ?) "
                    "ON CONFLICT DO UPDATE SET value = excluded.value",
                    (app_id,),
                )
            )
            return cls(
                cls._OPENING,
                store,
                clock,
                app_id,
                resolver,
                policy_version,
                location_source,
                np.random.default_rng(seed),
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
        return self._local(ts, self._signal_zone(tz))

    @staticmethod
    def _local(ts: float, signal_zone: Zone) -> LocalTime:
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

    # -- what the device knows -------------------------------------------------------------

    def features(self) -> dict[str, float]:
        """The feature vector (schema ``edgepersona.sdk.features``) over the rolling window.

        Computed from committed rollups and places, and cached until the next commit or the
        next local day, so calling it often costs a dict copy.
        """
        return dict(zip(FEATURE_NAMES, self._feature_vector(), strict=True))

    def _feature_vector(self) -> tuple[float, ...]:
        now = self._clock.time()
        key = (self._commits, day_key(now + self._zone.offset(now)))
        cached = self._cached_features
        if cached is not None and cached[0] == key:
            return cached[1]
        vector = feature_vector(
            self._activity.activity(key[1]), self._places.window(now), self._places.labels()
        )
        self._cached_features = (key, vector)
        return vector

    def context(self) -> Moment:
        """The moment: local time of day, weekday, place, dwell, moving, recent app category."""
        now = self._clock.time()
        local = self._local(now, self._zone)
        place, place_id, dwell = self._places.where(now)
        recent = self._recent_app
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
            recent_app_category=recent[1] if recent and now - recent[0] <= 900 else None,
        )

    def places(self) -> list[dict[str, Any]]:
        """The places the device knows: id, label, centroid, visits and dwell."""
        return self._places.places()

    def correct_place(self, label: str, lat: float, lon: float) -> int:
        """The user sets or fixes ``home`` or ``work`` at this point; it wins at once.

        Raises:
            InvalidSignalError: ``label`` is not home or work, or the coordinates are invalid.
        """
        if label not in ("home", "work"):
            raise InvalidSignalError("label", f"{label!r:.20} cannot be set; accepted: home, work")
        lat, lon, now = check.latitude(lat), check.longitude(lon), self._clock.time()

        def write(conn: Any) -> int:
            # The coordinates live with the place (deleted with location); the log keeps the act.
            conn.execute(
                "INSERT INTO corrections (ts, kind, value) VALUES (?, 'place', ?)", (now, label)
            )
            return self._places.override(conn, lat, lon, label, now)

        place_id = self._store.write(write)
        self._commits += 1
        return place_id

    # -- persona and decisions ----------------------------------------------------------------

    def persona(self) -> PersonaEstimate | None:
        """The persona of this user now, or ``None`` when no usable model is loaded
        (``stats()["model_error"]`` says why). Needs no consent to call, but without
        ``personalization`` nothing was collected, so it reflects an empty history."""
        bundle = self._model()
        if bundle is None:
            return None
        probabilities = self._probabilities(bundle)
        top = max(probabilities, key=probabilities.__getitem__)
        return PersonaEstimate(
            top,
            bundle.persona_names[top],
            probabilities,
            bundle.persona_traits.get(top, ()),
            bundle.version,
            tuple(sorted(self._rejected)),
        )

    def reject_persona(self, persona_id: str | None) -> None:
        """The user says "this persona is not me" (``None`` takes every such statement back).

        It wins at once: that persona gets probability 0 until taken back; kept in the
        store and visible in ``export()``.

        Raises:
            InvalidSignalError: ``persona_id`` is not a persona of the current model.
        """
        bundle = self._model()
        if persona_id is not None and (bundle is None or persona_id not in bundle.persona_names):
            known = ", ".join(bundle.persona_names) if bundle else "none (no model)"
            raise InvalidSignalError(
                "persona_id", f"{persona_id!r:.40} is unknown; accepted: {known}"
            )
        now = self._clock.time()
        kind, value = ("not_me", persona_id) if persona_id else ("not_me_cleared", "*")
        self._store.write(
            lambda conn: conn.execute(
                "INSERT INTO corrections (ts, kind, value) VALUES (?, ?, ?)", (now, kind, value)
            )
        )
        self._rejected = set() if persona_id is None else self._rejected | {persona_id}
        self._cached_persona = None

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
        surface = check.name("surface", surface)
        if not isinstance(offers, (list, tuple)) or len(offers) > 100:
            raise InvalidSignalError("offers", "expected a list of at most 100 offer ids")
        offer_ids = tuple(dict.fromkeys(check.name("offers", o) for o in offers))
        moment = self.context()
        bundle = self._model()
        decision_id = f"{int(moment.ts * 1000):x}-{int(self._rng.integers(1 << 32)):08x}"
        if bundle is None or not self.consent.allows("personalization"):
            why = (
                f"no usable persona model ({self._bundle_error}): default layout, offers as given"
                if self.consent.allows("personalization")
                else "personalization is off: default layout, offers in the order given"
            )
            variant, layout = (
                bundle.playbook.default_variant(surface) if bundle else ("default", {})
            )
            return Decision(
                decision_id,
                surface,
                False,
                None,
                {},
                variant,
                dict(layout),
                offer_ids,
                (why,),
                bundle.version if bundle else None,
                None,
                moment,
            )
        probabilities = self._probabilities(bundle)
        top = max(probabilities, key=probabilities.__getitem__)
        context = self._condition_values(moment, bundle, probabilities)
        variant, layout, because = bundle.playbook.variant(surface, context)
        reasons = [
            _persona_reason(bundle, top, probabilities),
            _moment_reason(moment),
            f"Layout '{variant}': {because}",
        ]
        eligible = []
        for offer in offer_ids:
            allowed, offer_because = bundle.playbook.eligible(offer, context)
            if allowed:
                eligible.append(offer)
            else:
                reasons.append(f"Not offering '{offer}' now: only when {offer_because}")
        priors = bundle.playbook.priors
        shift = self._habit_shift(bundle.playbook.habit_shift_threshold)
        if shift is not None and shift.shifted:
            priors = _EXPLORE  # every offer back to the uninformed prior
            change = ", ".join(f"{name} {z:+.1f} sd" for name, z in shift.top_changes)
            reasons.append(f"Exploring new offers: your habits changed this week ({change})")
        cached = self._cached_prior
        if not (
            cached and cached[0] is priors and cached[1] is probabilities and cached[2] == eligible
        ):
            cached = (
                priors,
                probabilities,
                eligible,
                *mixed_prior(eligible, priors, probabilities),
            )
            self._cached_prior = cached
        ranked = thompson_sample(eligible, cached[3], cached[4], self._rng)
        if ranked.order:
            reasons.append(
                f"Offers ranked by sampling each one's success rate for people like you; "
                f"'{ranked.order[0]}' came first with probability {ranked.propensity:.2f}"
            )
        shown = ranked.order[0] if ranked.order else None
        with self._lock:
            self._store.append(
                "decision",
                moment.ts,
                self._zone,
                (
                    decision_id,
                    surface,
                    top,
                    variant,
                    json.dumps(list(ranked.order)),
                    shown,
                    ranked.propensity if shown else None,
                    bundle.version,
                ),
            )
            if shown is not None:
                self._store.append("event", moment.ts, self._zone, ("offer_shown", None))
        return Decision(
            decision_id,
            surface,
            True,
            top,
            probabilities,
            variant,
            dict(layout),
            ranked.order,
            tuple(reasons),
            bundle.version,
            ranked.propensity if shown else None,
            moment,
        )

    def feedback(self, decision: Decision, offer_id: str, outcome: str) -> bool:
        """Record how the user answered an offer of ``decision``: ``accepted`` or ``dismissed``.

        Counted for sync (noised, per persona and offer) and in the offer-acceptance feature.
        Returns ``False`` (dropped, counted) without ``personalization`` consent.

        Raises:
            InvalidSignalError: ``outcome`` is not accepted/dismissed, or ``offer_id`` was not
                among the decision's offers.
        """
        if outcome not in ("accepted", "dismissed"):
            raise InvalidSignalError(
                "outcome", f"{outcome!r:.20} is unknown; accepted: accepted, dismissed"
            )
        if not isinstance(decision, Decision) or offer_id not in decision.offers:
            raise InvalidSignalError("offer_id", "expected one of the offers of that decision")
        if not self.consent.allows("personalization"):
            return self._drop("feedback", "no_consent")
        now = self._clock.time()
        with self._lock:
            self._store.append(
                "feedback", now, self._zone, (decision.id, offer_id, outcome, decision.persona)
            )
            self._store.append("event", now, self._zone, (f"offer_{outcome}", None))
        return True

    def use_bundle(self, path: str | Path) -> int:
        """Switch to the bundle at ``path`` (a directory or .zip), e.g. to try a playbook.

        The bundle is checked whole first; if anything is wrong the current one stays in use.
        Returns the version now in use.

        Raises:
            ModelError: the bundle is malformed, tampered with, or its model does not run.
        """
        bundle = load_bundle(Path(path))
        self._bundle, self._bundle_error = bundle, None
        self._cached_persona = None
        return bundle.version

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
            self._fences.evaluate(lambda: (m := self.context(), self._condition_values(m)))

    def _condition_values(
        self,
        moment: Moment,
        bundle: Bundle | None = None,
        probabilities: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """What conditions (playbook rules, fences) can read."""
        persona: dict[str, Any] = {"id": None, "name": None, "p": {}}
        bundle = bundle or (self._model() if self.consent.allows("personalization") else None)
        if bundle is not None:
            probabilities = probabilities or self._probabilities(bundle)
            top = max(probabilities, key=probabilities.__getitem__)
            persona = {"id": top, "name": bundle.persona_names[top], "p": probabilities}
        return {"moment": moment.as_dict(), "persona": persona, "features": self.features()}

    def _model(self) -> Bundle | None:
        """The bundle in use, loaded on first need (importing onnxruntime costs ~25 ms)."""
        if self._bundle is None and self._bundle_error is None:
            try:
                self._bundle = default_bundle()
            except (ModelError, OSError) as exc:
                self._bundle_error = str(exc)
        return self._bundle

    def _probabilities(self, bundle: Bundle) -> dict[str, float]:
        vector = self._feature_vector()
        cached = self._cached_persona
        if cached is not None and cached[0] is vector:
            return cached[1]
        raw = bundle.model.predict_proba(np.asarray(vector, dtype=np.float32))
        # Evidence weighting: a model trained on weeks of behaviour is not sure about a user
        # seen for a day, so until a week is observed, probabilities lean towards uniform.
        now = self._clock.time()
        days = self._activity.activity(day_key(now + self._zone.offset(now))).days
        weight = min(days / EVIDENCE_DAYS, 1.0)
        raw = weight * raw + (1 - weight) / len(raw)
        probabilities = {
            pid: (0.0 if pid in self._rejected else float(p))
            for pid, p in zip(bundle.persona_ids, raw, strict=True)
        }
        total = sum(probabilities.values())
        if total <= 0:  # the user rejected every likely persona: no preference left
            kept = [pid for pid in probabilities if pid not in self._rejected] or list(
                probabilities
            )
            probabilities = {pid: (1 / len(kept) if pid in kept else 0.0) for pid in probabilities}
        else:
            probabilities = {pid: p / total for pid, p in probabilities.items()}
        self._cached_persona = (vector, probabilities)
        return probabilities

    def _habit_shift(self, threshold: float) -> Any:
        """This week's features against the user's previous weeks, cached per commit."""
        now = self._clock.time()
        today = day_key(now + self._zone.offset(now))
        key = (self._commits, today)
        if self._cached_shift is not None and self._cached_shift[0] == key:
            return self._cached_shift[1]
        stays = self._places.window(now)
        labels = self._places.labels()
        weeks = []
        for week in range(4):
            activity = self._activity.activity(today, days=7, skip_days=7 * week)
            if activity.days == 0:
                break
            end, start = now - 7 * 86400 * week, now - 7 * 86400 * (week + 1)
            in_week = [st for st in stays if start <= st.end < end]
            weeks.append(feature_vector(activity, in_week, labels))
        shift = None
        if len(weeks) >= 3:
            scaled = [list(np.asarray(week) / _RANGES) for week in weeks]
            shift = habit_shift(
                scaled[0], scaled[1:], FEATURE_NAMES, threshold=threshold, min_std=HABIT_MIN_STD
            )
        self._cached_shift = (key, shift)
        return shift

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
                "places": list(db["places"].rows_where(order_by="id")),
                "stays": list(db["stays"].rows_where(order_by="start")),
                "corrections": list(db["corrections"].rows_where(order_by="id")),
                "decisions": list(db["decisions"].rows_where(order_by="id")),
                "feedback": list(db["feedback"].rows_where(order_by="id")),
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
                    self._append_closed(kind, row)
            for session in self._sessions.close():
                self._store.append("session", session.ts, session.zone, session.fields)
        self._store.close()

    def erase(self) -> None:
        """Delete everything the SDK holds on this device; the instance is closed after it."""
        self._location.stop()
        with self._lock:
            for stream in self._streams.values():
                stream.discard()
            self._sessions.discard()
        self._store.erase()
        self._activity.clear()
        self._places.reset()

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
                self._append_closed(kind, row)
            if kind == "app":
                self._recent_app = (ts, fields[1])
        return True

    def _append_closed(self, kind: str, row: ClosedRow) -> None:
        """Store a closed foreground row; app rows also make sessions. Caller holds the lock."""
        self._store.append(kind, row.ts, row.zone, row.fields)
        if kind == "app":
            session = self._sessions.add(row)
            if session is not None:
                self._store.append("session", session.ts, session.zone, session.fields)

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
                self._sessions.discard()
                self._last_row.pop("event", None)
                self._recent_app = None
        if purpose == "location":
            self._location.stop()
            with self._lock:
                self._last_row.pop("location", None)
        self._reload_derived()

    def _reload_derived(self) -> None:
        """Rebuild places and the activity window from the database (open, revoke)."""
        now = self._clock.time()
        first_hour = hour_key(now + self._zone.offset(now) - self._activity.window_days * 86400)

        def load(db: Any) -> list[Any]:
            self._places.load(db.conn, now)
            self._rejected = _rejected_personas(
                db.execute(
                    "SELECT kind, value FROM corrections WHERE kind LIKE 'not_me%' ORDER BY id"
                ).fetchall()
            )
            return db.execute(
                "SELECT hour, kind, key, n, seconds, value FROM rollup_hourly WHERE hour >= ?",
                (first_hour,),
            ).fetchall()

        rows = self._store.read(load)
        self._activity.clear()
        self._activity.add(rows)
        self._commits += 1

    def _on_commit(self, hourly: dict[tuple[str, str, str], list[float]]) -> None:
        self._activity.add((*key, *values) for key, values in hourly.items())  # type: ignore[misc]
        self._commits += 1


def _rejected_personas(rows: list[tuple[str, str]]) -> set[str]:
    rejected: set[str] = set()
    for kind, value in rows:
        rejected = set() if kind == "not_me_cleared" else rejected | {value}
    return rejected


def _persona_reason(bundle: Bundle, top: str, probabilities: dict[str, float]) -> str:
    traits = ", ".join(
        ("more " if t[0] == "+" else "less ") + t[1:].replace("_", " ")
        for t in bundle.persona_traits.get(top, ())[:2]
    )
    standout = f" (people like this show {traits})" if traits else ""
    return f"You look most like '{bundle.persona_names[top]}' ({probabilities[top]:.0%}){standout}"


def _moment_reason(moment: Moment) -> str:
    day = "weekend day" if moment.is_weekend else "weekday"
    where = {"moving": "you are on the move", "unknown": "your place is unknown"}.get(
        moment.place, f"you are at {moment.place}"
    )
    return f"It is {moment.time_of_day} on a {day} and {where}"
