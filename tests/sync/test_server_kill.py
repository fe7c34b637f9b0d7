"""A real server killed between its commit and its answer: the backend under gunicorn in its own
process group, killed with SIGKILL (``_kill_server``) right after an upload's transaction
committed and before the response left. The device sees the connection drop and keeps the
upload; the server is started again on the same database; the resend is answered
``200 duplicate`` and the database holds that upload, and its outcome counts, once. The same
holds with ``EDGEPERSONA_UPLOAD_FLUSH=background``, whose answer does not wait for the disk:
a killed process loses nothing the operating system was given.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.schema import aggregates
from edgepersona.sdk import EdgePersona, ManualClock

from ..backend.gunicorn_service import free_port, wait_until_ready
from .conftest import DeviceNetwork, live_a_week

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """The backend under gunicorn in a process group of its own, on a fixed port."""

    database_url: str
    upload_flush: str
    arm: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ", ".join(map(repr, (self.database_url, str(self.arm), self.upload_flush)))
        spec = f"tests.sync._kill_server:create({args})"
        # No control socket: gunicorn would put it in the home directory, shared by all runs.
        command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--no-control-socket"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--chdir", str(REPO), spec]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until_ready(self.url, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'backend.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    with app.app_context():
        init_db()
    engine(app).dispose()
    return url


@pytest.fixture(params=["each", "background"])
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Server]:
    running = Server(
        database_url, request.param, tmp_path / "arm", free_port(), tmp_path / "gunicorn.log"
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def device(server: Server, clock: ManualClock, tmp_path: Path) -> Iterator[EdgePersona]:
    sdk = EdgePersona.open(
        tmp_path / "device",
        "com.example.shop",
        clock=clock,
        tz="UTC",
        backend_url=server.url,
        transport=DeviceNetwork(),
        seed=7,
    )
    for purpose in ("personalization", "sync"):
        sdk.consent.grant(purpose)
    try:
        yield sdk
    finally:
        sdk.close()


def stored(database_url: str) -> list[tuple[str, int, float, float]]:
    """Each stored upload with its outcomes: (upload_id, offers, accepted sum, dismissed sum)."""
    db = create_engine(database_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(select(aggregates.c.upload_id, aggregates.c.outcomes)).all()
    finally:
        db.dispose()
    return [
        (str(u), len(o), sum(a for a, _ in o.values()), sum(d for _, d in o.values()))
        for u, o in rows
    ]


def counter(metrics: str, name: str) -> float:
    """A label-less counter's value in a Prometheus text page (0 when never incremented)."""
    found = re.search(rf"^{name} (\S+)$", metrics, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def queued(tmp_path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "device" / "edgepersona.db")) as conn:
        return conn.execute("SELECT upload_id, payload FROM upload_queue").fetchall()


@pytest.mark.slow
def test_a_server_killed_after_its_commit_counts_the_resent_upload_once(
    server: Server, device: EdgePersona, clock: ManualClock, tmp_path: Path, database_url: str
) -> None:
    live_a_week(device, clock)
    server.arm.touch()
    result = device.sync()
    assert server.process is not None
    assert server.process.wait(timeout=30) == -signal.SIGKILL  # the master died, not exited
    assert not server.arm.exists()  # the kill came from the upload's answer
    assert result.status == "offline", result
    assert "/v1/aggregates" in result.message and result.pending == 1
    [(upload_id, text_sent)] = queued(tmp_path)
    payload = json.loads(text_sent)
    accepted = sum(o["accepted"] for o in payload["outcomes"])
    dismissed = sum(o["dismissed"] for o in payload["outcomes"])
    expected = [(upload_id, len(payload["outcomes"]), accepted, dismissed)]
    assert stored(database_url) == pytest.approx(expected)  # committed before the kill

    server.start()  # the same database, no longer armed
    assert result.next_attempt_at is not None
    clock.set(result.next_attempt_at)
    again = device.sync()
    assert (again.status, again.sent, again.pending) == ("synced", 1, 0)
    assert queued(tmp_path) == []
    assert stored(database_url) == pytest.approx(expected)  # once, counts not doubled
    # The restarted server's own counters: the resend was answered 200 duplicate.
    metrics = httpx.get(f"{server.url}/metrics").text
    assert counter(metrics, "edgepersona_uploads_duplicate_total") == 1
    assert counter(metrics, "edgepersona_uploads_accepted_total") == 0
