"""Benchmark of the sync backend: prints one JSON object.

- ``ingest``: uploads/s accepted by ``POST /v1/aggregates`` under gunicorn (``edgepersona
  backend serve``, 2 sync workers) on a SQLite file and on PostgreSQL, and p50/p99 latency,
  driven by wrk over loopback (16 connections; every request a distinct valid upload of a
  registered device, about 1 KB). The reference, in the same run and alternating rounds with
  them: a bare Flask app under the same gunicorn settings whose endpoint only parses the same
  JSON. Then the reconciliation: every upload answered 201 is stored, none twice, and the
  stored row count equals the uploads acknowledged (after the requests still in flight when
  wrk stopped are sent again, as a device retries). Beside them, ``one_row_commit_ms``: the
  median time of a one-row durable commit on the same disk or server, the floor under every
  upload whatever the code does (the bare endpoint writes nothing).
- ``models_current_304``: ``GET /v1/models/current`` revalidated with ``If-None-Match`` (a
  model published and promoted to 100% through the admin API): requests/s and p50/p99.
- ``retrain``: seconds and peak resident memory of ``edgepersona backend retrain`` (the real
  command, in a child process) over 100k and 1M stored uploads on each database: the normal
  retrain (``default``: the published model's personas, estimated privately) and one asking
  for another number of personas (``kmeans_k6``: k-means on a sample, as for a first model).
  ``--no-retrain`` leaves it out (most of a full run's time is filling those databases).

Goals: ingest at least 50% of the bare endpoint's rate with nothing lost; a 1M-aggregate
retrain under 60 s and under 2 GB (the normal retrain; the k-means one is reported beside it).
Each database is measured twice: as deployed by default (``EDGEPERSONA_UPLOAD_FLUSH=each``:
an upload is answered once it is on disk) and with ``EDGEPERSONA_UPLOAD_FLUSH=background``
(answered once committed, flushed within a fraction of a second; docs/backend.md,
"Durability"): the ``..._upload_flush_background`` entries. The goals are checked for both.

The rate limit is raised for the run (``EDGEPERSONA_RATE_LIMIT_UPLOADS_PER_HOUR``): a few
thousand devices each send more than the default 20 uploads in the hour. The check itself
still runs on every upload. PostgreSQL is used if it answers at 127.0.0.1:5432 (a throwaway
database ``ep_bench_<random>``, dropped at the end).

Usage: python bench/backend.py [--quick] [--rounds 3] [--seconds 10] [--no-postgres]
       [--no-retrain]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import _backend_load as load
import _backend_retrain as retrain_data
import httpx
import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from edgepersona.backend.keys import generate_keypair
from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR

POSTGRES_SERVERS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
ADMIN_KEY = "bench-admin-key-" + "0" * 16
CONNECTIONS = 16
BACKGROUND = "_upload_flush_background"
DEVICES = 4000
BODIES = 500
GOALS = {
    "ingest_vs_bare_min_ratio": 0.5,
    "lost_uploads": 0,
    "retrain_1m_seconds_max": 60.0,
    "retrain_1m_peak_rss_mib_max": 2048.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5 s; retrain 100k")
    parser.add_argument("--rounds", type=int, help="ingest rounds per server (3)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (10)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--no-retrain", action="store_true", help="ingest and 304 only (no database fills)"
    )
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.seconds or (5 if args.quick else 10)
    sizes = () if args.no_retrain else (100_000,) if args.quick else (100_000, 1_000_000)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk (the load generator of this benchmark)")
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops servers and drops databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ep-bench-backend-")))
        processes = load.Processes()
        stack.callback(processes.close)
        postgres = None if args.no_postgres else _postgres_server()
        new_database = _database_factory(stack, tmp, postgres)
        key = tmp / "registry-key.pem"
        generate_keypair(key, tmp / "registry-key.pub.json")
        fleet = retrain_data.base_fleet()
        databases = ["sqlite"] + (["postgresql"] if postgres else [])
        ingest = _ingest(processes, tmp, key, fleet, databases, new_database, rounds, seconds)
        processes.close()  # before retraining: the servers' CPU and memory back
        retrain = {
            db: {f"{n}": _retrain(new_database(db), key, fleet, n, tmp) for n in sizes}
            for db in databases
        }
        result = {
            "benchmark": "backend",
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
            "settings": {
                "load_generator": "wrk",
                "connections": CONNECTIONS,
                "seconds_per_run": seconds,
                "rounds": rounds,
                "gunicorn_workers": 2,
                "devices": DEVICES,
                "rate_limit_uploads_per_hour": "raised to 1000000 for the run",
            },
            **ingest,
            "retrain": retrain,
            "goals": GOALS,
        }
    result["goals_met"] = _goals_met(result)
    print(json.dumps(result, indent=2))


def _ingest(
    processes: load.Processes,
    tmp: Path,
    key: Path,
    fleet: tuple[np.ndarray, list[str]],
    databases: list[str],
    new_database: Any,
    rounds: int,
    seconds: int,
) -> dict[str, Any]:
    """Alternating wrk rounds on the bare app and each backend; reconciliation; 304 path."""
    env = {
        **os.environ,
        "EDGEPERSONA_RATE_LIMIT_UPLOADS_PER_HOUR": "1000000",
        "EDGEPERSONA_ADMIN_API_KEY": ADMIN_KEY,
        "EDGEPERSONA_SIGNING_KEY_PATH": str(key),
    }
    year, week, _ = dt.datetime.now(dt.timezone.utc).date().isocalendar()
    rng = np.random.default_rng(7)
    vectors, truth = fleet
    picked = rng.integers(len(vectors), size=BODIES)  # each body noised afresh by the SDK
    bodies = load.upload_bodies(
        vectors[picked], [truth[i] for i in picked], f"{year:04d}-W{week:02d}", rng
    )
    bodies_file = tmp / "bodies.txt"
    bodies_file.write_text("\n".join(bodies) + "\n")
    servers = {"bare": {"url": load.start_bare(processes, tmp / "bare.log"), "tokens": None}}
    commits: dict[str, float] = {}
    backends: dict[str, tuple[str, dict[str, str]]] = {}
    for db in databases:
        backends[db] = (db, {})
        backends[db + BACKGROUND] = (db, {"EDGEPERSONA_UPLOAD_FLUSH": "background"})
    for name, (db, setting) in backends.items():
        url = new_database(db)
        served = load.start_backend(processes, url, {**env, **setting}, tmp / f"{name}.log")
        tokens = load.register_devices(served, DEVICES)
        (tmp / f"{name}-tokens.txt").write_text("\n".join(tokens) + "\n")
        servers[name] = {"url": served, "tokens": tokens, "database_url": url}
        if not setting:  # measured in a database of its own beside the served one
            commits[name] = load.commit_ms(new_database(db))
    (tmp / "bare-tokens.txt").write_text("\n".join(servers[databases[0]]["tokens"]) + "\n")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    names = list(servers)
    for round_number in range(rounds):  # alternate, the order turning, so drift hits all
        for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
            run_id = load.new_run_id()
            wrk = load.run_wrk(
                "_wrk_post.lua",
                servers[name]["url"],
                CONNECTIONS,
                seconds,
                [str(tmp / f"{name}-tokens.txt"), str(bodies_file), run_id],
            )
            runs[name].append({"run_id": run_id, "wrk": wrk})
    bare = _rates(runs["bare"])
    result: dict[str, Any] = {"bare_reference": bare, "ingest": {}, "models_current_304": {}}
    for name in backends:
        server = servers[name]
        rates = _rates(runs[name])
        rates["ratio_to_bare"] = round(
            rates["accepted_per_s"]["median"] / bare["accepted_per_s"]["median"], 3
        )
        if name in commits:  # the floor under an upload that waits for the disk
            rates["one_row_commit_ms"] = commits[name]
            result["models_current_304"][name] = _not_modified(
                server, tmp / f"{name}-tokens.txt", rounds, seconds
            )
        rates["reconciliation"] = _reconcile(server, runs[name], bodies)
        result["ingest"][name] = rates
    return result


def _rates(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of 201 answers per second, and of p50/p99 latency, over the runs."""
    accepted = [_count(run["wrk"], "201") / run["wrk"]["duration_us"] * 1e6 for run in runs]
    return {
        "accepted_per_s": _spread(accepted, 0),
        "p50_ms": _spread([run["wrk"]["p50_us"] / 1000 for run in runs], 2),
        "p99_ms": _spread([run["wrk"]["p99_us"] / 1000 for run in runs], 2),
        "answers": sum(run["wrk"]["requests"] for run in runs),
        "socket_errors": sum(
            v for run in runs for k, v in run["wrk"]["errors"].items() if k != "status"
        ),
    }


