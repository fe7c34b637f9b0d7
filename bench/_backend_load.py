"""Load on the HTTP service, for bench/backend.py: gunicorn servers, devices, wrk runs and the
reconciliation of what wrk was told against what the database stored.

wrk (Debian package ``wrk``) drives the load from Lua scripts beside this file, one connection
per wrk thread so that every response is tied to its request (see ``_wrk_post.lua``). Each
request carries a distinct valid upload. Servers run in their own process groups and are
stopped through ``Processes``, which the caller enters in an ``ExitStack``: nothing outlives a
failed or interrupted run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import create_engine, text

from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.sdk._uploads import build_payload, encode
from edgepersona.sdk.privacy import DEFAULT_EPSILON

HERE = Path(__file__).resolve().parent
PLACEHOLDER = "UPLOAD_ID_PLACEHOLDER"
TOKEN_STRIDE = 7919  # as in _wrk_post.lua


class Processes:
    """Servers started by this run; ``close`` stops each one's process group, then kills."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def start(self, command: Sequence[str], log: Path, env: dict[str, str]) -> None:
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=out, env=env, start_new_session=True
            )
        self._started.append(process)

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self._started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._started.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_backend(processes: Processes, database_url: str, env: dict[str, str], log: Path) -> str:
    """``edgepersona backend serve`` (gunicorn, 2 sync workers) on a free port; its URL."""
    port = free_port()
    command = [sys.executable, "-m", "edgepersona.sdk.cli", "backend", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    processes.start([*command, "--database-url", database_url], log, env)
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url + "/healthz", log)
    return url


def start_bare(processes: Processes, log: Path) -> str:
    """The reference app under gunicorn with the backend's settings; its URL."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--no-control-socket"]
    command += ["--bind", f"127.0.0.1:{port}", "--chdir", str(HERE), "_bare_app:create_app()"]
    processes.start(command, log, dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url + "/", log)
    return url


def _wait_until_up(url: str, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s; see {log}")


def register_devices(url: str, count: int) -> list[str]:
    """Register ``count`` devices through ``POST /v1/devices``; their tokens."""

    def register(_: int) -> str:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            response = client.post("/v1/devices")
            response.raise_for_status()
            return str(response.json()["token"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(register, range(count)))


def upload_bodies(
    vectors: np.ndarray, personas_of: list[str], week: str, rng: np.random.Generator
) -> list[str]:
    """One upload per device vector (``personas_of``: each device's persona), built and
    encoded by the SDK's own code (noise at the default epsilon, randomized-response
    persona, every playbook offer), with the upload id replaced by ``PLACEHOLDER``: the exact
    bytes a phone sends."""
    personas = [
        p["id"] for p in json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())["personas"]
    ]
    offers = sorted(json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())["offers"])
    bodies = []
    for vector, persona in zip(vectors, personas_of, strict=True):
        counts = {
            offer: (float(rng.integers(0, 3)), float(rng.integers(0, 3)))
            for offer in rng.choice(offers, size=3, replace=False)
        }
        payload = build_payload(
            week=week,
            features=[float(v) for v in vector],
            persona=persona,
            personas=personas,
            outcome_counts=counts,
            offers=offers,
            epsilon=DEFAULT_EPSILON,
            model_version=1,
            rng=rng,
        )
        bodies.append(encode({**payload, "upload_id": PLACEHOLDER}))
    return bodies


def run_wrk(
    script: str, url: str, connections: int, seconds: int, args: Sequence[str]
) -> dict[str, Any]:
    """One wrk run (one connection per thread); the JSON its script's done() printed."""
    command = ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--timeout", "10s", "-s", str(HERE / script), url, "--", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
    return result


def upload_id(run_id: str, thread: int, n: int) -> str:
    return f"{run_id}{thread:08x}{0:08x}{n:08x}"


def accepted_ids(run_id: str, wrk: dict[str, Any]) -> tuple[set[str], list[tuple[int, int]]]:
    """Upload ids that got a 201 in this wrk run, and (thread, n) of requests not answered."""
    accepted: set[str] = set()
    unanswered = []
    for thread in wrk["threads"]:
        number = thread["thread"]
        skip = set(thread["unanswered"]) | {int(e.split(":")[0]) for e in thread["not_201"]}
        accepted.update(
            upload_id(run_id, number, n) for n in range(1, thread["sent"] + 1) if n not in skip
        )
        unanswered += [(number, n) for n in thread["unanswered"]]
    return accepted, unanswered


def stored_ids(database_url: str, run_id: str) -> list[str]:
    """Upload ids of this run in the aggregates table (a list: a double would show twice)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT upload_id FROM aggregates WHERE upload_id LIKE :p"),
                {"p": run_id + "%"},
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def resend(
    url: str, run_id: str, requests: list[tuple[int, int]], tokens: list[str], bodies: list[str]
) -> dict[str, int]:
    """Send unanswered uploads again, as a device retries (same token, same upload id);
    status counts: 200 means it had been stored, 201 that it is stored now."""
    counts: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for thread, n in requests:
            token = tokens[((thread - 1) * TOKEN_STRIDE + n) % len(tokens)]
            body = bodies[n % len(bodies)].replace(PLACEHOLDER, upload_id(run_id, thread, n))
            response = client.post(
                "/v1/aggregates",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
    return counts


def commit_ms(database_url: str, commits: int = 200) -> float:
    """Median milliseconds of a one-row write transaction on this database, durably committed
    as the backend commits (SQLite: WAL, default synchronous FULL; PostgreSQL: defaults): the
    floor under every upload, whatever the code does."""
    engine = create_engine(database_url)
    times = []
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE bench_commit (x INTEGER)"))
            conn.commit()
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA journal_mode = WAL")
            for _ in range(commits):
                started = time.perf_counter()
                conn.execute(text("INSERT INTO bench_commit VALUES (1)"))
                conn.commit()
                times.append(time.perf_counter() - started)
            conn.execute(text("DROP TABLE bench_commit"))
            conn.commit()
    finally:
        engine.dispose()
    return round(float(np.median(times)) * 1000, 3)


def new_run_id() -> str:
    return secrets.token_hex(4)
