"""Stay points, places and their labels: a synthetic week with known truth, and properties."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepersona.sdk._location import haversine_m
from edgepersona.sdk._places import (
    WORK_MIN_S,
    Fix,
    PlaceIndex,
    Stay,
    StayDetector,
    split_dwell,
)
from edgepersona.sdk.errors import InvalidSignalError

from ..conftest import T0

METRES_PER_DEGREE = 111_195.0
OFFSET_S = 3600  # Paris in winter
MONDAY = T0 - 8 * 3600 - OFFSET_S  # 2026-03-02 00:00 local, a Monday
H = 3600.0
PLACE_EVERY = (60.0, 180.0)  # seconds between fixes at a place
MOVE_EVERY = 30.0  # seconds between fixes on the move
SPEED_MPS = 10.0

Point = tuple[float, float]


def offset(point: Point, north_m: float, east_m: float) -> Point:
    lat, lon = point
    lon += east_m / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return lat + north_m / METRES_PER_DEGREE, (lon + 180.0) % 360.0 - 180.0


HOME = (48.8566, 2.3522)
WORK = offset(HOME, 7_000, 9_000)
GYM = offset(HOME, -2_500, 3_000)


@dataclass
class Week:
    """A generated track and what it holds: stays as trackintel defines them, commutes."""

    rng: random.Random
    fixes: list[Fix] = field(default_factory=list)
    stays: list[tuple[Point, float, float]] = field(default_factory=list)  # place, arrive, leave
    commutes: list[tuple[float, float]] = field(default_factory=list)

    def stay(
        self, at: Point, arrive: float, leave: float, phone_off: tuple[float, float] | None = None
    ) -> None:
        ts = arrive
        while ts < leave:
            if phone_off and phone_off[0] <= ts < phone_off[1]:
                ts = phone_off[1]
                continue
            angle, radius = self.rng.uniform(0, 2 * math.pi), 20 * math.sqrt(self.rng.random())
            lat, lon = offset(at, radius * math.sin(angle), radius * math.cos(angle))
            self.fixes.append(Fix(ts, lat, lon, self.rng.uniform(5, 30)))
            ts += self.rng.uniform(*PLACE_EVERY)
        # After the phone comes back a stay starts afresh: trackintel drops the stay that a
        # gap interrupted, since how long it lasted is unknown.
        self.stays.append((at, phone_off[1] if phone_off else arrive, leave))

    def move(self, a: Point, b: Point, leave: float) -> float:
        seconds = haversine_m(*a, *b) / SPEED_MPS
        ts = leave + MOVE_EVERY
        while ts < leave + seconds:
            share = (ts - leave) / seconds
            point = (a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share)
            self.fixes.append(Fix(ts, *point, 8.0))
            ts += MOVE_EVERY
        self.commutes.append((leave, leave + seconds))
        return leave + seconds


def week(days: int = 5, seed: int = 1) -> Week:
    """Weekdays from Monday: home, commute, work 09:00-17:30, a gym on some evenings, home
    overnight; on Wednesday the phone is off at work from 12:00 to 14:00."""
    track = Week(random.Random(seed))
    home_since = MONDAY
    for day in range(days):
        midnight = MONDAY + day * 86_400
        track.stay(HOME, home_since, midnight + 8 * H + 1800)
        at_work = track.move(HOME, WORK, midnight + 8 * H + 1800)
        off = (midnight + 12 * H, midnight + 14 * H) if day == 2 else None
        track.stay(WORK, at_work, midnight + 17.5 * H, off)
        if day % 2:
            at_gym = track.move(WORK, GYM, midnight + 17.5 * H)
            track.stay(GYM, at_gym, midnight + 20 * H)
            home_since = track.move(GYM, HOME, midnight + 20 * H)
        else:
            home_since = track.move(WORK, HOME, midnight + 17.5 * H)
    track.stay(HOME, home_since, MONDAY + days * 86_400 + 7 * H)
    return track


def detect(fixes: list[Fix], detector: StayDetector | None = None) -> list[Stay]:
    detector = detector or StayDetector()
    stays = [stay for fix in fixes if (stay := detector.push(fix)) is not None]
    last = detector.finish()
    return [*stays, last] if last else stays


# The synthetic week


def test_the_detector_recovers_every_stay_of_the_week() -> None:
    track = week()
    stays = detect(track.fixes)

    assert len(stays) == len(track.stays)
    for stay, (at, arrive, leave) in zip(stays, track.stays, strict=True):
        assert stay.start == pytest.approx(arrive, abs=PLACE_EVERY[1])
        assert stay.end == pytest.approx(leave, abs=PLACE_EVERY[1])
        assert haversine_m(stay.lat, stay.lon, *at) < 30


def test_the_index_labels_home_work_and_the_gym() -> None:
    index = PlaceIndex()
    for stay in detect(week().fixes):
        index.add(stay, OFFSET_S)

    home, work, gym = (index.nearest(*point) for point in (HOME, WORK, GYM))
    assert len({home, work, gym}) == 3
    assert len(index.places()) == 3
    assert index.labels() == {home: "home", work: "work", gym: "other"}
    by_id = {place.id: place for place in index.places()}
    assert by_id[home].night_s >= 5 * 8 * H
    assert by_id[work].workday_s >= 4 * 7 * H


def test_current_reports_moving_during_commutes_and_the_place_at_rest() -> None:
    track = week(days=2)
    detector = StayDetector()
    for fix in track.fixes:
        detector.push(fix)
        now = detector.current()
        commuting = any(start < fix.ts < end for start, end in track.commutes)
        if commuting:
            assert now is None
        elif now is not None:
            assert fix.ts - now[2] >= detector.time_threshold_s
            assert min(haversine_m(now[0], now[1], *at) for at in (HOME, WORK, GYM)) < 30
    at_home = [fix for fix in track.fixes if fix.ts < MONDAY + 6 * H]
    detector = StayDetector()
    for fix in at_home:
        detector.push(fix)
    ongoing = detector.current()
    assert ongoing is not None
    assert ongoing[2] == at_home[0].ts


# A reference: trackintel's loop (_generate_staypoints_sliding_user), transliterated


def trackintel_sliding(fixes: list[Fix], detector: StayDetector) -> list[tuple[Stay, Fix]]:
    """Stays as trackintel 1.4 finds them with include_last=True, each with its anchor."""
    fixes = list(dict.fromkeys(sorted(fixes, key=lambda fix: fix.ts)))  # drop_duplicates
    found: list[tuple[Stay, Fix]] = []

    def stay(start: int, end: int, stop: int) -> None:
        inside = fixes[start:stop]
        lon = math.degrees(
            math.atan2(
                sum(math.sin(math.radians(f.lon)) for f in inside),
                sum(math.cos(math.radians(f.lon)) for f in inside),
            )
        )
        lat = sum(f.lat for f in inside) / len(inside)
        found.append((Stay(fixes[start].ts, fixes[end].ts, lat, lon, len(inside)), fixes[start]))

    start = curr = 0
    for curr in range(1, len(fixes)):
        if fixes[curr].ts - fixes[curr - 1].ts > detector.gap_threshold_s:
            start = curr
            continue
        a, b = fixes[start], fixes[curr]
        if haversine_m(a.lat, a.lon, b.lat, b.lon) >= detector.dist_threshold_m:
            if b.ts - a.ts >= detector.time_threshold_s:
                stay(start, curr, curr)
            start = curr
    if fixes and fixes[curr].ts - fixes[start].ts >= detector.time_threshold_s:
        stay(start, curr, len(fixes))
    return found


@st.composite
def tracks(draw: st.DrawFn, max_steps: int = 120) -> list[Fix]:
    """Time-ordered fixes: jitter, walks and jumps, repeated times, gaps, anywhere on Earth."""
    lat = draw(st.floats(-80, 80))
    lon = draw(st.floats(-180, 180))
    ts = draw(st.floats(0, 2e9))
    fixes = []
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0.0, 30.0, 60.0, 60.0, 120.0, 120.0, 300.0, 1000.0]),
                st.sampled_from([0.0, 5.0, 5.0, 5.0, 40.0, 40.0, 90.0, 150.0, 2000.0]),
                st.floats(0, 2 * math.pi),
            ),
            min_size=1,
            max_size=max_steps,
        )
    )
    for dt, metres, bearing in steps:
        ts += dt
        lat, lon = offset((lat, lon), metres * math.cos(bearing), metres * math.sin(bearing))
        lat = max(-85.0, min(85.0, lat))
        fixes.append(Fix(ts, lat, lon, None))
    return fixes


@settings(max_examples=300, deadline=None)
@given(tracks())
def test_the_detector_finds_exactly_what_trackintel_finds(fixes: list[Fix]) -> None:
    detector = StayDetector()
    expected = [stay for stay, _ in trackintel_sliding(fixes, detector)]
    found = detect(fixes, detector)
    assert [(s.start, s.end, s.n) for s in found] == [(s.start, s.end, s.n) for s in expected]
    for mine, theirs in zip(found, expected, strict=True):
        assert haversine_m(mine.lat, mine.lon, theirs.lat, theirs.lon) < 1e-3


@settings(max_examples=300, deadline=None)
@given(tracks())
def test_stays_are_ordered_long_enough_and_centred_near_their_anchor(fixes: list[Fix]) -> None:
    detector = StayDetector()
    stays = detect(fixes, detector)
    for before, after in itertools.pairwise(stays):
        assert before.end <= after.start
    for stay in stays:
        assert stay.end - stay.start >= detector.time_threshold_s
        assert stay.n >= 1
    anchors = {stay.start: anchor for stay, anchor in trackintel_sliding(fixes, detector)}
    for stay in stays:
        anchor = anchors[stay.start]
        assert haversine_m(stay.lat, stay.lon, anchor.lat, anchor.lon) < detector.dist_threshold_m


@settings(max_examples=200, deadline=None)
@given(tracks(), st.data())
def test_the_detector_is_a_pure_stream(fixes: list[Fix], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(fixes)))
    whole = detect(fixes)
    detector = StayDetector()
    first = [stay for fix in fixes[:cut] if (stay := detector.push(fix)) is not None]
    ongoing = detector.current()
    fresh = StayDetector()
    for fix in fixes[:cut]:
        fresh.push(fix)
    assert ongoing == fresh.current()
    assert first + detect(fixes[cut:], detector) == whole


@settings(max_examples=200, deadline=None)
@given(tracks(), st.data())
def test_inaccurate_fixes_change_nothing(fixes: list[Fix], data: st.DataObject) -> None:
    noisy = list(fixes)
    for _ in range(data.draw(st.integers(0, 10))):
        where = data.draw(st.integers(0, len(noisy)))
        ts = noisy[min(where, len(noisy) - 1)].ts
        lat, lon = data.draw(st.floats(-90, 90)), data.draw(st.floats(-180, 180))
        noisy.insert(where, Fix(ts, lat, lon, data.draw(st.floats(200.001, 1e5))))
    assert detect(noisy) == detect(fixes)


# Edge cases of the stream


def still(at: Point, start: float, minutes: int, every: float = 60.0) -> list[Fix]:
    return [Fix(start + i * every, *at, 10.0) for i in range(minutes)]


def test_inaccurate_fixes_neither_end_nor_extend_a_stay() -> None:
    far = offset(HOME, 5_000, 0)
    fixes = still(HOME, T0, 30)
    fixes.insert(10, Fix(fixes[9].ts + 1, *far, 500.0))
    fixes.append(Fix(T0 + 40 * 60, *far, 900.0))
    fixes.append(Fix(T0 + 41 * 60, *far, None))  # unknown accuracy counts

    stays = detect(fixes)

    assert [(s.start, s.end, s.n) for s in stays] == [(T0, T0 + 41 * 60, 30)]


def test_inaccurate_fixes_do_not_bridge_a_gap() -> None:
    fixes = still(HOME, T0, 10) + [Fix(T0 + 600 + i * 60, *HOME, 300.0) for i in range(60)]
    fixes += still(HOME, T0 + 5_000, 3)
    assert detect(fixes) == []


def test_out_of_order_and_repeated_fixes_are_ignored_but_shared_times_are_kept() -> None:
    fixes = still(HOME, T0, 10)
    late = Fix(T0 + 30, *offset(HOME, 3_000, 0), 10.0)
    twin = Fix(fixes[5].ts, *offset(HOME, 10, 0), 10.0)

    stays = detect([*fixes[:6], late, fixes[5], fixes[3], *fixes[6:]])

    assert [(s.start, s.end, s.n) for s in stays] == [(T0, T0 + 540, 10)]
    assert detect([*fixes[:6], twin, fixes[5], *fixes[6:]])[0].n == 11


def test_a_gap_drops_the_interrupted_stay() -> None:
    fixes = still(HOME, T0, 20) + still(HOME, T0 + 19 * 60 + 901, 2)
    assert detect(fixes) == []
    fixes = still(HOME, T0, 20) + still(HOME, T0 + 19 * 60 + 900, 2)
    assert [(s.start, s.end) for s in detect(fixes)] == [(T0, T0 + 20 * 60 + 900)]


@pytest.mark.parametrize(
    "points",
    [
        [(90.0, 0.0), (90.0, 180.0), (89.9999, -90.0)],
        [(-90.0, 45.0), (-89.9999, -135.0)],
        [(0.0, 180.0), (0.0, -180.0), (0.0001, 179.9999), (0.0, -179.9999)],
    ],
)
def test_poles_and_antimeridian(points: list[Point]) -> None:
    fixes = [Fix(T0 + i * 60, *points[i % len(points)], None) for i in range(20)]
    (stay,) = detect(fixes)
    assert stay.n == 20
    assert min(haversine_m(stay.lat, stay.lon, *point) for point in points) < 100
    index = PlaceIndex()
    assert index.add(stay, 0) == index.add(stay._replace(lon=-stay.lon), 0)
    assert len(index.places()) == 1
    assert index.nearest(*points[0]) == 1


def test_a_single_fix_or_one_instant_makes_no_stay() -> None:
    assert detect([Fix(T0, *HOME)]) == []
    assert detect([Fix(T0, *offset(HOME, i, 0)) for i in range(10)]) == []
    assert StayDetector().finish() is None
    assert StayDetector().current() is None


# Dwell split in local time


def brute_split(start: int, end: int, offset_s: int) -> tuple[float, float]:
    night = workday = 0.0
    for minute in range(start, end, 60):
        local = datetime.fromtimestamp(minute, timezone.utc) + timedelta(seconds=offset_s)
        if local.hour >= 22 or local.hour < 6:
            night += 60
        if local.weekday() < 5 and 9 <= local.hour < 17:
            workday += 60
    return night, workday


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 40_000_000),
    st.integers(0, 3 * 24 * 60),
    st.integers(-12 * 4, 14 * 4).map(lambda quarters: quarters * 900),
)
def test_the_split_is_exact_on_whole_minutes(minute: int, minutes: int, offset_s: int) -> None:
    start = int(MONDAY) + minute * 60
    assert split_dwell(start, start + minutes * 60, offset_s) == brute_split(
        start, start + minutes * 60, offset_s
    )


@given(
    st.floats(0, 4e9),
    st.floats(0, 120 * 86_400),
    st.floats(0, 1),
    st.integers(-14 * 3600, 14 * 3600),
)
def test_the_parts_never_exceed_the_stay_and_add_up(
    start: float, duration: float, share: float, offset_s: int
) -> None:
    end, middle = start + duration, start + duration * share
    night, workday = split_dwell(start, end, offset_s)
    assert night >= 0
    assert workday >= 0
    assert night + workday <= end - start
    first, second = split_dwell(start, middle, offset_s), split_dwell(middle, end, offset_s)
    assert night == pytest.approx(first[0] + second[0], abs=1e-3)
    assert workday == pytest.approx(first[1] + second[1], abs=1e-3)


def test_a_stay_over_midnight_into_the_weekend_is_night_only() -> None:
    friday_8pm = MONDAY + 4 * 86_400 + 20 * H
    assert split_dwell(friday_8pm, friday_8pm + 14 * H, OFFSET_S) == (8 * H, 0.0)
    monday_8am = MONDAY + 8 * H
    assert split_dwell(monday_8am, monday_8am + 10 * H, OFFSET_S) == (0.0, 8 * H)
    assert split_dwell(monday_8am, monday_8am, OFFSET_S) == (0.0, 0.0)


# Places: merging, labels, overrides, persistence


def at(point: Point, start: float, hours: float) -> Stay:
    return Stay(start, start + hours * H, *point, 10)


def test_stays_merge_within_the_radius_with_a_dwell_weighted_centre() -> None:
    index = PlaceIndex(merge_radius_m=150)
    first = index.add(at(HOME, MONDAY, 3), 0)
    near = offset(HOME, 100, 0)
    assert index.add(at(near, MONDAY + 4 * H, 1), 0) == first
    (place,) = index.places()
    assert haversine_m(place.lat, place.lon, *HOME) == pytest.approx(25, abs=0.5)
    assert (place.visits, place.dwell_s) == (2, 4 * H)
    assert index.add(at(offset(HOME, 400, 0), MONDAY + 6 * H, 1), 0) != first
    assert index.nearest(*offset(HOME, 0, 1_000)) is None


def test_places_of_some_ids_are_copies_in_id_order() -> None:
    index = PlaceIndex()
    ids = [index.add(at(point, MONDAY, 1), 0) for point in (HOME, WORK, GYM)]
    picked = index.places({ids[2], ids[0], 999})  # an unknown id is skipped
    assert [place.id for place in picked] == [ids[0], ids[2]]
    assert picked == [p for p in index.places() if p.id in (ids[0], ids[2])]
    picked[0].visits = 99
    assert index.places([ids[0]])[0].visits == 1


def test_work_needs_enough_weekday_daytime() -> None:
    index = PlaceIndex()
    home = index.add(at(HOME, MONDAY - 2 * H, 9), OFFSET_S)
    shop = index.add(at(GYM, MONDAY + 10 * H, WORK_MIN_S / H - 0.5), 0)
    assert index.labels() == {home: "home", shop: "other"}
    index.add(at(GYM, MONDAY + 86_400 + 10 * H, 1), 0)
    assert index.labels() == {home: "home", shop: "work"}


def test_an_override_wins_at_once_and_displaces_that_label() -> None:
    index = PlaceIndex()
    home = index.add(at(HOME, MONDAY - 2 * H, 9), 0)
    work = index.add(at(WORK, MONDAY + 9 * H, 8), 0)
    gym = index.add(at(GYM, MONDAY + 18 * H, 1), 0)
    assert index.labels() == {home: "home", work: "work", gym: "other"}

    index.override(gym, "home")
    assert index.labels() == {home: "other", work: "work", gym: "home"}
    index.override(work, "home")
    assert index.labels() == {home: "other", work: "home", gym: "other"}
    index.override(gym, "work")
    assert index.labels() == {home: "other", work: "home", gym: "work"}
    index.override(work, None)
    assert index.labels() == {home: "home", work: "other", gym: "work"}
    index.override(home, "other")  # no other place has night dwell: nowhere is home
    assert index.labels() == {home: "other", work: "other", gym: "work"}


def test_override_rejects_unknown_places_and_labels() -> None:
    index = PlaceIndex()
    place = index.add(at(HOME, MONDAY, 1), 0)
    with pytest.raises(InvalidSignalError, match="place_id"):
        index.override(place + 1, "home")
    with pytest.raises(InvalidSignalError, match="accepted: home, work, other"):
        index.override(place, "gym")
    with pytest.raises(InvalidSignalError, match="merge_radius_m"):
        PlaceIndex(merge_radius_m=0)


def test_places_are_copies() -> None:
    index = PlaceIndex()
    place_id = index.add(at(HOME, MONDAY, 1), 0)
    index.places()[0].lat = 0.0
    assert index.nearest(*HOME) == place_id


stays = st.builds(
    lambda lat, lon, start, hours: Stay(start, start + hours * H, lat, lon, 5),
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.floats(0, 2e9),
    st.floats(0, 30),
)


@given(
    st.lists(st.tuples(stays, st.integers(-12, 14).map(lambda h: h * 3600)), max_size=30),
    st.lists(st.tuples(st.integers(1, 30), st.sampled_from(["home", "work", "other", None]))),
    stays,
)
def test_rows_round_trip(
    added: list[tuple[Stay, int]], overrides: list[tuple[int, str | None]], probe: Stay
) -> None:
    index = PlaceIndex()
    for stay, offset_s in added:
        index.add(stay, offset_s)
    for place_id, label in overrides:
        if place_id <= len(index.places()):
            index.override(place_id, label)

    restored = PlaceIndex.from_rows(index.to_rows())

    assert restored.to_rows() == index.to_rows()
    assert restored.labels() == index.labels()
    assert restored.nearest(probe.lat, probe.lon) == index.nearest(probe.lat, probe.lon)
    assert restored.add(probe, 0) == index.add(probe, 0)
    assert restored.to_rows() == index.to_rows()
