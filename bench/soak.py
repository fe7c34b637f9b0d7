"""Soak test of the SDK (issue 8): one ``EdgePersona`` lives a simulated year; prints one JSON
object with its database size and its process's memory after each simulated month.

The phone is a synthetic user of ``edgepersona.edge_models.population`` (fixes, app switches,
screens and events, with its gaps and duplicates); its rows go through the SDK's public API
with a ``ManualClock`` (``_sync_devices``: as bench/sync.py feeds its phones), every consent
granted, a decision every six hours with some offers answered, default retention settings,
and ``sync()`` every Monday with the real service: ``edgepersona backend serve`` (gunicorn,
2 workers, SQLite) in a child process, with a model v2 published, so the first sync downloads
and verifies a bundle and the rest upload and poll. The server runs on the wall clock, so the
simulated year is the one that ends this week, and its per-hour rate limit is raised (a year
of weekly uploads goes by in minutes).

After every 4 simulated weeks ("month"): the database's bytes on disk (file, WAL, shared
memory), its pages and free pages, rows per table, and this process's resident memory
(VmRSS after a garbage collection, and the peak VmHWM), the Python heap's allocated
blocks, and what ``tracemalloc`` traces (started when the phone opens) now and at its peak
during the month. The server's memory is its own process's and is not counted.

Verdicts: the database levels off (it grew by at most 10% over the last 3 months, while raw
rows are kept 35 days and hourly rollups 90); memory does not grow (RSS, allocated blocks and
traced memory at the end within 10% of month 3's); every weekly sync reached the server.

Usage: python bench/soak.py [--days 364] [--seed 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import _backend_load as servers
from _load_sdk import code_state, first_monday
from _sync_devices import _live_until, _open_phone, _Phone, _sync_instant
from _sync_loopback import CountingTransport, Loopback, _release_v2

from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.edge_models.population import population
from edgepersona.sdk import ManualClock

WEEKS_PER_MONTH = 4
GROWTH_MAX = 0.10  # relative growth allowed over the last 3 months (size) / since month 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=364, help="days simulated (364)")
    parser.add_argument("--seed", type=int, default=3, help="which synthetic phone (3)")
    args = parser.parse_args()
    weeks = max(1, min(52, -(-args.days // 7)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the server
    started = time.monotonic()
    code = code_state()  # before the run: other helpers may commit while it lasts
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ep-soak-")))
        url, public_key = _serve(stack, tmp)
        device = population(args.seed + 1, seed=args.seed)[args.seed]
        start = first_monday(weeks)
        backend = Loopback(url, public_key, ManualClock(0.0))  # the server's clock: unused
        transport = CountingTransport()
        stack.callback(transport.close)
        tracemalloc.start()  # from the phone's opening: its allocations, not the imports'
        stack.callback(tracemalloc.stop)
        phone = _open_phone(tmp, backend, device, transport, start, weeks, stack)
        samples, statuses = _live(phone, tmp / device.device_id, start, weeks)
        uploads_answered = Counter(e.status for e in transport.log if e.path == "/v1/aggregates")
    result: dict[str, Any] = {
        "benchmark": "soak",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "code": code,
        "setup": {
            "days": weeks * 7,
            "weeks": weeks,
            "device": {"persona": device.persona_id, "tz": device.tz, "seed": device.seed},
            "first_monday": start.isoformat(),
            "rows_fed": phone.rows_fed,
            "rows_refused": phone.rows_refused,
            "server": "edgepersona backend serve (gunicorn, 2 workers, SQLite), child process",
            "retention": "SDK defaults: raw 35 days, hourly rollups 90, daily rollups 400",
        },
        "months": samples,
        "sync_statuses": dict(statuses),
        "upload_answers": {str(k): v for k, v in sorted(uploads_answered.items())},
        "seconds": round(time.monotonic() - started, 1),
    }
    verdict = result["verdict"] = _verdict(samples)
    memory = [verdict[f"{k}_growth_since_month_3"] for k in ("rss", "allocated_blocks", "traced")]
    result["goals_met"] = {
        "database_levels_off": _within(verdict["database_growth_last_3_months"]),
        "memory_does_not_grow": all(_within(g) for g in memory),
        "every_weekly_sync_reached_the_server": set(statuses) <= {"synced"},
    }
    print(json.dumps(result, indent=2))


def _serve(stack: ExitStack, tmp: Path) -> tuple[str, bytes]:
    """The service in a child process, with model v2 published; its URL and public key."""
    key, public = tmp / "registry.pem", tmp / "registry.pub.json"
    generate_keypair(key, public)
    admin_key = secrets.token_hex(16)
    env = {
        **os.environ,
        "EDGEPERSONA_ADMIN_API_KEY": admin_key,
        "EDGEPERSONA_SIGNING_KEY_PATH": str(key),
        "EDGEPERSONA_RATE_LIMIT_UPLOADS_PER_HOUR": "1000",
    }
    processes = servers.Processes()
    stack.callback(processes.close)
    url = servers.start_backend(processes, f"sqlite:///{tmp / 'backend.db'}", env, tmp / "log")
    _release_v2(url, admin_key)
    return url, load_public_key(public)


def _live(
    phone: _Phone, data_dir: Path, start: Any, weeks: int
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The phone lives ``weeks`` weeks, syncing every Monday; a sample every month."""
    statuses: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    for week in range(weeks):
        sync_at = _sync_instant(start, week)
        _live_until(phone, sync_at)
        phone.clock.set(sync_at)
        statuses[phone.sdk.sync().status] += 1
        if (week + 1) % WEEKS_PER_MONTH == 0 or week + 1 == weeks:
            phone.sdk.flush()
            samples.append(
                {
                    "month": len(samples) + 1,
                    "day": (week + 1) * 7,
                    "seconds": round(time.monotonic() - began, 1),
                    **_database(data_dir),
                    **_memory(),
                }
            )
    return samples, statuses


