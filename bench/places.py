"""Benchmark of on-device stay detection against trackintel: prints one JSON object.

Generates synthetic traces (``--devices`` users over ``--days`` days: home, work, evening and
weekend stops, fixes every 1-4 min at places and every 30-60 s on the move, ~15 m jitter,
phone-off gaps), then in one run times:
- ``ours``: fixes/s of ``StayDetector.push`` over every fix, one detector per user, best of
  ``--rounds``; ``finish()`` is not called, like trackintel's default ``include_last=False``.
- ``trackintel``: fixes/s of ``generate_staypoints(method="sliding", dist_threshold=100,
  time_threshold=5, gap_threshold=15)`` on a positionfixes GeoDataFrame of the same fixes,
  built before timing, best of ``--rounds``.
- ``matched``: the share of trackintel's stay points that ours reproduces: same user, start
  and end within 60 s and centres within 25 m; ``exact_share`` asks for identical start and
  end and centres within 1 m.
Every fix is accurate (5-50 m), so both detectors see the same input.

Usage: python bench/places.py [--devices 20] [--days 14] [--rounds 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import bisect
import importlib.metadata
import json
import math
import os
import platform
import random
import time
from typing import Any

from edgepersona.sdk._location import haversine_m
from edgepersona.sdk._places import Fix, Stay, StayDetector

T0 = 1_772_409_600  # 2026-03-02 00:00 UTC, a Monday
DAY = 86_400
METRES_PER_DEGREE = 111_195.0
GOALS = {"speedup_min": 10.0, "matched_share_min": 0.90}
MATCH_S, MATCH_M = 60.0, 25.0
CITIES = [  # a spread of latitudes, both hemispheres, one next to the antimeridian
    (48.8566, 2.3522),
    (40.7128, -74.0060),
    (-33.8688, 151.2093),
    (35.6762, 139.6503),
    (-23.5505, -46.6333),
    (69.6492, 18.9553),
    (-18.1416, 178.4419),
    (1.3521, 103.8198),
]

Point = tuple[float, float]


def offset(point: Point, north_m: float, east_m: float) -> Point:
    lat, lon = point
    lat2 = lat + north_m / METRES_PER_DEGREE
    lon2 = lon + east_m / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return lat2, (lon2 + 180.0) % 360.0 - 180.0


class Device:
    """One synthetic user's fixes, written in time order."""

    def __init__(self, rng: random.Random, city: Point) -> None:
        self.rng, self.fixes = rng, list[Fix]()

        def spot(km: float) -> Point:
            return offset(city, rng.uniform(-km, km) * 1000, rng.uniform(-km, km) * 1000)

        self.home, self.work = spot(5), spot(15)
        self.stops = [spot(10) for _ in range(3)]

    def fix(self, ts: float, at: Point, jitter_m: float) -> None:
        rng = self.rng
        lat, lon = offset(at, rng.gauss(0, jitter_m), rng.gauss(0, jitter_m))
        self.fixes.append(Fix(float(round(ts)), lat, lon, float(rng.randint(5, 50))))

    def stay(self, at: Point, start: float, end: float) -> float:
        """Fixes at ``at`` from ``start`` to ``end``, once in ten with the phone off a while."""
        rng, ts = self.rng, start
        off_from = start + rng.uniform(0, end - start) if rng.random() < 0.1 else end
        off_until = off_from + rng.uniform(1200, 5400)
        while ts < end:
            if not off_from <= ts < off_until:
                self.fix(ts, at, 11.0)
            ts += rng.uniform(60, 240)
        return end

    def move(self, a: Point, b: Point, start: float) -> float:
        rng = self.rng
        speed = rng.uniform(8, 15)
        arrive = start + haversine_m(*a, *b) / speed
        ts = start + rng.uniform(30, 60)
        while ts < arrive:
            share = (ts - start) / (arrive - start)
            self.fix(ts, (a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share), 8.0)
            ts += rng.uniform(30, 60)
        return arrive

    def day(self, midnight: float, weekday: bool) -> None:
        """Home, work on weekdays, sometimes a stop on the way home, home again."""
        rng, h = self.rng, 3600.0
        if weekday:
            leave = self.stay(self.home, midnight, midnight + rng.uniform(7, 8.5) * h)
            t = self.move(self.home, self.work, leave)
            t = self.stay(self.work, t, midnight + rng.uniform(16.5, 18.5) * h)
        else:
            t = self.stay(self.home, midnight, midnight + rng.uniform(10, 13) * h)
        if rng.random() < 0.6:
            stop = rng.choice(self.stops)
            here = self.work if weekday else self.home
            t = self.move(here, stop, t)
            t = self.stay(stop, t, t + rng.uniform(0.5, 3) * h)
            t = self.move(stop, self.home, t)
        elif weekday:
            t = self.move(self.work, self.home, t)
        self.stay(self.home, t, midnight + DAY)


