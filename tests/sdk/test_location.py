"""The location collector: sampling modes, daily budget, thinning and counting, on a fake GPS."""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk import _validate as check
from edgepersona.sdk._location import (
    PRESETS,
    Fix,
    LocationCollector,
    SamplingPolicy,
    default_gps_source,
    dwell,
    haversine_m,
    parse_fix,
    policy_named,
    seconds_until_next_day,
)
from edgepersona.sdk.clock import ManualClock
from edgepersona.sdk.errors import InvalidSignalError, LocationUnavailableError, StoreClosedError

from ..conftest import T0

HOME = (48.8566, 2.3522)
METRES_PER_DEGREE_LAT = 111_195.0
RESPONSIVE = PRESETS["responsive"]


def local_day_at(offset_s: int) -> Callable[[float], str]:
    """The local day in a zone with a fixed UTC offset."""
    return lambda ts: time.strftime("%Y-%m-%d", time.gmtime(ts + offset_s))


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / METRES_PER_DEGREE_LAT, point[1]


class FakeGps:
    """A plyer-like GPS: records start/stop calls; ``deliver`` plays the platform's callback."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.on_location: Callable[..., None] | None = None
        self.on_status: Callable[..., None] | None = None

    def configure(
        self, on_location: Callable[..., None], on_status: Callable[..., None] | None = None
    ) -> None:
        self.on_location, self.on_status = on_location, on_status

    def start(self, minTime: int = 1000, minDistance: float = 1) -> None:  # noqa: N803
        self.calls.append(("start", minTime, minDistance))

    def stop(self) -> None:
        self.calls.append(("stop",))

    def deliver(self, lat: Any, lon: Any, **extra: Any) -> None:
        assert self.on_location is not None
        self.on_location(lat=lat, lon=lon, **extra)


class Sink:
    """The SDK's side: ``record`` validates like ``record_location``; ``count`` tallies names."""

    def __init__(self) -> None:
        self.consent = True
        self.rows: list[tuple[float, float, float | None, float | None, float]] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(
        self, lat: float, lon: float, accuracy_m: float | None, speed_mps: float | None, ts: float
    ) -> bool:
        fix = (
            check.latitude(lat),
            check.longitude(lon),
            check.accuracy(accuracy_m),
            check.speed(speed_mps),
            ts,
        )
        if not self.consent:
            return False
        with self._lock:
            self.rows.append(fix)
        return True

    def count(self, name: str, ts: float) -> None:
        with self._lock:
            self.counts[name] += 1


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def gps() -> FakeGps:
    return FakeGps()


@pytest.fixture
def collector(sink: Sink, clock: ManualClock) -> LocationCollector:
    return LocationCollector(sink.record, sink.count, clock, local_day_at(0))


def walk(
    gps: FakeGps,
    clock: ManualClock,
    points: list[tuple[float, float]],
    every_s: float,
    **extra: Any,
) -> None:
    """Deliver one fix per point, ``every_s`` apart, the first one now."""
    for i, point in enumerate(points):
        if i:
            clock.advance(every_s)
        gps.deliver(*point, **extra)


# -- policies ---------------------------------------------------------------------------------


def test_presets_are_named_after_their_keys() -> None:
    assert sorted(PRESETS) == ["continuous", "low_power", "responsive"]
    assert all(policy.name == name for name, policy in PRESETS.items())
    assert PRESETS["continuous"].stationary_interval_s is None


def test_policy_named_resolves_names_budgets_and_off() -> None:
    assert policy_named("off") is None
    assert policy_named("responsive") is RESPONSIVE
    assert policy_named("low_power", daily_budget=7).daily_budget == 7  # type: ignore[union-attr]
    custom = SamplingPolicy("commute", 10.0, 10.0, None, 0.0, 60.0, 50.0, 100)
    assert policy_named(custom) is custom


def test_unknown_policy_names_the_accepted_ones() -> None:
    with pytest.raises(InvalidSignalError) as raised:
        policy_named("turbo")
    assert raised.value.field == "policy"
    assert "accepted: continuous, responsive, low_power, off" in str(raised.value)


@pytest.mark.parametrize("budget", [0, -5, 2.5, True, "100"])
def test_daily_budget_must_be_a_positive_int(budget: Any) -> None:
    with pytest.raises(InvalidSignalError, match="positive whole number") as raised:
        policy_named("responsive", daily_budget=budget)
    assert raised.value.field == "daily_budget"


@pytest.mark.parametrize(
    ("field", "value"),
    [("moving_interval_s", 0), ("stationary_radius_m", math.nan), ("stationary_interval_s", -1)],
)
def test_policy_fields_are_checked(field: str, value: float) -> None:
    with pytest.raises(InvalidSignalError, match=field):
        dataclasses.replace(RESPONSIVE, **{field: value})


