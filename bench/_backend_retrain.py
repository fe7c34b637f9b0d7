"""Retrain at scale, for bench/backend.py: stored aggregates generated in bulk, then the real
``edgepersona backend retrain`` timed in a child process with its peak resident memory.

The rows are what SDK devices upload: a small synthetic population is replayed through the
SDK (the feature vectors phones compute); each device-week is one of those vectors noised
exactly as ``edgepersona.sdk.privacy`` noises an upload at epsilon 1 (clipped, Laplace noise,
rounded, clamped into the band; vectorised here, the same distribution), its persona label
through randomized response, and one outcome row per playbook offer carrying that label.
Each device uploads once a week for the 4 weeks of the retrain window. Rows go in with the
driver's executemany in 10,000-row transactions (SQLite) or COPY (PostgreSQL), before any
clock starts.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from edgepersona.backend import registry
from edgepersona.backend.keys import load_private_key
from edgepersona.backend.migrations import migrate
from edgepersona.backend.retrain import DEFAULT_WEEKS, week_window
from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR, fleet_vectors
from edgepersona.edge_models.population import population
from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import (
    DEFAULT_EPSILON,
    PERSONA_SHARE,
    ROUND_DIGITS,
    clip_features,
    feature_band,
    feature_noise_scale,
    keep_probability,
    outcome_noise_scale,
)

BATCH_ROWS = 10_000
AGGREGATE_COLUMNS = (
    "id",
    "device_id",
    "upload_id",
    "week",
    "schema_version",
    "model_version",
    "epsilon",
    "mechanism",
    "features",
    "sdk_version",
    "received_at",
    "persona",
    "outcomes",
)


def base_fleet(devices: int = 60, seed: int = 5) -> tuple[np.ndarray, list[str]]:
    """Feature vectors of a synthetic fleet replayed through the SDK (a few seconds), and
    each device's true persona."""
    fleet = population(devices, seed=seed)
    return fleet_vectors(fleet, 2), [d.persona_id for d in fleet]


def _personas_and_offers() -> tuple[list[str], list[str]]:
    manifest = json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())
    playbook = json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())
    return [p["id"] for p in manifest["personas"]], sorted(playbook["offers"])


