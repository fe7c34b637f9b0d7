"""Load test of sync (issue 8): thousands of devices syncing against the real service; prints
one JSON object.

The service is ``edgepersona backend serve`` (gunicorn, 2 sync workers) on loopback over a
throwaway PostgreSQL database ``ep_load_<random>`` (127.0.0.1:5432; ``--sqlite`` also runs
the same on the SQLite default), with a model v2 published and rolled out to every device, and
the default rate limit (20 uploads per device and hour). Devices:

- ``--devices`` in all (default 5,000), of which ``--sdk-devices`` (default 50) are real
  ``EdgePersona`` instances living synthetic weeks and calling ``sync()`` (``_load_sdk``, in a
  child process), and the rest lightweight devices in one asyncio process (``_load_fleet``)
  whose uploads are built by the SDK's own payload code and whose retries follow the SDK's
  schedule (same ``upload_id``, exponential backoff with jitter, ``Retry-After`` honoured; the
  waits compressed by ``--retry-time-scale``);
- every device registers through ``POST /v1/devices``, then each simulated week uploads its
  aggregate and polls ``GET /v1/models/current`` with its ETag (the first poll downloads v2);
- the whole fleet syncs one week, then the next (``--weeks``), with at most ``--concurrency``
  requests in flight; no week starts after ``--seconds``, and a device still retrying then
  gives up ``--drain`` seconds later.

Figures: uploads accepted per second, p50/p99/max latency per endpoint, answers by status,
network errors by kind, retries; then the reconciliation against the database: the stored
rows equal the distinct uploads the devices were told were stored (201, or 200 for a resend),
none lost, none doubled, none stored that no device counts as acknowledged; each stored
upload holds the outcomes of every playbook offer; one device row per registration.

With ``--timeout`` shorter than the SDK's 10 s, light devices time out on requests the server
may still complete, and resend: the reconciliation then checks the ingest's idempotency.

Usage: python bench/load.py [--devices 5000] [--sdk-devices 50] [--weeks 3] [--seconds 240]
    [--drain 60] [--concurrency 16] [--timeout 10] [--retry-time-scale 0.01] [--sqlite]
    [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import platform
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import _backend_load as servers
from _backend_retrain import base_fleet
from _load_fleet import LightDevice, Round, Traffic, run_light_fleet
from _load_sdk import code_state, first_monday, run_sdk_devices
from _sync_loopback import _release_v2
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

import backend as backend_bench  # bench/backend.py: its PostgreSQL helpers
from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.backend.schema import aggregates
from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.sdk._uploads import iso_week

T = TypeVar("T")
GOALS = {"devices_min": 5000, "lost": 0, "doubled": 0, "stored_unacknowledged": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5000, help="devices in all (5000)")
    parser.add_argument("--sdk-devices", type=int, default=50, help="of which real SDKs (50)")
    parser.add_argument("--weeks", type=int, default=3, help="weeks each device syncs (3)")
    parser.add_argument("--seconds", type=float, default=240, help="no week starts after (240)")
    parser.add_argument("--drain", type=float, default=60, help="retrying past --seconds (60)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument(
        "--retry-time-scale", type=float, default=0.01, help="real s per s of SDK wait (0.01)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="light devices' request timeout, s (10)"
    )
    parser.add_argument("--sqlite", action="store_true", help="also run on a SQLite file")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    if args.sdk_devices > args.devices or not 1 <= args.weeks <= 50:
        sys.exit("--sdk-devices must be at most --devices, and --weeks between 1 and 50")
    # SIGTERM unwinds like Ctrl-C: the ExitStack stops the servers and drops the database.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    load_before = os.getloadavg()
    code = code_state()  # before the run: other helpers may commit while it lasts
    started = time.monotonic()
    postgres = None if args.no_postgres else backend_bench._postgres_server()
    if postgres is None and not args.no_postgres:
        sys.exit("PostgreSQL does not answer at 127.0.0.1:5432: start it, or pass --no-postgres")
    kinds = (["postgresql"] if postgres else []) + (
        ["sqlite"] if args.sqlite or not postgres else []
    )
    vectors, truth = base_fleet()  # before any clock starts: feature vectors phones compute
    runs = {}
    for kind in kinds:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ep-load-")))
            if kind == "postgresql":
                assert postgres is not None
                name = f"ep_load_{secrets.token_hex(6)}"
                stack.enter_context(backend_bench._postgres_database(postgres, name))
                database_url = make_url(postgres).set(database=name).render_as_string(False)
            else:
                database_url = f"sqlite:///{tmp / 'backend.db'}"
            runs[kind] = _run(stack, tmp, database_url, args, vectors, truth)
    result = {
        "benchmark": "load",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_before_after": [
                round(load_before[0], 2),
                round(os.getloadavg()[0], 2),
            ],
        },
        "versions": _versions(postgres),
        "code": code,
        "settings": {
            "devices": args.devices,
            "sdk_devices": args.sdk_devices,
            "weeks": args.weeks,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "drain_seconds": args.drain,
            "retry_time_scale": args.retry_time_scale,
            "light_device_timeout_s": args.timeout,
            "gunicorn_workers": 2,
            "rate_limit_uploads_per_hour": "the default (20)",
        },
        "runs": runs,
        "wall_seconds": round(time.monotonic() - started, 1),
        "goals": GOALS,
    }
    result["goals_met"] = {
        f"{kind}_{goal}": met for kind, run in runs.items() for goal, met in _goals_met(run).items()
    }
    print(json.dumps(result, indent=2))


def _run(
    stack: contextlib.ExitStack,
    tmp: Path,
    database_url: str,
    args: argparse.Namespace,
    vectors: Any,
    truth: list[str],
) -> dict[str, Any]:
    """One fleet run against a fresh service on ``database_url``; its figures."""
    key, public = tmp / "registry.pem", tmp / "registry.pub.json"
    generate_keypair(key, public)
    admin_key = secrets.token_hex(16)
    env = {
        **os.environ,
        "EDGEPERSONA_ADMIN_API_KEY": admin_key,
        "EDGEPERSONA_SIGNING_KEY_PATH": str(key),
    }
    processes = servers.Processes()
    stack.callback(processes.close)
    url = servers.start_backend(processes, database_url, env, tmp / "server.log")
    _release_v2(url, admin_key)
    start = first_monday(args.weeks)
    weeks = [iso_week(_utc(start + dt.timedelta(weeks=w))) for w in range(args.weeks)]
    manifest = json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())
    personas = [p["id"] for p in manifest["personas"]]
    offers = sorted(json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())["offers"])
    light = [
        LightDevice(vectors[i % len(vectors)], truth[i % len(vectors)], seed=i)
        for i in range(args.devices - args.sdk_devices)
    ]
    pool = multiprocessing.get_context("spawn").Pool(1)
    stack.callback(pool.join)
    stack.callback(pool.terminate)  # runs first: a run cut short kills the SDK devices
    sdk_job = pool.apply_async(
        run_sdk_devices,
        (url, load_public_key(public), args.sdk_devices, start, args.weeks, 81),
    )
    began, client_cpu = time.monotonic(), time.process_time()
    traffic, rounds = asyncio.run(
        _cancelled_by_sigterm(
            run_light_fleet(
                url,
                light,
                weeks,
                personas=personas,
                offers=offers,
                concurrency=args.concurrency,
                deadline=began + args.seconds,
                drain_s=args.drain,
                time_scale=args.retry_time_scale,
                timeout_s=args.timeout,
            )
        )
    )
    light_seconds = time.monotonic() - began
    client_cpu = time.process_time() - client_cpu
    sdk = sdk_job.get(timeout=max(60.0, args.seconds + args.drain - light_seconds))
    sdk_acknowledged = {i for i, status in sdk["answered_uploads"] if 200 <= status < 300}
    figures = _traffic_figures(traffic, rounds, light_seconds, len(weeks))
    reconciliation = _reconcile(
        database_url,
        traffic.acknowledged | sdk_acknowledged,
        traffic.upload_ids_sent | set(sdk["sent_ids"]),
        traffic.registrations + sdk["requests"].get("POST /v1/devices 201", 0),
        sum(
            n
            for kind, n in (traffic.errors + Counter(sdk["errors"])).items()
            if "/v1/devices" in kind
        ),
        len(offers),
    )
    server_cpu = _cpu_seconds_of_server(make_url(url).port)
    processes.close()
    return {
        "database": make_url(database_url).get_backend_name(),
        "devices": len(light) + args.sdk_devices,
        "weeks": weeks,
        "light_devices": {"devices": len(light), **figures},
        "sdk_devices": _sdk_figures(sdk),
        "uploads": _upload_totals(traffic, sdk),
        "reconciliation": reconciliation,
        "cpu_seconds": {
            "light_device_client": round(client_cpu, 1),
            "sdk_devices_process": round(sdk["cpu_seconds"], 1),
            "gunicorn_master_and_workers": server_cpu,
            "note": "PostgreSQL's own processes are not counted (other sessions share them)",
        },
    }


def _exit_on_sigterm(*_: object) -> None:
    sys.exit(143)


async def _cancelled_by_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """``work``, cancelled by SIGTERM through the event loop: a handler raising SystemExit
    may land in an object's ``__del__`` while asyncio collects transports, where Python
    ignores it and the run goes on. The exit then happens outside the loop."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if stopped.is_set():
            raise SystemExit(143) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # it restores SIG_DFL: ours again
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _cpu_seconds_of_server(port: int | None) -> float | None:
    """User + system CPU seconds so far of the server listening on ``port``: every process
    in the process group of the one started with ``--port PORT`` (gunicorn and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[entry.name] = (cmdline, int(fields[2]), int(fields[11]) + int(fields[12]))
    group = next(
        (pgid for cmd, pgid, _ in stats.values() if b"--port" in cmd and str(port).encode() in cmd),
        None,
    )
    if group is None:
        return None
    return round(sum(cpu for _, pgid, cpu in stats.values() if pgid == group) / ticks, 1)


def _utc(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(12), dt.timezone.utc).timestamp()


def _traffic_figures(
    traffic: Traffic, rounds: list[Round], seconds: float, weeks: int
) -> dict[str, Any]:
    accepted = traffic.statuses.get("POST /v1/aggregates", Counter())["201"]
    requests = sum(sum(c.values()) for c in traffic.statuses.values())
    return {
        "seconds": round(seconds, 1),
        "weeks_run": len(rounds),
        "stopped_by_deadline": len(rounds) < weeks,
        "accepted_uploads_per_s": round(accepted / seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "rounds": [
            {
                "week": r.week,
                "seconds": round(r.seconds, 1),
                "accepted": r.accepted,
                "accepted_per_s": round(r.accepted / r.seconds, 1),
                "devices_synced": r.synced,
                "devices_gave_up": r.gave_up,
            }
            for r in rounds
        ],
        "latency_ms": {
            route: _percentiles([n / 1e6 for n in times])
            for route, times in sorted(traffic.latency_ns.items())
        },
        "answers": {
            route: dict(sorted(c.items())) for route, c in sorted(traffic.statuses.items())
        },
        "errors": dict(traffic.errors),
        "rounds_retried": traffic.rounds_failed,
    }


def _sdk_figures(sdk: dict[str, Any]) -> dict[str, Any]:
    by_route: dict[str, list[float]] = {}
    for route, s in sdk["latency_s"]:
        by_route.setdefault(route, []).append(s * 1000)
    return {
        "devices": sdk["devices"],
        "seconds": round(sdk["seconds"], 1),
        "rows_fed": sdk["rows_fed"],
        "sync_statuses": sdk["sync_statuses"],
        "sync_retried_after": sdk["sync_retried_after"],
        "sync_ms": _percentiles(sdk["sync_ms"]),
        "answers": dict(sorted(sdk["requests"].items())),
        "latency_ms": {route: _percentiles(ms) for route, ms in sorted(by_route.items())},
        "errors": sdk["errors"],
    }


def _upload_totals(traffic: Traffic, sdk: dict[str, Any]) -> dict[str, Any]:
    """Uploads of the whole fleet, light and SDK devices together."""
    statuses = Counter(traffic.statuses.get("POST /v1/aggregates", Counter()))
    statuses.update(str(status) for _, status in sdk["answered_uploads"])
    errors = Counter(traffic.errors)
    errors.update(sdk["errors"])
    return {
        "attempted": len(traffic.upload_ids_sent) + len(sdk["sent_ids"]),
        "requests": traffic.upload_requests + sum(1 for _ in sdk["answered_uploads"]),
        "accepted": statuses["201"],
        "duplicate": statuses["200"],
        "refused_by_status": {s: n for s, n in sorted(statuses.items()) if s[0] in "45"},
        "network_errors_by_kind": dict(errors),
    }


def _reconcile(
    database_url: str,
    acknowledged: set[str],
    sent: set[str],
    registrations: int,
    registrations_unanswered: int,
    offers: int,
) -> dict[str, Any]:
    """The stored rows against what devices were told: nothing lost, nothing doubled. A
    registration whose answer never arrived may still have made a device row, which no
    device holds the token of (the device registers again): those are counted apart."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored: dict[str, int] = {
                upload_id: n
                for upload_id, n in conn.execute(
                    text("SELECT upload_id, COUNT(*) FROM aggregates GROUP BY upload_id")
                )
            }
            offers_stored = [len(o) for (o,) in conn.execute(select(aggregates.c.outcomes))]
            device_rows = conn.execute(text("SELECT COUNT(*) FROM devices")).scalar_one()
    finally:
        engine.dispose()
    rows = sum(stored.values())
    return {
        "rows": rows,
        "distinct_upload_ids_stored": len(stored),
        "acknowledged_upload_ids": len(acknowledged),
        "lost": len(acknowledged - stored.keys()),
        "doubled": rows - len(stored),
        "stored_unacknowledged": len(stored.keys() - acknowledged),
        "stored_never_sent": len(stored.keys() - sent),
        "rows_equal_acknowledged": rows == len(acknowledged),
        "outcome_entries": sum(offers_stored),
        "every_upload_holds_every_offer": offers_stored == [offers] * rows,
        "device_rows": device_rows,
        "registrations_answered_201": registrations,
        "registrations_unanswered": registrations_unanswered,
        "orphan_device_rows": device_rows - registrations,
        "device_rows_explained": registrations
        <= device_rows
        <= registrations + registrations_unanswered,
    }


