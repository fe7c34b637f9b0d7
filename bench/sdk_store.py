"""Benchmark of the SDK store: prints one JSON object.

Figures (each with its unit), measured in one run so that ratios hold on a noisy machine:
- ``track_rate``: events/s through the public ``track_event`` API, sustained over ``--events``
  calls including the final commit, and in the same run (alternating rounds) the events/s of
  raw ``sqlite3.executemany`` in 1,000-row batches into the same schema: the physical reference.
- ``track_app_latency``: p50/p99 of one ``track_app`` call with the writer thread running.
- ``replay``: rows/s of ``edgepersona replay`` on a generated phone trace (one synthetic
  commuter over years) of at least ``--replay-rows`` rows, median of ``--replay-rounds``
  fresh replays (each into a new database), and peak RSS of replay subprocesses at two
  trace lengths (must not grow with the length).
- ``disk``: bytes on disk per event before and after retention folds raw rows into rollups.

Usage: python bench/sdk_store.py [--events 1000000] [--replay-rows 1000000] [--rounds 2]
    [--replay-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from edgepersona.edge_models.population import population
from edgepersona.edge_models.population import write_trace as write_trace_of
from edgepersona.sdk import EdgePersona, ManualClock
from edgepersona.sdk._schema import migrate

T0 = 1_772_438_400.0
ROWS_PER_DEVICE_WEEK = 1_900  # what the synthetic population writes, roughly
GOALS = {
    "track_vs_executemany_min_ratio": 0.30,
    "track_app_p99_us_max": 20.0,
    "replay_rows_per_s_min": 100_000,
}


def raw_executemany(path: Path, n: int) -> float:
    """Events/s of plain executemany into the SDK's events table, same pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    rows = [(T0 + i * 0.5, 0, "view", float(i)) for i in range(n)]
    start = time.perf_counter()
    for i in range(0, n, 1000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (ts, utc_offset, name, value) VALUES (?, ?, ?, ?)",
            rows[i : i + 1000],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def public_api(data_dir: Path, n: int) -> float:
    """Events/s through track_event, from the first call to the end of the final commit."""
    clock = ManualClock(T0 + n)
    sdk = EdgePersona.open(data_dir, "bench", clock=clock, tz="Europe/Paris")
    sdk.consent.grant("personalization")
    track = sdk.track_event
    start = time.perf_counter()
    for i in range(n):
        track("view", float(i), ts=T0 + i * 0.5)
    sdk.flush()
    elapsed = time.perf_counter() - start
    sdk.close()
    return n / elapsed


def track_app_latency(data_dir: Path, calls: int) -> dict[str, float]:
    clock = ManualClock(T0 + calls + 20_000)
    sdk = EdgePersona.open(data_dir, "bench", clock=clock, tz="Europe/Paris")
    sdk.consent.grant("personalization")
    apps = ["com.whatsapp", "com.spotify.music", "com.instagram.android", "org.example.app"]
    timer = time.perf_counter_ns
    for i in range(20_000):  # warm-up: caches, allocator, writer thread
        sdk.track_app(apps[i % 4], ts=T0 + i)
    samples = []
    for i in range(calls):
        ts = T0 + 20_000 + i
        app = apps[i % 4]
        start = timer()
        sdk.track_app(app, ts=ts)
        samples.append(timer() - start)
    sdk.close()
    samples.sort()
    return {
        "calls": calls,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "p999_us": samples[int(len(samples) * 0.999)] / 1000,
        "max_us": samples[-1] / 1000,
    }


def write_trace(path: Path, rows: int, seed: int = 1) -> int:
    """A realistic phone trace of at least ``rows`` rows: one synthetic commuter's life
    (fixes, app switches, screens and events, with its gaps, jitter and duplicates), long
    enough to reach the size. Returns the rows written."""
    device = next(d for d in population(20, seed=seed) if d.persona_id == "commuter")
    weeks = max(1, math.ceil(rows / ROWS_PER_DEVICE_WEEK))
    return write_trace_of(device, path, start=date(2016, 1, 4), weeks=weeks)


REPLAY_CHILD = """
import json, resource, sys, time
from pathlib import Path
from edgepersona.sdk import replay
start = time.perf_counter()
report = replay(Path(sys.argv[1]), Path(sys.argv[2]), tz="Europe/Paris")
print(json.dumps({
    "rows": report.ingested + report.duplicates + report.rejected_count,
    "seconds": time.perf_counter() - start,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def replay_in_child(trace: Path, data_dir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", REPLAY_CHILD, str(trace), str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def disk_figures(data_dir: Path, n: int) -> dict[str, float]:
    """Bytes per event with raw rows, then after retention folded them into rollups."""
    clock = ManualClock(T0)
    sdk = EdgePersona.open(data_dir, "bench", clock=clock, tz="Europe/Paris")
    sdk.consent.grant("personalization")
    spacing = 30 * 86400 / n  # a month of events
    names = ["view", "add_to_cart", "purchase", "offer_shown", "offer_accepted"]
    for i in range(n):
        sdk.track_event(names[i % 5], float(i % 100), ts=T0 - 30 * 86400 + i * spacing)
    sdk.maintain()
    db = data_dir / "edgepersona.db"
    sdk._store.read(lambda d: d.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    before = db.stat().st_size
    clock.advance(36 * 86400)
    sdk.maintain()
    sdk._store.read(lambda d: d.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    after = db.stat().st_size
    sdk.close()
    return {
        "events": n,
        "bytes_per_event_raw": before / n,
        "bytes_per_event_after_rollup": after / n,
        "db_bytes_raw": before,
        "db_bytes_after_rollup": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--replay-rows", type=int, default=1_000_000)
    parser.add_argument("--latency-calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replay-rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ep-bench-") as tmp_name:
        tmp = Path(tmp_name)
        raw_rates, api_rates = [], []
        public_api(tmp / "warm", 20_000)
        for r in range(args.rounds):  # alternate so drift hits both alike
            raw_rates.append(raw_executemany(tmp / f"raw{r}.db", args.events))
            api_rates.append(public_api(tmp / f"api{r}", args.events))
        latency = track_app_latency(tmp / "latency", args.latency_calls)

        small_rows = max(args.replay_rows // 10, 1000)
        write_trace(tmp / "big.csv", args.replay_rows)
        write_trace(tmp / "small.csv", small_rows)
        bigs, smalls = [], []
        for r in range(args.replay_rounds):  # alternate: drift hits both lengths alike
            bigs.append(replay_in_child(tmp / "big.csv", tmp / f"replay-big{r}"))
            smalls.append(replay_in_child(tmp / "small.csv", tmp / f"replay-small{r}"))
        disk = disk_figures(tmp / "disk", min(args.events, 1_000_000))

    raw_median = statistics.median(raw_rates)
    replay_rates = [run["rows"] / run["seconds"] for run in bigs]
    big_rss = max(run["peak_rss_mib"] for run in bigs)  # the worst of each length
    small_rss = max(run["peak_rss_mib"] for run in smalls)
    api_median = statistics.median(api_rates)
    result = {
        "benchmark": "sdk_store",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "track_rate": {
            "events_per_round": args.events,
            "public_api_events_per_s": {
                "median": round(api_median),
                "min": round(min(api_rates)),
                "max": round(max(api_rates)),
            },
            "raw_executemany_events_per_s": {
                "median": round(raw_median),
                "min": round(min(raw_rates)),
                "max": round(max(raw_rates)),
            },
            "ratio": round(api_median / raw_median, 3),
            "note": "public API includes validation, consent, buffering and rollup upkeep",
        },
        "track_app_latency": {k: round(v, 2) for k, v in latency.items()},
        "replay": {
            "rows": bigs[0]["rows"],
            "rounds": args.replay_rounds,
            "rows_per_s": {
                "median": round(statistics.median(replay_rates)),
                "min": round(min(replay_rates)),
                "max": round(max(replay_rates)),
            },
            "peak_rss_mib": round(big_rss, 1),
            "small_trace_rows": smalls[0]["rows"],
            "small_trace_peak_rss_mib": round(small_rss, 1),
            "peak_rss_ratio_big_over_small": round(big_rss / small_rss, 3),
        },
        "disk": {k: round(v, 2) for k, v in disk.items()},
        "goals": GOALS,
    }
    result["goals_met"] = {
        "track_ratio": result["track_rate"]["ratio"] >= GOALS["track_vs_executemany_min_ratio"],
        "track_app_p99": latency["p99_us"] <= GOALS["track_app_p99_us_max"],
        "replay_rate": result["replay"]["rows_per_s"]["median"] >= GOALS["replay_rows_per_s_min"],
        "replay_memory_flat": result["replay"]["peak_rss_ratio_big_over_small"] < 1.2,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