def noised_uploads(
    base: np.ndarray, truth: list[str], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``n`` uploads' feature vectors and persona labels, noised as the SDK does at epsilon 1."""
    personas, _ = _personas_and_offers()
    low = np.array([f.low for f in FEATURES])
    width = np.array([f.high - f.low for f in FEATURES])
    band = np.array(feature_band(DEFAULT_EPSILON))
    scaled = np.array([clip_features(vector) for vector in base])
    picked = rng.integers(len(base), size=n)
    noise = rng.laplace(0.0, feature_noise_scale(DEFAULT_EPSILON), (n, len(FEATURES)))
    vectors = np.round(low + (scaled[picked] + noise) * width, ROUND_DIGITS)
    vectors = np.clip(vectors, band[:, 0], band[:, 1])
    keep = keep_probability(PERSONA_SHARE * DEFAULT_EPSILON, len(personas))
    true = np.array([personas.index(truth[i]) for i in picked])
    other = (true + rng.integers(1, len(personas), size=n)) % len(personas)
    labels = np.where(rng.random(n) < keep, true, other)
    return vectors, [personas[i] for i in labels]


def window_weeks(now: float) -> list[str]:
    """The ISO weeks of the default retrain window ending at ``now``, oldest first."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    weeks = []
    for back in range(DEFAULT_WEEKS - 1, -1, -1):
        year, week, _ = (today - dt.timedelta(weeks=back)).isocalendar()
        weeks.append(f"{year:04d}-W{week:02d}")
    assert (weeks[0], weeks[-1]) == week_window(now, DEFAULT_WEEKS)
    return weeks


def fill(
    url: str, base: np.ndarray, truth: list[str], device_weeks: int, now: float, seed: int
) -> None:
    """Store ``device_weeks`` uploads (devices x 4 weeks) with their outcomes at ``url``."""
    engine = create_engine(url)
    try:
        migrate(engine)
        batches = _batches(base, truth, device_weeks, now, seed)
        if make_url(url).get_backend_name() == "postgresql":
            _fill_postgres(engine, batches)
        else:
            _fill_sqlite(engine, batches)
    finally:
        engine.dispose()


Batch = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _batches(
    base: np.ndarray, truth: list[str], device_weeks: int, now: float, seed: int
) -> Iterator[Batch]:
    """Rows of devices and aggregates, a batch of whole devices at a time."""
    rng = np.random.default_rng(seed)
    _, offers = _personas_and_offers()
    weeks = window_weeks(now)
    scale = outcome_noise_scale(DEFAULT_EPSILON)
    next_id = made = 0
    while made < device_weeks:
        count = min(BATCH_ROWS // len(weeks), -(-(device_weeks - made) // len(weeks)))
        ids = [uuid.UUID(int=int(v)).hex for v in rng.integers(0, 2**63, size=count)]
        devices = [(d, uuid.uuid4().hex + uuid.uuid4().hex, now) for d in ids]
        rows = min(count * len(weeks), device_weeks - made)
        vectors, labels = noised_uploads(base, truth, rows, rng)
        counts = np.round(rng.laplace(0.0, scale, (rows, len(offers), 2)), ROUND_DIGITS)
        aggregates = []
        for i in range(rows):
            next_id += 1
            outcomes = json.dumps(dict(zip(offers, counts[i].tolist(), strict=True)))
            aggregates.append(
                (next_id, ids[i % count], uuid.uuid4().hex, weeks[i // count], 1, 1,
                 DEFAULT_EPSILON, "laplace", json.dumps(vectors[i].tolist()), "0.1.0", now,
                 labels[i], outcomes)
            )  # fmt: skip
        made += rows
        yield devices, aggregates


def _fill_sqlite(engine: Engine, batches: Iterator[Batch]) -> None:
    with engine.connect() as conn:
        for devices, aggregates in batches:
            conn.exec_driver_sql(
                "INSERT INTO devices (id, token_sha256, created_at) VALUES (?, ?, ?)", devices
            )
            marks = ", ".join("?" * len(AGGREGATE_COLUMNS))
            conn.exec_driver_sql(
                f"INSERT INTO aggregates ({', '.join(AGGREGATE_COLUMNS)}) VALUES ({marks})",
                aggregates,
            )
            conn.commit()


def _fill_postgres(engine: Engine, batches: Iterator[Batch]) -> None:
    last_id = 0
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for devices, aggregates in batches:
            for table, columns, rows in (
                ("devices", ("id", "token_sha256", "created_at"), devices),
                ("aggregates", AGGREGATE_COLUMNS, aggregates),
            ):
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            last_id = aggregates[-1][0]
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('aggregates', 'id'), :n)"), {"n": last_id}
        )
    with create_engine(engine.url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would have, on a live table


def publish_default(url: str, key_path: Path, now: float) -> None:
    """Publish the shipped default bundle: the current model retraining starts from."""
    files = {
        name: (DEFAULT_BUNDLE_DIR / name).read_bytes()
        for name in ("model.onnx", "playbook.json", "manifest.json")
    }
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            registry.publish(conn, files, load_private_key(key_path), now)
    finally:
        engine.dispose()


# The command as ``edgepersona`` runs it, reporting its peak resident memory at exit. Taken
# from /proc/self/status (VmHWM, this process image only): the ru_maxrss that wait4 reports
# for a child also counts the parent's memory at fork time, here several hundred MiB.
_MEASURED_CLI = """
import atexit, sys
def peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"PEAK_RSS_KIB {kib}\\n")
atexit.register(peak)
from edgepersona.sdk.cli import main
sys.exit(main(sys.argv[1:]))
"""


def timed_retrain(
    url: str, key_path: Path, log: Path, options: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run ``edgepersona backend retrain --json [options]`` in a child; seconds, peak RSS
    and its report."""
    command = [sys.executable, "-c", _MEASURED_CLI, "backend", "retrain", "--json"]
    command += ["--database-url", url, "--signing-key", str(key_path), *options]
    errors = log.with_suffix(".stderr")
    with log.open("w") as out, errors.open("w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        try:
            child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
        seconds = time.perf_counter() - started
    output, messages = log.read_text(), errors.read_text()
    peak = [line for line in messages.splitlines() if line.startswith("PEAK_RSS_KIB ")]
    return {
        "exit_code": child.returncode,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(int(peak[-1].split()[1]) / 1024, 1) if peak else None,
        "report": json.loads(output) if output.strip() else {},
        "stderr": "\n".join(line for line in messages.splitlines() if line not in peak)[-400:],
    }
