"""SIGKILL of a tracking, syncing process at random points, over many runs of one device.

Goes further than ``tests/sdk/test_crash_safety.py`` (tracking only): the child also queues
its weekly upload and sends it to a live backend on loopback, so kills land in the middle of
queueing, of a POST the server may or may not have stored, and of the queue's bookkeeping.
After every kill: the database passes ``integrity_check``, every row the child reported
committed is there, and every week whose privacy budget was spent is either still queued or
on the server, never twice; a queued week the server already holds carries the same
``upload_id``, so its resend is counted once; every model bundle kept on disk is a whole zip
(the server releases a new model every few runs, so kills land in downloads and swaps too).
At the end the device is reopened and syncs: the server holds exactly one upload per spent
week, and no kept bundle was found damaged at start.
"""

from __future__ import annotations

import base64
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from edgepersona.sdk import EdgePersona, ManualClock

from ..conftest import T0
from ..sync.conftest import WEEK, Backend
from ..sync.test_model_updates import release
from .conftest import Figures

RUNS = 24
RELEASE_EVERY = 4  # runs between model releases: v2 to v7
SEED = 20261124
CHILD = textwrap.dedent(
    """
    import sqlite3, sys
    from pathlib import Path
    from edgepersona.sdk import EdgePersona, ManualClock, Settings, SyncSettings

    DAY = 86400.0
    data_dir, url, now, key = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    # Raw rows are kept past the device's whole simulated life, so none leaves by retention.
    i = 0
    if (data_dir / "edgepersona.db").exists():  # carry on after the last committed day
        with sqlite3.connect(data_dir / "edgepersona.db") as conn:
            top, last = conn.execute(
                "SELECT MAX(value), MAX(ts) FROM events WHERE name = 'tick'"
            ).fetchone()
        if top is not None:
            i, now = int(top) + 1, last + DAY
    clock = ManualClock(now)
    sdk = EdgePersona.open(
        data_dir, "crash-test", clock=clock, tz="UTC", backend_url=url, public_key=key,
        settings=Settings(flush_interval_s=0.005, flush_max_rows=7, retention_days=400),
        sync_settings=SyncSettings(
            interval_s=60, backoff_base_s=1, backoff_cap_s=2, shadow_decisions=2
        ),
    )
    for purpose in ("personalization", "sync"):
        sdk.consent.grant(purpose)
    while True:
        for k in range(23):
            sdk.track_event("tick", float(i), ts=clock.time() - 3600 + k)
            i += 1
        sdk.track_app("com.spotify.music", ts=clock.time())
        sdk.flush()
        print("committed", i, flush=True)  # every value below i is committed
        result = sdk.sync(force=True)
        print("synced", result.status, result.sent, result.model, flush=True)
        for _ in range(2):  # the shadow of a downloaded model runs, then takes over
            sdk.decide("home", ["coffee_to_go", "flash_sale"])
        clock.advance(DAY)
    """
)


def server_uploads(backend: Backend) -> list[tuple[str, str]]:
    """(week, upload_id) of every aggregate the server stored, from any device."""
    with backend.app.app_context():
        from edgepersona.backend.db import engine

        with engine(backend.app).connect() as conn:
            rows = conn.execute(text("SELECT week, upload_id FROM aggregates")).all()
    return [(str(week), str(upload_id)) for week, upload_id in rows]


def device_uploads(db: Path) -> tuple[set[str], dict[str, str], set[float]]:
    """Weeks whose budget was spent, the queue ``{week: upload_id}`` and the event values."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        spent = {w for (w,) in conn.execute("SELECT week FROM privacy_budget")}
        queued = dict(conn.execute("SELECT week, upload_id FROM upload_queue").fetchall())
        values = {v for (v,) in conn.execute("SELECT value FROM events WHERE name = 'tick'")}
    return spent, queued, values


def readable_zip(path: Path) -> bool:
    """A kept bundle is whole: a kill during its write must leave the old file or the new."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except zipfile.BadZipFile:
        return False


def run_until_killed(
    data_dir: Path, backend: Backend, rng: random.Random
) -> tuple[int, int, int | None]:
    """One child run killed after a random number of lines and a random pause.

    Returns the committed count it reported, the lines read and the child's exit code.
    """
    key = base64.b64encode(backend.public_key).decode()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), backend.url, repr(T0), key],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    committed, lines = 0, 0
    for _ in range(rng.randint(1, 14)):
        line = process.stdout.readline()
        if not line:
            break
        lines += 1
        if line.startswith("committed"):
            committed = int(line.split()[1])
    # The kill point: somewhere in the next few writes or requests of the child.
    time.sleep(rng.uniform(0.0, 0.03))
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    return committed, lines, process.returncode