def _database(data_dir: Path) -> dict[str, Any]:
    """Bytes on disk of the SDK's files, pages, and rows per table (read-only connection)."""
    files = {p.name: p.stat().st_size for p in sorted(data_dir.iterdir()) if p.is_file()}
    db = next(p for p in data_dir.iterdir() if p.suffix == ".db")
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return {
        "db_bytes": sum(files.values()),
        "db_file_bytes": files[db.name],
        "files_bytes": files,
        "pages": pages,
        "free_pages": free,
        "rows": {t: n for t, n in rows.items() if n},
    }


def _memory() -> dict[str, Any]:
    """This process's memory now; the traced heap's peak since the last sample."""
    gc.collect()
    traced, peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    status = Path("/proc/self/status").read_text()
    kib = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    return {
        "rss_mib": round(kib["VmRSS"] / 1024, 1),
        "peak_rss_mib": round(kib["VmHWM"] / 1024, 1),
        "allocated_blocks": sys.getallocatedblocks(),
        "traced_mib": round(traced / 2**20, 2),
        "traced_peak_mib": round(peak / 2**20, 2),
    }


def _within(growth: float | None) -> bool:
    """Growth measured and at most ``GROWTH_MAX``; a run too short to measure it fails."""
    return growth is not None and growth <= GROWTH_MAX


def _verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth of the database over the last 3 months, and of memory since month 3: the
    relative change from an earlier sample to the last; None if the run is too short."""

    def growth(key: str, since: int) -> float | None:
        if not 0 <= since < len(samples) - 1:
            return None
        before, last = samples[since][key], samples[-1][key]
        return round((last - before) / before, 3)

    return {
        "database_growth_last_3_months": growth("db_bytes", len(samples) - 4),
        "database_file_alone_growth_last_3_months": growth("db_file_bytes", len(samples) - 4),
        "database_bytes_first_last": [samples[0]["db_bytes"], samples[-1]["db_bytes"]],
        "rss_growth_since_month_3": growth("rss_mib", 2),
        "allocated_blocks_growth_since_month_3": growth("allocated_blocks", 2),
        "traced_growth_since_month_3": growth("traced_mib", 2),
        "growth_max": GROWTH_MAX,
    }


if __name__ == "__main__":
    main()