# -- sampling modes ---------------------------------------------------------------------------


def test_starts_moving_with_plyer_units(collector: LocationCollector, gps: FakeGps) -> None:
    collector.start(RESPONSIVE, gps)
    assert gps.calls == [("start", 30_000, 20.0)]  # minTime in ms, minDistance in m
    assert isinstance(gps.calls[0][1], int)  # Android's requestLocationUpdates takes a long


def test_continuous_never_goes_stationary(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(PRESETS["continuous"], gps)
    walk(gps, clock, [HOME] * 720, every_s=5, speed=0.0)  # an hour on the sofa
    assert collector.status()["mode"] == "moving"
    assert gps.calls == [("start", 5_000, 0.0)]
    assert collector.status()["today"]["stored"] == 720


def test_responsive_goes_stationary_after_dwelling_and_back_on_movement(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(RESPONSIVE, gps)
    jitter = [HOME, north_of(HOME, 30), north_of(HOME, -20)] * 3 + [HOME]
    walk(gps, clock, jitter[:10], every_s=30)  # 270 s within 75 m: not yet
    assert collector.status()["mode"] == "moving"
    clock.advance(30)
    gps.deliver(*HOME)  # 300 s
    assert collector.status()["mode"] == "stationary"
    assert gps.calls[1:] == [("stop",), ("start", 600_000, 150.0)]

    clock.advance(600)
    gps.deliver(*north_of(HOME, 200))  # the distance filter woke us: we left
    assert collector.status()["mode"] == "moving"
    assert gps.calls[3:] == [("stop",), ("start", 30_000, 20.0)]
    assert collector.status()["restarts"] == 2


def test_speed_alone_means_moving(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(RESPONSIVE, gps)
    walk(gps, clock, [HOME] * 11, every_s=30)
    assert collector.status()["mode"] == "stationary"
    clock.advance(30)
    gps.deliver(*HOME, speed=4.0)  # the car has not left the 75 m yet
    assert collector.status()["mode"] == "moving"


def test_drift_out_of_the_radius_restarts_the_stay(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(RESPONSIVE, gps)
    walk(gps, clock, [north_of(HOME, 10 * i) for i in range(11)], every_s=30)  # 100 m in 5 min
    assert collector.status()["mode"] == "moving"


# -- daily budget -----------------------------------------------------------------------------


def test_budget_sleeps_until_local_midnight_then_resets(
    sink: Sink, gps: FakeGps, clock: ManualClock
) -> None:
    collector = LocationCollector(sink.record, sink.count, clock, local_day_at(2 * 3600))
    collector.start(policy_named("responsive", daily_budget=3), gps)  # type: ignore[arg-type]
    walk(gps, clock, [north_of(HOME, 500 * i) for i in range(3)], every_s=60)
    # T0 + 120 s is 10:02 at UTC+2: 13 h 58 min to local midnight.
    assert collector.status()["mode"] == "budget_exhausted"
    assert gps.calls[1:] == [("stop",), ("start", (14 * 3600 - 120) * 1000, 0.0)]

    walk(gps, clock, [HOME, HOME], every_s=3600)
    today = collector.status()["today"]
    assert today["stored"] == 3
    assert today["dropped"]["budget"] == 2

    clock.set(T0 + 14 * 3600 + 5)  # 00:00:05 local, the next day
    gps.deliver(*HOME)
    assert collector.status() == {
        "policy": "responsive",
        "mode": "moving",
        "today": {
            "requested": 1,
            "stored": 1,
            "dropped": {"no_consent": 0, "invalid": 0, "budget": 0, "too_soon": 0},
        },
        "restarts": 2,
        "platform_status": None,
    }
    assert gps.calls[-2:] == [("stop",), ("start", 30_000, 20.0)]
    assert len(sink.rows) == 4


def test_start_on_a_spent_day_starts_asleep(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(policy_named("responsive", daily_budget=1), gps)  # type: ignore[arg-type]
    gps.deliver(*HOME)
    collector.stop()
    collector.start(policy_named("responsive", daily_budget=1), gps)  # type: ignore[arg-type]
    assert collector.status()["mode"] == "budget_exhausted"
    assert gps.calls[-1] == ("start", 16 * 3600 * 1000, 0.0)  # T0 is 08:00 UTC


# -- what reaches the store -------------------------------------------------------------------


def test_fixes_faster_than_the_interval_are_thinned(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock, sink: Sink
) -> None:
    collector.start(RESPONSIVE, gps)
    for step in (0, 10, 10, 8, 30):  # kept at 0, 28 (within the 10 % slack) and 58
        clock.advance(step)
        gps.deliver(*HOME)
    assert [ts - T0 for *_, ts in sink.rows] == [0, 28, 58]
    assert collector.status()["today"]["dropped"]["too_soon"] == 2


@pytest.mark.parametrize(
    "fix",
    [
        {"lat": "north", "lon": 2.35},
        {"lat": math.nan, "lon": 2.35},
        {"lat": 95.0, "lon": 2.35},
        {"lat": None, "lon": 2.35},
        {"lat": True, "lon": 2.35},
        {"lat": 48.85, "lon": 2.35, "speed": "fast"},
        {"lat": 48.85, "lon": 2.35, "speed": 900.0},
        {"lat": 48.85, "lon": 10**400},
    ],
)
def test_bad_fixes_are_counted_not_raised(
    collector: LocationCollector, gps: FakeGps, sink: Sink, fix: dict[str, Any]
) -> None:
    collector.start(RESPONSIVE, gps)
    assert gps.on_location is not None
    gps.on_location(**fix)
    assert sink.rows == []
    assert collector.status()["today"]["dropped"]["invalid"] == 1
    assert sink.counts == {"location.requested": 1, "location.dropped.invalid": 1}


def test_platform_quirks_are_normalised(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock, sink: Sink
) -> None:
    collector.start(RESPONSIVE, gps)
    gps.deliver(48.85, 2.35, speed=-1.0, bearing=-1.0, accuracy=65.0)  # iOS: speed unknown
    clock.advance(30)
    gps.deliver(48.85, 2.35, speed=0.0, accuracy=0.0, altitude=35.0)  # Android: no accuracy
    clock.advance(30)
    gps.deliver(" 48.85", "2.35", acc="12.5", course=90.0, speed=math.nan)  # strings; macOS keys
    assert [row[:4] for row in sink.rows] == [
        (48.85, 2.35, 65.0, None),
        (48.85, 2.35, None, 0.0),
        (48.85, 2.35, 12.5, None),
    ]


def test_without_consent_fixes_are_counted_and_do_not_steer_the_mode(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock, sink: Sink
) -> None:
    sink.consent = False
    collector.start(RESPONSIVE, gps)
    walk(gps, clock, [HOME] * 20, every_s=30)
    status = collector.status()
    assert status["mode"] == "moving"
    assert status["today"]["dropped"]["no_consent"] == 20
    assert sink.rows == []


def test_every_outcome_reaches_the_store_counters(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock, sink: Sink
) -> None:
    collector.start(RESPONSIVE, gps)
    gps.deliver(*HOME)
    gps.deliver(*HOME)
    gps.deliver("x", 0)
    clock.advance(30)
    sink.consent = False
    gps.deliver(*HOME)
    assert sink.counts == {
        "location.requested": 4,
        "location.stored": 1,
        "location.dropped.too_soon": 1,
        "location.dropped.invalid": 1,
        "location.dropped.no_consent": 1,
    }


def test_an_unexpected_error_is_logged_not_raised_into_the_platform(
    gps: FakeGps, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def closed_store(*fix: object) -> bool:
        raise StoreClosedError("closed")

    collector = LocationCollector(closed_store, lambda name, ts: None, clock, local_day_at(0))
    collector.start(RESPONSIVE, gps)
    with caplog.at_level(logging.ERROR):
        gps.deliver(*HOME)
    assert "could not be handled" in caplog.text


# -- lifecycle and threads --------------------------------------------------------------------


def test_callbacks_after_stop_are_ignored(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock, sink: Sink
) -> None:
    collector.start(RESPONSIVE, gps)
    gps.deliver(*HOME)
    collector.stop()
    clock.advance(60)
    gps.deliver(*HOME)  # a late delivery from the platform's thread
    status = collector.status()
    assert (status["policy"], status["mode"]) == ("off", "stopped")
    assert status["today"]["requested"] == 1
    assert gps.calls == [("start", 30_000, 20.0), ("stop",)]
    assert len(sink.rows) == 1


def test_a_new_start_replaces_the_old_subscription(
    collector: LocationCollector, gps: FakeGps, clock: ManualClock
) -> None:
    collector.start(RESPONSIVE, gps)
    stale = gps.on_location
    other = FakeGps()
    collector.start(PRESETS["low_power"], other)
    assert gps.calls == [("start", 30_000, 20.0), ("stop",)]
    assert other.calls == [("start", 120_000, 100.0)]
    assert stale is not None
    stale(lat=HOME[0], lon=HOME[1])
    assert collector.status()["today"]["requested"] == 0


def test_platform_status_messages_are_shown(collector: LocationCollector, gps: FakeGps) -> None:
    collector.start(RESPONSIVE, gps)
    assert gps.on_status is not None
    gps.on_status("provider-disabled", "gps")
    assert collector.status()["platform_status"] == "provider-disabled: gps"


def test_concurrent_callbacks_lose_no_counts(
    collector: LocationCollector, gps: FakeGps, sink: Sink
) -> None:
    collector.start(dataclasses.replace(RESPONSIVE, moving_interval_s=1e-9), gps)
    threads, per_thread = 8, 250
    barrier = threading.Barrier(threads)

    def platform_thread(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            gps.deliver(HOME[0] + n * 1e-3, HOME[1] + i * 1e-6)

    workers = [threading.Thread(target=platform_thread, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    today = collector.status()["today"]
    assert today["requested"] == sink.counts["location.requested"] == threads * per_thread
    assert today["stored"] + sum(today["dropped"].values()) == threads * per_thread
    assert today["stored"] == sink.counts["location.stored"] == len(sink.rows)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="plyer's desktop Linux has no GPS")
def test_real_plyer_on_linux_is_unavailable(collector: LocationCollector) -> None:
    with pytest.raises(LocationUnavailableError, match=r"\(linux\).*record_location\(\)"):
        collector.start(RESPONSIVE, default_gps_source())
    assert collector.status()["mode"] == "stopped"


def test_status_shape_when_stopped(collector: LocationCollector) -> None:
    assert collector.status() == {
        "policy": "off",
        "mode": "stopped",
        "today": {
            "requested": 0,
            "stored": 0,
            "dropped": {"no_consent": 0, "invalid": 0, "budget": 0, "too_soon": 0},
        },
        "restarts": 0,
        "platform_status": None,
    }


# -- pure helpers -----------------------------------------------------------------------------

latitudes = st.floats(-90, 90)
longitudes = st.floats(-180, 180)
points = st.tuples(latitudes, longitudes)


@given(points, points)
def test_haversine_is_symmetric(a: tuple[float, float], b: tuple[float, float]) -> None:
    assert haversine_m(*a, *b) == pytest.approx(haversine_m(*b, *a), abs=1e-6)


@given(points)
def test_haversine_is_zero_on_identical_points(a: tuple[float, float]) -> None:
    assert haversine_m(*a, *a) == 0.0


@given(points, points, points)
def test_haversine_triangle_inequality(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    # Near antipodes asin loses precision: a metre of slack on a 20,000 km scale.
    assert haversine_m(*a, *c) <= haversine_m(*a, *b) + haversine_m(*b, *c) + 1.0


def test_haversine_one_degree_of_latitude() -> None:
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)


@given(points, st.floats(0, 1e6), st.floats(0, 74), st.floats(-5, 5))
def test_dwell_holds_within_the_radius_at_walking_pace(
    a: tuple[float, float], elapsed: float, metres: float, speed: float
) -> None:
    anchor = Fix(a[0], a[1], T0)
    lat = max(-90.0, min(90.0, a[0] + metres / METRES_PER_DEGREE_LAT))
    fix = Fix(lat, a[1], T0 + elapsed, speed if speed >= 0 else None)
    new_anchor, still = dwell(anchor, fix, radius_m=75, after_s=300)
    if speed > 1.5:
        assert (new_anchor, still) == (fix, False)
    else:
        assert (new_anchor, still) == (anchor, elapsed >= 300)


@given(st.floats(-80, 80), longitudes, st.floats(76, 1e6))
def test_dwell_restarts_beyond_the_radius(lat: float, lon: float, metres: float) -> None:
    anchor = Fix(lat, lon, T0)
    far = Fix(lat + metres / METRES_PER_DEGREE_LAT, lon, T0 + 3600)
    assert dwell(anchor, far, radius_m=75, after_s=300) == (far, False)


@given(st.floats(T0 - 1e8, T0 + 1e8), st.integers(-48, 56))
def test_seconds_until_next_day_finds_local_midnight(ts: float, quarter_hours: int) -> None:
    local_day = local_day_at(quarter_hours * 900)
    wait = seconds_until_next_day(ts, local_day)
    assert 0 < wait <= 86_400
    assert local_day(ts + wait) != local_day(ts)
    assert local_day(ts + wait - 1) == local_day(ts)


def test_parse_fix_keeps_zero_speed_and_drops_zero_accuracy() -> None:
    assert parse_fix({"lat": 1, "lon": 2, "speed": 0, "accuracy": 0}) == (1.0, 2.0, None, 0.0)
    with pytest.raises(ValueError, match="not a number"):
        parse_fix({"lon": 2})