def _count(wrk: dict[str, Any], status: str) -> int:
    return sum(thread["statuses"].get(status, 0) for thread in wrk["threads"])


def _spread(values: list[float], digits: int) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def _reconcile(
    server: dict[str, Any], runs: list[dict[str, Any]], bodies: list[str]
) -> dict[str, Any]:
    """Compare each upload wrk saw accepted with the rows stored; resend the unanswered."""
    totals = {"answered_201": 0, "answered_other": 0, "unanswered_at_stop": 0, "rows": 0}
    lost = doubled = unexpected = 0
    retried: dict[str, int] = {}
    for run in runs:
        accepted, unanswered = load.accepted_ids(run["run_id"], run["wrk"])
        stored_before = load.stored_ids(server["database_url"], run["run_id"])
        in_flight = {load.upload_id(run["run_id"], t, n) for t, n in unanswered}
        lost += len(accepted - set(stored_before))
        unexpected += len(set(stored_before) - accepted - in_flight)
        for status, n in load.resend(
            server["url"], run["run_id"], unanswered, server["tokens"], bodies
        ).items():
            retried[status] = retried.get(status, 0) + n
        stored = load.stored_ids(server["database_url"], run["run_id"])
        doubled += len(stored) - len(set(stored))
        totals["answered_201"] += len(accepted)
        totals["answered_other"] += sum(len(t["not_201"]) for t in run["wrk"]["threads"])
        totals["unanswered_at_stop"] += len(unanswered)
        totals["rows"] += len(stored)
    acknowledged = totals["answered_201"] + retried.get("200", 0) + retried.get("201", 0)
    return {
        **totals,
        "resent_unanswered": retried,
        "acknowledged": acknowledged,
        "lost": lost,
        "doubled": doubled,
        "stored_without_request": unexpected,
        "rows_equal_acknowledged": totals["rows"] == acknowledged,
    }


