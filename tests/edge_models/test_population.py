"""The synthetic population: deterministic, valid trace rows, and personas that behave apart."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import mean
from zoneinfo import ZoneInfo

import pytest

from edgepersona.edge_models.personas import APP_POOLS, LAUNCHERS, PERSONAS, persona
from edgepersona.edge_models.population import (
    CITIES,
    COLUMNS,
    Device,
    population,
    trace_rows,
    write_trace,
)
from edgepersona.sdk import CATEGORIES, replay
from edgepersona.sdk._categories import AppCategoryResolver
from edgepersona.sdk.features import MICROCONVERSIONS

START = date(2026, 3, 2)  # a Monday; four weeks cross the US and the EU switch to summer time
PERSONA_IDS = [p.id for p in PERSONAS]
Row = Mapping[str, object]
Metric = Callable[[list[Row]], float]
Fleet = dict[str, list[list[Row]]]  # persona id: each device's rows


def devices_of(persona_id: str, n: int, seed: int = 7) -> list[Device]:
    """``n`` devices of one persona out of a mixed fleet, so cities and habits vary."""
    fleet = population(n * len(PERSONAS), seed=seed)
    return [d for d in fleet if d.persona_id == persona_id]


def local_time(row: Row) -> datetime:
    ts = row["ts"]
    moment = (
        datetime.fromtimestamp(float(ts), timezone.utc)
        if isinstance(ts, float)
        else datetime.fromisoformat(str(ts))
    )
    return moment.astimezone(ZoneInfo(str(row["tz"]))) if "tz" in row else moment


def app_seconds(rows: Iterable[Row]) -> Iterator[tuple[datetime, float]]:
    """(local start, foreground seconds) of each app row, as the SDK counts them."""
    apps = [(local_time(r), r) for r in rows if r["kind"] == "app"]
    for (start, row), (after, _) in zip(apps, [*apps[1:], (None, None)], strict=True):
        if "duration_s" in row:
            yield start, float(row["duration_s"])  # type: ignore[arg-type]
        elif after is not None:
            yield start, min((after - start).total_seconds(), 1800.0)


# -- the archetypes and the app pools ---------------------------------------------------


def test_personas_are_the_five_documented_archetypes() -> None:
    assert PERSONA_IDS == [
        "commuter",
        "homebody_streamer",
        "night_owl_gamer",
        "weekend_explorer",
        "deal_hunter",
    ]
    assert persona("commuter").name == "Commuting professional"
    assert all(p.name and p.description for p in PERSONAS)
    with pytest.raises(KeyError, match="known: commuter"):
        persona("astronaut")


def test_every_pooled_app_resolves_to_its_category() -> None:
    resolver = AppCategoryResolver()
    assert set(APP_POOLS) == set(CATEGORIES)
    for category, app_ids in APP_POOLS.items():
        assert len(app_ids) >= 5, category
        assert {resolver.resolve(a) for a in app_ids} == {category}
    assert {resolver.resolve(a) for a in LAUNCHERS} == {"system"}
    for p in PERSONAS:  # a preferred id dropped from its pool would silently lose its bias
        pooled = {a for ids in APP_POOLS.values() for a in ids}
        assert set(p.preferred_apps) <= pooled, p.id


def test_daypart_tables_cover_the_day() -> None:
    for p in PERSONAS:
        hours = [h for part in p.dayparts for h in range(part.start_h, part.end_h)]
        assert hours == list(range(24)), p.id


# -- population() -------------------------------------------------------------------------


def test_population_is_deterministic_and_follows_the_mix() -> None:
    fleet = population(200, seed=3)
    assert fleet == population(200, seed=3)
    assert fleet != population(200, seed=4)
    assert Counter(d.persona_id for d in fleet) == dict.fromkeys(PERSONA_IDS, 40)
    assert len({d.device_id for d in fleet}) == len({d.seed for d in fleet}) == 200
    assert {d.tz for d in fleet} == {c.tz for c in CITIES}
    skewed = Counter(
        d.persona_id for d in population(10, seed=1, mix={"commuter": 3, "deal_hunter": 1.5})
    )
    assert skewed == {"commuter": 7, "deal_hunter": 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_devices": -1}, "0 or more"),
        ({"n_devices": 3, "mix": {"astronaut": 1}}, "unknown persona 'astronaut'"),
        ({"n_devices": 3, "mix": {"commuter": -1}}, "0 or more"),
        ({"n_devices": 3, "mix": {"commuter": 0}}, "positive weight"),
    ],
)
def test_population_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        population(**kwargs)


# -- trace_rows() -------------------------------------------------------------------------


def test_same_seed_same_rows_and_different_seeds_differ() -> None:
    device = population(1, seed=11)[0]
    rows = list(trace_rows(device, start=START, weeks=1))
    assert rows == list(trace_rows(device, start=START, weeks=1))
    other = Device(device.device_id, device.persona_id, device.tz, device.seed + 1)
    assert rows != list(trace_rows(other, start=START, weeks=1))


def test_rows_are_time_ordered_local_days_across_daylight_saving() -> None:
    for tz in ("Europe/Paris", "America/New_York"):
        device = Device("dst", "commuter", tz, 5)
        rows = list(trace_rows(device, start=START, weeks=4))
        times = [local_time(r) for r in rows]
        assert times == sorted(times)
        assert {t.date() for t in times} <= {START + timedelta(days=i) for i in range(28)}
        offsets = {t.utcoffset() for t in times}
        assert len(offsets) == 2, tz  # winter and summer time, each row in its own
        assert all(set(r) <= set(COLUMNS) for r in rows)


def test_a_datetime_start_drops_earlier_rows() -> None:
    device = Device("d", "commuter", "Asia/Tokyo", 2)
    start = datetime(2026, 3, 2, 12, tzinfo=ZoneInfo("Asia/Tokyo"))
    rows = list(trace_rows(device, start=start, weeks=1))
    assert min(local_time(r) for r in rows) >= start
    assert max(local_time(r) for r in rows).date() == date(2026, 3, 8)


def test_bad_devices_and_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no simulated city in 'Europe/Oslo'"):
        trace_rows(Device("d", "commuter", "Europe/Oslo", 1), start=START, weeks=1)
    with pytest.raises(KeyError, match="astronaut"):
        write_trace(
            Device("d", "astronaut", "Europe/Paris", 1), tmp_path / "t.csv", start=START, weeks=1
        )
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        write_trace(population(1)[0], tmp_path / "t.parquet", start=START, weeks=1)
    with pytest.raises(ValueError, match="weeks"):
        write_trace(population(1)[0], tmp_path / "t.csv", start=START, weeks=-1)
    assert not (tmp_path / "t.csv").exists()


def test_volume_per_device_day_is_phone_like() -> None:
    for device in population(15, seed=21):
        kinds = Counter(r["kind"] for r in trace_rows(device, start=START, weeks=1))
        assert 80 <= kinds["location"] / 7 <= 320, (device, kinds)
        assert 20 <= kinds["app"] / 7 <= 160, (device, kinds)


def test_fixes_look_like_a_phone_s() -> None:
    rows = [r for d in population(10, seed=5) for r in trace_rows(d, start=START, weeks=1)]
    fixes = [r for r in rows if r["kind"] == "location"]
    accuracy = [float(r["accuracy_m"]) for r in fixes]
    coarse = sum(a >= 300 for a in accuracy)
    assert 0 < coarse < 0.02 * len(fixes)
    assert all(0 < a <= 50_000 for a in accuracy)
    assert 5 <= sorted(accuracy)[len(accuracy) // 2] <= 30
    apps = [r for r in rows if r["kind"] == "app"]
    assert 0.05 < sum("duration_s" in r for r in apps) / len(apps) < 0.8
    resolver = AppCategoryResolver()
    assert any(resolver.resolve(str(r["app"])) == "other" for r in apps)
    events = Counter(r["name"] for r in rows if r["kind"] == "event")
    assert set(events) == set(MICROCONVERSIONS)
    assert all(float(r["value"]) > 0 for r in rows if r.get("name") == "purchase")


# -- replay: every row is a valid trace row -----------------------------------------------


@pytest.mark.parametrize("persona_id", PERSONA_IDS)
def test_replay_accepts_every_row(tmp_path: Path, persona_id: str) -> None:
    """Coarse fixes, repeats and DST included: nothing is rejected, repeats are skipped."""
    suffixes = (".csv", ".jsonl.gz", ".csv.gz")
    for device, suffix in zip(devices_of(persona_id, 3), suffixes, strict=True):
        path = tmp_path / f"{device.device_id}{suffix}"
        written = write_trace(device, path, start=date(2026, 3, 24), weeks=1)  # EU DST: 29th
        report = replay(path, tmp_path / device.device_id).as_dict()
        assert report["rejected_count"] == 0, report["rejected"][:5]
        assert report["ingested"] + report["duplicates"] == written
        assert report["counts"]["location"] > 0 and report["counts"]["app"] > 0


# -- personas behave apart --------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_rows() -> Fleet:
    """Two weeks of six devices of each persona, as rows."""
    return {
        pid: [list(trace_rows(d, start=START, weeks=2)) for d in devices_of(pid, 6, seed=13)]
        for pid in PERSONA_IDS
    }


def per_persona(fleet: Fleet, metric: Metric) -> dict[str, float]:
    return {pid: mean(metric(rows) for rows in devices) for pid, devices in fleet.items()}


def night_share(rows: list[Row]) -> float:
    seconds = list(app_seconds(rows))
    night = sum(s for t, s in seconds if t.hour >= 22 or t.hour < 4)
    return night / sum(s for _, s in seconds)


def grid_cell(row: Row) -> tuple[int, int]:
    lat, lon = float(row["lat"]), float(row["lon"])  # type: ignore[arg-type]
    return int(lat // 0.0018), int(lon * math.cos(math.radians(lat)) // 0.0018)


def weekend_cells(rows: list[Row]) -> float:
    return len({grid_cell(r) for r in good_fixes(rows) if local_time(r).weekday() >= 5})


def good_fixes(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["kind"] == "location" and float(r["accuracy_m"]) < 100]  # type: ignore[arg-type]


def carts(rows: list[Row]) -> float:
    return sum(r.get("name") == "add_to_cart" for r in rows)


def weekday_daytime_away(rows: list[Row]) -> float:
    fixes = [(local_time(r), r) for r in good_fixes(rows)]
    home = Counter(grid_cell(r) for t, r in fixes if t.hour < 5).most_common(1)[0][0]
    day = [grid_cell(r) for t, r in fixes if t.weekday() < 5 and 10 <= t.hour < 16]
    return sum(abs(c[0] - home[0]) + abs(c[1] - home[1]) > 5 for c in day) / len(day)


def test_night_owl_gamers_use_their_phone_most_at_night(fleet_rows: Fleet) -> None:
    shares = per_persona(fleet_rows, night_share)
    assert max(shares, key=shares.__getitem__) == "night_owl_gamer", shares


def test_weekend_explorers_visit_the_most_places_on_weekends(fleet_rows: Fleet) -> None:
    cells = per_persona(fleet_rows, weekend_cells)
    assert max(cells, key=cells.__getitem__) == "weekend_explorer", cells


def test_deal_hunters_fill_the_most_carts(fleet_rows: Fleet) -> None:
    counts = per_persona(fleet_rows, carts)
    assert max(counts, key=counts.__getitem__) == "deal_hunter", counts
    assert counts["deal_hunter"] > 3 * max(v for k, v in counts.items() if k != "deal_hunter")


def test_commuters_spend_weekday_daytime_away_from_home(fleet_rows: Fleet) -> None:
    away = per_persona(fleet_rows, weekday_daytime_away)
    assert away["commuter"] > 0.6, away
    assert away["commuter"] > 2 * max(away["homebody_streamer"], away["night_owl_gamer"]), away


def test_classes_overlap_on_some_weeks() -> None:
    """Holidays, days off and off-type stretches: some commuter weeks look like a homebody's."""
    weeks = []
    for device in devices_of("commuter", 40, seed=2):
        rows = list(trace_rows(device, start=START, weeks=4))
        for week in range(4):
            first, last = START + timedelta(days=7 * week), START + timedelta(days=7 * week + 6)
            weeks.append(
                weekday_daytime_away([r for r in rows if first <= local_time(r).date() <= last])
            )
    weeks.sort()
    assert weeks[0] < 0.5 < 0.7 < weeks[len(weeks) // 2], weeks[:5]


# -- streaming ----------------------------------------------------------------------------


def test_a_fleet_streams_without_holding_rows() -> None:
    started = time.perf_counter()
    rows = sum(
        1 for device in population(200, seed=9) for _ in trace_rows(device, start=START, weeks=1)
    )
    seconds = time.perf_counter() - started
    print(f"\n200 devices x 1 week: {rows} rows in {seconds:.1f} s, {rows / seconds:,.0f} rows/s")
    assert rows > 200 * 7 * 150
