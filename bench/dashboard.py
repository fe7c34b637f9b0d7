"""Benchmark of the operator dashboard on a large fleet: prints one JSON object.

``--devices`` devices upload once a week for the 12 weeks of the dashboard's window, after
``--history`` older weeks (so the tables hold more than the window); each upload has the
outcomes of every offer of the default playbook and its persona label drawn by the
SDK's randomized response at epsilon 1 (a 60/40 mix over two personas). Rows are written with
COPY (PostgreSQL) or executemany (SQLite) before any clock starts, then the tables are analysed.

Timed, alternating so that each variant sees the same machine: ``GET /dashboard`` through the
Flask test client (every query and the rendering) and the persona-mix query alone, on the
schema's indexes, and with one candidate index more: ``aggregates (week, device_id)``, or the
covering ``aggregates (week, epsilon, model_version)`` (PostgreSQL: ``INCLUDE (id)``; SQLite
keeps the row id in every index), which lets both per-week groups skip the wide rows;
references: ``GET /healthz`` (one request doing almost nothing) and the persona mix as the
page made it before (``old_persona_sample``: the newest model run on each week's 2,000 uploads
of the lowest device ids, as commit c9dfd14 read them). Reported: medians with
min and max, in milliseconds; each index's size; PostgreSQL's plan of the persona query on
each variant, with the pages it touched.

Usage: python bench/dashboard.py [--devices 20000] [--history 12] [--database postgresql]
(``--database sqlite`` for a temporary SQLite file; PostgreSQL is the server at
``EDGEPERSONA_TEST_POSTGRES_URL`` or 127.0.0.1:5432, on a database made for the run and dropped.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, Text, cast, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from edgepersona.backend import create_app, registry
from edgepersona.backend.fleet import WEEKS, recent_weeks
from edgepersona.backend.migrations import migrate
from edgepersona.backend.persona_mix import _labels_query, read_reports
from edgepersona.backend.schema import aggregates, devices, models
from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.sdk import ManualClock
from edgepersona.sdk._inference import PersonaModel
from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import PERSONA_SHARE, randomized_response

NOW = dt.datetime(2026, 3, 5, 14, tzinfo=dt.timezone.utc).timestamp()  # a Thursday
ADMIN_KEY = "bench-admin-key-" + "x" * 32
DEVICES_PER_BATCH = 2_000
INDEXES = {  # variant -> (index name, columns, PostgreSQL INCLUDE clause)
    "schema_indexes": None,
    "week_device": ("bench_week_device", "week, device_id", ""),
    "week_channel": ("bench_week_channel", "week, epsilon, model_version", " INCLUDE (id)"),
}
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000, help="devices uploading weekly")
    parser.add_argument("--history", type=int, default=12, help="older weeks before the window")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the variants")
    parser.add_argument("--per-round", type=int, default=3, help="timed pages per variant a round")
    args = parser.parse_args()

    weeks = recent_weeks(NOW, WEEKS + args.history)
    with _database(args.database) as url:
        engine = create_engine(url)
        started = time.perf_counter()
        fill_seconds = _fill(engine, args.devices, weeks)
        app = create_app(
            {"DATABASE_URL": url, "ADMIN_API_KEY": ADMIN_KEY, "CLOCK": ManualClock(NOW)}
        )
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
        page = client.get("/dashboard", headers=bearer)
        assert page.status_code == 200, page.status_code
        window = weeks[-WEEKS:]

        def persona_query() -> None:
            with engine.begin() as conn:
                read_reports(conn, window)

        timings: dict[str, dict[str, list[float]]] = {variant: {} for variant in INDEXES}
        plans, index_mb = {}, {}
        for _ in range(args.rounds):
            for variant, timed in timings.items():
                _set_index(engine, variant)
                plans[variant] = _plan(engine, window)
                index_mb[variant] = _index_mb(engine, variant)
                for name, call in (
                    ("page", lambda: client.get("/dashboard", headers=bearer)),
                    ("persona_query", persona_query),
                    ("old_persona_sample", lambda: _old_persona_sample(engine, window)),
                    ("healthz", lambda: client.get("/healthz")),
                ):
                    call()  # warm
                    timed.setdefault(name, []).extend(_times(call, args.per_round))
        engine.dispose()
    result = {
        "benchmark": "dashboard",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("flask", "sqlalchemy", "psycopg", "numpy")},
        },
        "setup": {
            "database": args.database,
            "devices": args.devices,
            "window_weeks": WEEKS,
            "history_weeks": args.history,
            "uploads_in_window": args.devices * WEEKS,
            "uploads_stored": args.devices * len(weeks),
            "offers_per_upload": len(_offers()),
            "fill_seconds": round(fill_seconds, 1),
            "setup_seconds": round(time.perf_counter() - started, 1),
        },
        "ms": {
            variant: {name: _summary(values) for name, values in timed.items()}
            for variant, timed in timings.items()
        },
        "index_mb": index_mb,
        "persona_query_plans": plans if args.database == "postgresql" else None,
    }
    print(json.dumps(result, indent=2))


@contextmanager
def _database(kind: str) -> Iterator[str]:
    """A fresh, empty database URL for the run; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ep-bench-dashboard-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'backend.db'}"
        return
    server = os.environ.get("EDGEPERSONA_TEST_POSTGRES_URL", POSTGRES)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"ep_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _offers() -> list[str]:
    return sorted(json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())["offers"])