def _not_modified(
    server: dict[str, Any], tokens_file: Path, rounds: int, seconds: int
) -> dict[str, Any]:
    """Publish the default bundle, roll it out to all, then revalidate it with wrk."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server["url"], timeout=30.0) as client:
        files = {
            name: (DEFAULT_BUNDLE_DIR / name).read_bytes()
            for name in ("model.onnx", "playbook.json", "manifest.json")
        }
        published = client.post("/v1/admin/models", files=files, headers=admin)
        published.raise_for_status()
        version_number = published.json()["version"]
        client.post(
            f"/v1/admin/models/{version_number}/promote", json={"percent": 100}, headers=admin
        ).raise_for_status()
        current = client.get(
            "/v1/models/current", headers={"Authorization": f"Bearer {server['tokens'][0]}"}
        )
        current.raise_for_status()
        etag = current.headers["ETag"]
    runs = [
        load.run_wrk("_wrk_get.lua", server["url"], CONNECTIONS, seconds, [str(tokens_file), etag])
        for _ in range(rounds)
    ]
    statuses: dict[str, int] = {}
    for run in runs:
        for status, n in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "requests_per_s": _spread([r["requests"] / r["duration_us"] * 1e6 for r in runs], 0),
        "p50_ms": _spread([r["p50_us"] / 1000 for r in runs], 2),
        "p99_ms": _spread([r["p99_us"] / 1000 for r in runs], 2),
        "statuses": statuses,
    }


def _retrain(
    database_url: str, key: Path, fleet: tuple[np.ndarray, list[str]], rows: int, tmp: Path
) -> dict[str, Any]:
    """Fill a fresh database with ``rows`` uploads and publish the default model; then time
    the normal retrain (the published model's personas: private estimates) and one asking
    for another number of personas (k-means, as for a first model)."""
    now = time.time()
    started = time.perf_counter()
    retrain_data.fill(database_url, *fleet, rows, now, seed=rows)
    result: dict[str, Any] = {"fill_seconds": round(time.perf_counter() - started, 1)}
    retrain_data.publish_default(database_url, key, now)
    for name, options in (("default", ()), ("kmeans_k6", ("--k", "6"))):
        measured = retrain_data.timed_retrain(
            database_url, key, tmp / f"retrain-{rows}-{name}.json", options
        )
        report = measured.pop("report")
        result[name] = {
            **measured,
            "method": report.get("method"),
            "published_version": report.get("published_version"),
            "refusal": report.get("refusal"),
            "gates": report.get("gates"),
            "device_weeks": report.get("device_weeks"),
            "devices": report.get("devices"),
            "clustered_device_weeks": report.get("clustered_device_weeks"),
            "distilled_device_weeks": report.get("distilled_device_weeks"),
            "held_out_agreement": report.get("held_out_agreement"),
            "agreement_with_current": report.get("agreement_with_current"),
            "report_seconds": report.get("seconds"),
        }
    return result


def _postgres_server() -> str | None:
    """The URL of a reachable PostgreSQL maintenance database, or None."""
    for url in POSTGRES_SERVERS:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return url
        except OperationalError:
            continue
        finally:
            engine.dispose()
    return None


def _database_factory(stack: contextlib.ExitStack, tmp: Path, postgres: str | None) -> Any:
    """``new(kind)``: the URL of a fresh empty database, SQLite file or PostgreSQL database
    (dropped when ``stack`` closes)."""
    counter = iter(range(1_000_000))

    def new(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp / f'bench-{next(counter)}.db'}"
        assert postgres is not None
        name = f"ep_bench_{secrets.token_hex(6)}"
        stack.enter_context(_postgres_database(postgres, name))
        return make_url(postgres).set(database=name).render_as_string(hide_password=False)

    return new


@contextlib.contextmanager
def _postgres_database(server: str, name: str) -> Iterator[None]:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _versions(postgres: str | None) -> dict[str, str | None]:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    server_version = None
    if postgres is not None:
        engine = create_engine(postgres)
        with engine.connect() as conn:
            server_version = str(conn.execute(text("SHOW server_version")).scalar_one())
        engine.dispose()
    return {
        "flask": version("flask"),
        "gunicorn": version("gunicorn"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "scikit-learn": version("scikit-learn"),
        "numpy": version("numpy"),
        "onnxruntime": version("onnxruntime"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": server_version,
        "wrk": wrk_version[1] if len(wrk_version) > 1 else None,
    }


def _goals_met(result: dict[str, Any]) -> dict[str, bool | None]:
    """The goals, for the deployable configurations; None where this run did not measure."""
    met: dict[str, bool | None] = {}
    for db, figures in result["ingest"].items():
        reconciliation = figures["reconciliation"]
        met[f"ingest_{db}_half_of_bare"] = (
            figures["ratio_to_bare"] >= GOALS["ingest_vs_bare_min_ratio"]
        )
        met[f"ingest_{db}_nothing_lost"] = (
            reconciliation["lost"] == 0
            and reconciliation["doubled"] == 0
            and reconciliation["rows_equal_acknowledged"]
        )
    for db, sizes in result["retrain"].items():
        big = sizes.get("1000000", {}).get("default")
        met[f"retrain_{db}_1m_under_60_s"] = (
            None
            if big is None
            else big["exit_code"] == 0 and big["seconds"] < GOALS["retrain_1m_seconds_max"]
        )
        met[f"retrain_{db}_1m_under_2_gb"] = (
            None
            if big is None or big["peak_rss_mib"] is None
            else big["peak_rss_mib"] < GOALS["retrain_1m_peak_rss_mib_max"]
        )
    return met


if __name__ == "__main__":
    main()
