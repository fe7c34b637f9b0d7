"""Location collection: plyer GPS fixes into the store, with the battery cost bounded.

GPS is a phone's most expensive sensor, so a ``SamplingPolicy`` asks for fixes often while the
user moves, sparsely while they stay put (the platform's distance filter wakes us when they
leave) and not until the next local midnight once the day's budget of stored fixes is spent.

plyer 2.1 facts relied on: ``gps.start(minTime, minDistance)`` takes milliseconds and metres
(Android passes them to ``LocationManager.requestLocationUpdates``; iOS ignores both, macOS
only honours the distance). ``on_location`` gets keywords ``lat, lon, speed, bearing,
altitude, accuracy`` (macOS: ``acc``, ``course``), maybe on a platform thread; Android gives
accuracy 0.0 when it has none, iOS speed -1. Desktop platforms raise ``NotImplementedError``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from .clock import Clock
from .errors import InvalidSignalError, LocationUnavailableError

__all__ = [
    "PRESETS",
    "GpsSource",
    "LocationCollector",
    "SamplingPolicy",
    "default_gps_source",
    "policy_named",
]

logger = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
MOVING_SPEED_MPS = 1.5  # faster than a stroll: on the move, whatever the positions say
THIN_SLACK = 0.9  # platforms treat minTime as a hint and deliver a little early: keep those
# Asleep until midnight with no distance filter: Android needs minTime *and* minDistance to
# deliver, so a large filter would never wake a user who stays home the next day.
BUDGET_WAKE_DISTANCE_M = 0.0
LONGEST_DAY_S = 26 * 3600  # a local day lasts 25 h at most (DST), plus a margin
DROP_REASONS = ("no_consent", "invalid", "budget", "too_soon")


@dataclass(frozen=True)
class SamplingPolicy:
    """How often to ask for fixes, and how many to keep per local day.

    ``stationary_interval_s=None`` never switches to the sparse stationary mode. Raises
    ``InvalidSignalError`` for a non-finite or non-positive value (distances may be 0).
    """

    name: str
    moving_interval_s: float
    moving_distance_m: float
    stationary_interval_s: float | None
    stationary_distance_m: float
    stationary_after_s: float
    stationary_radius_m: float
    daily_budget: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self)[1:-1]:
            value = getattr(self, field.name)
            zero_ok = field.name.endswith("distance_m")
            if value is None and field.name == "stationary_interval_s":
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
                bound = "0 or more" if zero_ok else "above 0"
                raise InvalidSignalError(
                    "policy", f"{field.name} must be a finite number {bound}, got {value!r:.40}"
                )
        _check_budget(self.daily_budget)


def _check_budget(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidSignalError(
            "daily_budget", f"expected a positive whole number of fixes per day, got {value!r:.40}"
        )


PRESETS: Mapping[str, SamplingPolicy] = MappingProxyType(
    {
        # Every 5 s, never sparse: navigation-grade. The budget only stops a runaway platform.
        "continuous": SamplingPolicy("continuous", 5.0, 0.0, None, 0.0, 300.0, 50.0, 20_000),
        # Twice a minute on the move; still after 5 min within 75 m (indoor GPS noise), then
        # every 10 min or 150 m away. The budget covers ~16 h of movement.
        "responsive": SamplingPolicy("responsive", 30.0, 20.0, 600.0, 150.0, 300.0, 75.0, 2_000),
        # Every 2 min on the move, every 30 min or 400 m while still: enough for stay points.
        "low_power": SamplingPolicy("low_power", 120.0, 100.0, 1_800.0, 400.0, 600.0, 150.0, 500),
    }
)


def policy_named(
    name_or_policy: str | SamplingPolicy, daily_budget: int | None = None
) -> SamplingPolicy | None:
    """The policy to run (``None`` for ``"off"``), its budget replaced by ``daily_budget``.

    Raises:
        InvalidSignalError: unknown policy name, or a budget that is not a positive integer.
    """
    if daily_budget is not None:
        _check_budget(daily_budget)
    if isinstance(name_or_policy, SamplingPolicy):
        policy = name_or_policy
    elif isinstance(name_or_policy, str) and name_or_policy in (*PRESETS, "off"):
        if name_or_policy == "off":
            return None
        policy = PRESETS[name_or_policy]
    else:
        raise InvalidSignalError(
            "policy",
            f"{name_or_policy!r:.40} is not a sampling policy; accepted: continuous, "
            "responsive, low_power, off, or a SamplingPolicy",
        )
    if daily_budget is None:
        return policy
    return dataclasses.replace(policy, daily_budget=daily_budget)


class GpsSource(Protocol):
    """The part of ``plyer.gps`` the collector uses; tests pass a fake."""

    def configure(
        self, on_location: Callable[..., None], on_status: Callable[..., None] | None = None
    ) -> None: ...

    # plyer's own parameter names: minTime in milliseconds, minDistance in metres.
    def start(self, minTime: int = 1000, minDistance: float = 1) -> None: ...  # noqa: N803

    def stop(self) -> None: ...


def default_gps_source() -> GpsSource:
    """``plyer.gps``, imported only when collection starts because plyer is optional.

    Raises:
        LocationUnavailableError: plyer is not installed.
    """
    try:
        from plyer import gps
    except ImportError as exc:
        raise LocationUnavailableError(
            "plyer is not installed: pip install 'edgepersona[sdk]' to collect GPS fixes, "
            "or feed fixes from your own location code with record_location()"
        ) from exc
    return gps


class Fix(NamedTuple):
    lat: float
    lon: float
    ts: float
    speed_mps: float | None = None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres; a sphere's error is far below GPS noise here."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def dwell(anchor: Fix | None, fix: Fix, radius_m: float, after_s: float) -> tuple[Fix, bool]:
    """The current stay's anchor after ``fix``, and whether the stay has lasted ``after_s``.

    The anchor is the stay's first fix; a fix beyond ``radius_m`` of it, or faster than
    walking, starts a new stay. Anchoring on the first fix rather than a running centre makes
    a slow drift out of the radius count as movement, at one distance per fix.
    """
    fast = fix.speed_mps is not None and fix.speed_mps > MOVING_SPEED_MPS
    if anchor is None or fast or haversine_m(anchor.lat, anchor.lon, fix.lat, fix.lon) > radius_m:
        return fix, False
    return anchor, fix.ts - anchor.ts >= after_s


def seconds_until_next_day(ts: float, local_day: Callable[[float], str]) -> float:
    """Whole seconds from ``ts`` to the first second of the next ``local_day``.

    Bisects on ``local_day`` alone, so it stays right across DST without knowing the zone.
    """
    today = local_day(ts)
    low, high = 0, LONGEST_DAY_S
    if local_day(ts + high) == today:
        return float(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if local_day(ts + middle) == today else (low, middle)
    return float(high)


def parse_fix(raw: Mapping[str, Any]) -> tuple[float, float, float | None, float | None]:
    """``(lat, lon, accuracy_m, speed_mps)`` from plyer's keywords, numbers from strings too.

    A missing, negative or non-finite speed or accuracy (iOS: -1) and Android's accuracy 0.0
    mean "unknown": ``None``. Ranges are left to ``record``, so one validator decides what is
    plausible. Raises ``ValueError`` for a value that is not a number.
    """

    def number(value: object) -> float:
        if value is None or isinstance(value, bool):
            raise ValueError(f"not a number: {value!r:.40}")
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"not a number: {value!r:.40}") from exc

    def unknown_as_none(value: object, zero_known: bool) -> float | None:
        if value is None:
            return None
        known = number(value)
        plausible = math.isfinite(known) and (known > 0 or (zero_known and known == 0))
        return known if plausible else None

    lat, lon = number(raw.get("lat")), number(raw.get("lon"))
    accuracy_m = unknown_as_none(raw.get("accuracy", raw.get("acc")), zero_known=False)
    return lat, lon, accuracy_m, unknown_as_none(raw.get("speed"), zero_known=True)


@dataclass(eq=False)
class _Session:
    """One subscription; callbacks still arriving from an earlier one are told apart by it."""

    policy: SamplingPolicy
    source: GpsSource
    mode: str = "moving"
    anchor: Fix | None = None
    last_offered: float | None = None


class LocationCollector:
    """Feeds a GPS source's fixes to ``record`` within a sampling policy and a daily budget.

    ``record(lat, lon, accuracy_m, speed_mps, ts)`` stores a fix (True), drops it for lack of
    consent (False) or raises ``InvalidSignalError``. ``count(name, ts)`` adds one to a
    per-local-day counter: ``location.requested``, ``location.stored`` and
    ``location.dropped.<reason>`` for each of ``DROP_REASONS``. Fixes arrive on a platform
    thread while the app starts, stops and reads ``status()``: all of it is locked.
    """

    def __init__(
        self,
        record: Callable[[float, float, float | None, float | None, float], bool],
        count: Callable[[str, float], None],
        clock: Clock,
        local_day: Callable[[float], str],
    ) -> None:
        self._record, self._count = record, count
        self._clock, self._local_day = clock, local_day
        self._lock = threading.Lock()  # state shared with the platform's callback thread
        self._control = threading.Lock()  # serialises start/stop without blocking callbacks
        self._session: _Session | None = None
        self._day: str | None = None
        self._today: Counter[str] = Counter()
        self._restarts = 0
        self._platform_status: str | None = None

    def start(self, policy: SamplingPolicy, source: GpsSource) -> None:
        """Subscribe to ``source`` with ``policy``, replacing any running subscription.

        Raises:
            LocationUnavailableError: this platform has no GPS through plyer.
        """
        with self._control:
            self._detach()
            session, now = _Session(policy, source), self._clock.time()
            with self._lock:
                self._roll_day(now)
                if self._today["stored"] >= policy.daily_budget:
                    session.mode = "budget_exhausted"
                self._session, self._platform_status = session, None
            min_time, min_distance = self._request(session, now)
            try:
                callback = functools.partial(self._on_location, session)
                source.configure(on_location=callback, on_status=self._on_status)
                source.start(minTime=min_time, minDistance=min_distance)
            except BaseException as exc:
                with self._lock:
                    self._session = None
                if isinstance(exc, NotImplementedError):
                    raise LocationUnavailableError(
                        f"plyer has no GPS on this platform ({sys.platform}); feed fixes from "
                        "your own location code with record_location()"
                    ) from exc
                raise

    def stop(self) -> None:
        """Unsubscribe; fixes the platform still delivers afterwards are ignored, not counted."""
        with self._control:
            self._detach()

    def status(self) -> dict[str, Any]:
        """Policy, mode, source restarts, the platform's last status, today's fix counts."""
        with self._lock:
            self._roll_day(self._clock.time())
            session, today = self._session, self._today
            return {
                "policy": session.policy.name if session else "off",
                "mode": session.mode if session else "stopped",
                "today": {
                    "requested": today["requested"],
                    "stored": today["stored"],
                    "dropped": {reason: today[f"dropped.{reason}"] for reason in DROP_REASONS},
                },
                "restarts": self._restarts,
                "platform_status": self._platform_status,
            }

    def _detach(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:  # outside the lock: stop() may wait for the callback thread
            try:
                session.source.stop()
            except Exception:
                logger.warning("the GPS source failed to stop", exc_info=True)

    def _on_status(self, *args: object) -> None:
        # plyer passes (kind, message) on Android and macOS, one message on some iOS builds.
        with self._lock:
            self._platform_status = ": ".join(str(arg) for arg in args)

    def _on_location(self, session: _Session, **raw: Any) -> None:
        # An exception on the platform's thread would be lost or kill that thread: log it.
        try:
            with self._lock:
                if session is self._session:
                    self._handle(session, raw, self._clock.time())
        except Exception:
            logger.exception("a location fix could not be handled and was dropped")

    def _handle(self, session: _Session, raw: Mapping[str, Any], now: float) -> None:
        policy = session.policy
        self._roll_day(now)
        if session.mode == "budget_exhausted" and self._today["stored"] < policy.daily_budget:
            self._switch(session, "moving", now)
        self._bump("requested", now)
        outcome, fix = self._offer(session, raw, now)
        self._bump(outcome, now)
        if fix is None:
            return
        if self._today["stored"] >= policy.daily_budget:
            self._switch(session, "budget_exhausted", now)
        elif policy.stationary_interval_s is not None:
            session.anchor, still = dwell(
                session.anchor, fix, policy.stationary_radius_m, policy.stationary_after_s
            )
            if still != (session.mode == "stationary"):
                self._switch(session, "stationary" if still else "moving", now)

    def _offer(
        self, session: _Session, raw: Mapping[str, Any], now: float
    ) -> tuple[str, Fix | None]:
        if session.mode == "budget_exhausted":
            return "dropped.budget", None
        try:
            lat, lon, accuracy_m, speed_mps = parse_fix(raw)
        except ValueError:
            return "dropped.invalid", None
        # Thinned by the moving interval in every mode: while stationary, a delivery means the
        # distance filter fired, that is movement, which must not wait for the sparse interval.
        last = session.last_offered
        if last is not None and now - last < session.policy.moving_interval_s * THIN_SLACK:
            return "dropped.too_soon", None
        try:
            stored = self._record(lat, lon, accuracy_m, speed_mps, now)
        except InvalidSignalError:
            return "dropped.invalid", None
        session.last_offered = now
        # Without consent the fix is not kept even in memory, so it cannot steer the mode.
        return ("stored", Fix(lat, lon, now, speed_mps)) if stored else ("dropped.no_consent", None)

    def _switch(self, session: _Session, mode: str, now: float) -> None:
        session.mode = mode
        if mode == "budget_exhausted":
            session.anchor = None  # tomorrow's first fix starts a new stay
        min_time, min_distance = self._request(session, now)
        self._restarts += 1
        session.source.stop()
        session.source.start(minTime=min_time, minDistance=min_distance)

    def _request(self, session: _Session, now: float) -> tuple[int, float]:
        """plyer's ``(minTime in ms, minDistance in m)`` for the session's mode."""
        policy = session.policy
        if session.mode == "budget_exhausted":
            seconds, distance = seconds_until_next_day(now, self._local_day), BUDGET_WAKE_DISTANCE_M
        elif session.mode == "stationary" and policy.stationary_interval_s is not None:
            seconds, distance = policy.stationary_interval_s, policy.stationary_distance_m
        else:
            seconds, distance = policy.moving_interval_s, policy.moving_distance_m
        return round(seconds * 1000), float(distance)

    def _roll_day(self, now: float) -> None:
        day = self._local_day(now)
        if day != self._day:
            self._day, self._today = day, Counter()

    def _bump(self, name: str, now: float) -> None:
        self._today[name] += 1
        self._count(f"location.{name}", now)