def _percentiles(ms: list[float]) -> dict[str, float] | None:
    if not ms:
        return None
    ordered = sorted(ms)
    n = len(ordered)
    return {
        "count": n,
        "p50": round(ordered[n // 2], 2),
        "p99": round(ordered[min(n - 1, int(n * 0.99))], 2),
        "max": round(ordered[-1], 2),
    }


def _goals_met(run: dict[str, Any]) -> dict[str, bool]:
    reconciliation = run["reconciliation"]
    light, sdk = run["light_devices"], run["sdk_devices"]
    last = light["rounds"][-1] if light["rounds"] else None
    return {
        "devices_at_least_5000": run["devices"] >= GOALS["devices_min"],
        "nothing_lost": reconciliation["lost"] == GOALS["lost"],
        "nothing_doubled": reconciliation["doubled"] == GOALS["doubled"],
        "stored_rows_equal_accepted_uploads": reconciliation["rows_equal_acknowledged"]
        and reconciliation["stored_unacknowledged"] == GOALS["stored_unacknowledged"],
        "every_device_row_explained": reconciliation["device_rows_explained"],
        "every_device_synced_every_week": not light["stopped_by_deadline"]
        and last is not None
        and last["devices_gave_up"] == 0
        and set(sdk["sync_statuses"]) <= {"synced"},
    }


def _versions(postgres: str | None) -> dict[str, str | None]:
    server_version = None
    if postgres is not None:
        engine = create_engine(postgres)
        with engine.connect() as conn:
            server_version = str(conn.execute(text("SHOW server_version")).scalar_one())
        engine.dispose()
    names = ("httpx", "flask", "gunicorn", "sqlalchemy", "psycopg", "numpy")
    return {
        **{name: version(name) for name in names},
        "sqlite": sqlite3.sqlite_version,
        "postgresql": server_version,
    }


if __name__ == "__main__":
    main()