def _fill(engine: Engine, device_count: int, weeks: tuple[str, ...]) -> float:
    """Store the fleet's uploads, week after week (ids grow with time, as in service)."""
    started = time.perf_counter()
    migrate(engine)
    files = {
        name: (DEFAULT_BUNDLE_DIR / name).read_bytes()
        for name in ("model.onnx", "playbook.json", "manifest.json")
    }
    with engine.begin() as conn:
        registry.publish(conn, files, Ed25519PrivateKey.generate(), NOW - 90 * 86_400)
    manifest = json.loads(files["manifest.json"])
    labels = [p["id"] for p in manifest["personas"]]
    offers = _offers()
    rng = np.random.default_rng(7)
    device_ids = [uuid.UUID(int=int(v)).hex for v in rng.integers(0, 2**63, size=device_count)]
    held = [labels[2] if rng.random() < 0.6 else labels[3] for _ in device_ids]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        rows = [
            {"id": d, "token_sha256": secrets.token_hex(32), "created_at": 0.0} for d in device_ids
        ]
        conn.execute(insert(devices), rows)
    next_id = 1
    for week in weeks:
        monday = dt.datetime.strptime(week + "-1", "%G-W%V-%u").replace(tzinfo=dt.timezone.utc)
        for start in range(0, device_count, DEVICES_PER_BATCH):
            batch = range(start, min(start + DEVICES_PER_BATCH, device_count))
            features = np.round(rng.laplace(0.0, 30.0, size=(len(batch), len(FEATURES))), 2)
            received = monday.timestamp() + rng.uniform(0, 7 * 86_400, size=len(batch))
            aggregate_rows: list[tuple[Any, ...]] = []
            for row, device in enumerate(batch):
                label = randomized_response(held[device], labels, PERSONA_SHARE * 1.0, rng)
                counts = rng.laplace(0, 20, (len(offers), 2))
                aggregate_rows.append(
                    (
                        next_id,
                        device_ids[device],
                        uuid.uuid4().hex,
                        week,
                        1,
                        1,
                        1.0,
                        "laplace",
                        json.dumps(features[row].tolist()),
                        "0.1.0",
                        float(min(received[row], NOW)),
                        label,
                        json.dumps(dict(zip(offers, counts.tolist(), strict=True))),
                    )
                )
                next_id += 1
            _write(engine, postgres, aggregate_rows)
    if postgres:
        with engine.begin() as conn:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('aggregates', 'id'), :n)"),
                {"n": next_id - 1},
            )
        with create_engine(engine.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would have, on a live table
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def _write(engine: Engine, postgres: bool, aggregate_rows: list[tuple[Any, ...]]) -> None:
    columns = [c.name for c in aggregates.columns]
    with engine.begin() as conn:
        if not postgres:
            marks = ", ".join("?" * len(columns))
            conn.exec_driver_sql(
                f"INSERT INTO aggregates ({', '.join(columns)}) VALUES ({marks})", aggregate_rows
            )
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY aggregates ({', '.join(columns)}) FROM STDIN") as copy:
            for row in aggregate_rows:
                copy.write_row(row)


def _set_index(engine: Engine, variant: str) -> None:
    """Only ``variant``'s index among the candidates, and fresh statistics."""
    with engine.begin() as conn:
        for other, index in INDEXES.items():
            if index is not None and other != variant:
                conn.execute(text(f"DROP INDEX IF EXISTS {index[0]}"))
        wanted = INDEXES[variant]
        if wanted is not None:
            name, columns, include = wanted
            include = include if engine.dialect.name == "postgresql" else ""
            conn.execute(
                text(f"CREATE INDEX IF NOT EXISTS {name} ON aggregates ({columns}){include}")
            )
    if engine.dialect.name == "postgresql":  # the visibility map too, for index-only scans
        with create_engine(engine.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE aggregates"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE aggregates"))


def _old_persona_sample(engine: Engine, window: tuple[str, ...]) -> None:
    """The persona mix as the page made it before: a model run on each week's sample."""
    with engine.begin() as conn:
        model = PersonaModel.from_bytes(
            conn.execute(
                select(models.c.model_onnx).order_by(models.c.version.desc()).limit(1)
            ).scalar_one()
        )
        for week in window:
            texts = conn.execute(
                select(cast(aggregates.c.features, Text))
                .where(aggregates.c.week == week)
                .order_by(aggregates.c.device_id)
                .limit(2_000)
            ).scalars()
            rows = json.loads("[" + ",".join(texts) + "]")
            vectors = np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURES))
            np.bincount(np.argmax(model.predict_proba(vectors), axis=1))


def _index_mb(engine: Engine, variant: str) -> float | None:
    """The size of ``variant``'s index (PostgreSQL; SQLite's ``dbstat`` is often left out)."""
    index = INDEXES[variant]
    if index is None or engine.dialect.name != "postgresql":
        return None
    with engine.begin() as conn:
        size = conn.execute(text("SELECT pg_relation_size(:name)"), {"name": index[0]})
        return round(size.scalar_one() / 2**20, 1)


def _plan(engine: Engine, window: tuple[str, ...]) -> list[str]:
    """PostgreSQL's plan of the persona-mix query as it ran, with the pages it touched."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        query = _labels_query(window).compile(conn, compile_kwargs={"literal_binds": True})
        conn.execute(text("SET LOCAL jit = off"))
        return [row[0] for row in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {query}"))]


def _times(call: Callable[[], Any], count: int) -> list[float]:
    found = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        found.append((time.perf_counter_ns() - started) / 1e6)
    return found


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


if __name__ == "__main__":
    main()