@pytest.mark.slow
def test_sigkill_while_tracking_and_syncing_loses_and_doubles_nothing(
    tmp_path: Path, backend: Backend, clock: ManualClock, figures: Figures
) -> None:
    # The server's week sits past every week the device will live through (about 25), so
    # each upload is in its accepted window.
    clock.set(T0 + 40 * WEEK)
    rng = random.Random(SEED)
    data_dir = tmp_path / "device"
    db = data_dir / "edgepersona.db"
    committed_floor = 0  # values below this were reported committed in some run
    seen_queued: dict[str, str] = {}  # every upload id ever seen waiting in the queue
    lost_rows = lost_uploads = doubled = mismatched = damaged = 0
    for run in range(RUNS):
        if run % RELEASE_EVERY == 0:  # a new model to download, keep and swap in
            release(backend, 2 + run // RELEASE_EVERY)
        committed, lines, code = run_until_killed(data_dir, backend, rng)
        assert code == -signal.SIGKILL, "the child died on its own"
        figures.add("crash_safety", "kills")
        figures.add("crash_safety", "child_lines_read", lines)
        if not db.exists():
            continue
        spent, queued, values = device_uploads(db)
        kept_bundles = sorted((data_dir / "bundles").glob("*.zip"))
        damaged += sum(not readable_zip(path) for path in kept_bundles)
        on_server = Counter(week for week, _ in server_uploads(backend))
        server_ids = dict(server_uploads(backend))
        expected = set(map(float, range(max(committed_floor, committed))))
        lost_rows += len(expected - values)
        figures.add("crash_safety", "committed_row_checks", len(expected))
        lost_uploads += sum(week not in queued and week not in on_server for week in spent)
        doubled += sum(n - 1 for n in on_server.values())
        mismatched += sum(
            week in server_ids and server_ids[week] != upload_id
            for week, upload_id in queued.items()
        )
        # Killed after the server stored a week but before the device dequeued it.
        figures.add("crash_safety", "resends_pending", len(set(queued) & set(server_ids)))
        seen_queued.update(queued)
        committed_floor = int(max(values)) + 1 if values else 0
    # Recovery: the app starts again on a later day and syncs until the queue is empty.
    last_day = T0 + committed_floor // 23 * 86400 + 2 * WEEK  # the child tracks 23 a day
    with EdgePersona.open(
        data_dir,
        "crash-test",
        clock=ManualClock(last_day),
        tz="UTC",
        backend_url=backend.url,
        public_key=backend.public_key,
    ) as sdk:
        for _ in range(3):
            if sdk.sync(force=True).status in ("synced", "nothing_to_send"):
                break
        assert sdk.sync_status()["pending"] == 0
        # The kept bundles all loaded at start (a damaged one is recorded as rejected).
        history = sdk.model_status()["history"]
        damaged += sum("at start" in (h["reason"] or "") for h in history)
        adopted = {h["version"] for h in history if h["event"] == "adopted"}
    spent, queued, _values = device_uploads(db)
    stored = server_uploads(backend)
    weeks = Counter(week for week, _ in stored)
    doubled += sum(n - 1 for n in weeks.values())
    lost_uploads += len(spent - set(weeks))
    lost_uploads += len(set(seen_queued.values()) - {upload_id for _, upload_id in stored})
    figures.add("crash_safety", "iterations", RUNS)
    figures.add("crash_safety", "uploads_checked", len(spent))
    figures.add("crash_safety", "rows_lost", lost_rows)
    figures.add("crash_safety", "uploads_lost", lost_uploads)
    figures.add("crash_safety", "uploads_doubled", doubled + mismatched)
    figures.add("crash_safety", "models_adopted", len(adopted))
    figures.add("crash_safety", "bundles_damaged", damaged)
    assert (lost_rows, lost_uploads, doubled, mismatched, damaged) == (0, 0, 0, 0, 0)
    assert len(adopted) >= 2, "the device adopted too few models for the test to mean much"
    assert queued == {}
    assert len(spent) >= 5, "too few weeks were uploaded for the test to mean anything"
    assert set(weeks) == spent