def generate(devices: int, days: int, seed: int) -> list[list[Fix]]:
    traces = []
    for user in range(devices):
        device = Device(random.Random(seed * 1_000 + user), CITIES[user % len(CITIES)])
        for d in range(days):
            device.day(T0 + d * DAY, weekday=d % 7 < 5)
        traces.append(device.fixes)
    return traces


def run_ours(traces: list[list[Fix]]) -> tuple[float, list[list[Stay]]]:
    start = time.perf_counter()
    found = []
    for fixes in traces:
        push, stays = StayDetector().push, []
        for fix in fixes:
            stay = push(fix)
            if stay is not None:
                stays.append(stay)
        found.append(stays)
    return time.perf_counter() - start, found


def run_trackintel(traces: list[list[Fix]], rounds: int) -> dict[str, Any]:
    try:
        import geopandas as gpd
        import pandas as pd
        import trackintel as ti
    except ImportError as exc:
        return {"available": False, "error": f"trackintel is not importable: {exc}"}
    users = [user for user, fixes in enumerate(traces) for _ in fixes]
    every = [fix for fixes in traces for fix in fixes]
    frame = gpd.GeoDataFrame(
        {"user_id": users, "tracked_at": pd.to_datetime([f.ts for f in every], unit="s", utc=True)},
        geometry=gpd.points_from_xy([f.lon for f in every], [f.lat for f in every]),
        crs="EPSG:4326",
    )
    pfs = ti.Positionfixes(frame)
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        _, sp = ti.preprocessing.generate_staypoints(
            pfs, method="sliding", dist_threshold=100, time_threshold=5, gap_threshold=15
        )
        seconds.append(time.perf_counter() - start)
    epoch = pd.Timestamp(0, tz="UTC")
    stays: list[list[Stay]] = [[] for _ in traces]
    for row in sp.itertuples():
        start_s = (row.started_at - epoch) / pd.Timedelta(seconds=1)
        end_s = (row.finished_at - epoch) / pd.Timedelta(seconds=1)
        stays[int(row.user_id)].append(Stay(start_s, end_s, row.geometry.y, row.geometry.x, 0))
    return {"available": True, "seconds": min(seconds), "stays": stays}


def match(theirs: list[list[Stay]], ours: list[list[Stay]], time_s: float, dist_m: float) -> int:
    """How many of ``theirs`` have a stay of ours with the same user, close in time and place."""
    matched = 0
    for their_stays, our_stays in zip(theirs, ours, strict=True):
        starts = [stay.start for stay in our_stays]
        for stay in their_stays:
            low = bisect.bisect_left(starts, stay.start - time_s)
            high = bisect.bisect_right(starts, stay.start + time_s)
            matched += any(
                abs(mine.end - stay.end) <= time_s
                and haversine_m(mine.lat, mine.lon, stay.lat, stay.lon) <= dist_m
                for mine in our_stays[low:high]
            )
    return matched


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("edgepersona", "trackintel", "pandas", "geopandas", "shapely", "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    traces = generate(args.devices, args.days, args.seed)
    n = sum(len(fixes) for fixes in traces)
    ours_s, ours = min((run_ours(traces) for _ in range(args.rounds)), key=lambda run: run[0])
    peer = run_trackintel(traces, args.rounds)

    result: dict[str, Any] = {
        "benchmark": "places",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": versions(),
        "trace": {"devices": args.devices, "days": args.days, "fixes": n, "seed": args.seed},
        "ours": {
            "fixes_per_s": round(n / ours_s),
            "seconds": round(ours_s, 4),
            "stays": sum(map(len, ours)),
        },
        "goals": GOALS,
    }
    if not peer["available"]:
        result["trackintel"] = {"available": False, "error": peer["error"]}
        result["goals_met"] = {"speedup": None, "matched": None, "all": False}
        print(json.dumps(result, indent=2))
        return
    theirs = peer["stays"]
    count = sum(map(len, theirs))
    share = match(theirs, ours, MATCH_S, MATCH_M) / count if count else 1.0
    exact = match(theirs, ours, 0.0, 1.0) / count if count else 1.0
    speedup = peer["seconds"] / ours_s
    result["trackintel"] = {
        "available": True,
        "call": 'generate_staypoints(method="sliding", dist_threshold=100, '
        "time_threshold=5, gap_threshold=15)",
        "fixes_per_s": round(n / peer["seconds"]),
        "seconds": round(peer["seconds"], 4),
        "stays": count,
    }
    result["speedup"] = round(speedup, 1)
    result["matched"] = {
        "rule": f"same user, start and end within {MATCH_S:.0f} s, centres within {MATCH_M:.0f} m",
        "share": round(share, 4),
        "exact_share": round(exact, 4),
    }
    result["goals_met"] = {
        "speedup": speedup >= GOALS["speedup_min"],
        "matched": share >= GOALS["matched_share_min"],
    }
    result["goals_met"]["all"] = all(result["goals_met"].values())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
