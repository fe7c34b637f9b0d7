"""A really full disk under the device: its data directory on a small tmpfs, filled until the
kernel answers ENOSPC, so SQLite's next write fails with ``database or disk is full`` and the
bundle's write with ``No space left on device``, as on a phone whose storage ran out.

Mounting needs root (CAP_SYS_ADMIN), as CI has; elsewhere these tests are skipped and say why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from edgepersona.backend.db import engine
from edgepersona.sdk import EdgePersona, ManualClock, Settings, StoreError, SyncSettings

from .conftest import Backend, DeviceNetwork, live_a_week, refused
from .test_model_updates import decide_times, events, release

SHADOW = SyncSettings(shadow_decisions=3, interval_s=60)


@dataclass
class SmallDisk:
    """A mounted tmpfs and a filler file that takes every free byte of it."""

    path: Path

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def fill(self, database: Path) -> None:
        """Fill the file system; SQLite's next write then needs a block that is not there.

        The WAL is checkpointed and truncated first: otherwise a write may reuse WAL blocks
        allocated earlier and only the one after it would fail, which makes a test flaky.
        """
        with contextlib.closing(sqlite3.connect(database)) as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the device held the database during the checkpoint"
        with open(self.filler, "ab", buffering=0) as out:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
                with contextlib.suppress(OSError):
                    while True:
                        out.write(b"\0" * size)
        with (
            pytest.raises(OSError, match="No space left") as full,
            open(self.path / "probe", "wb", buffering=0) as probe,
        ):
            probe.write(b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC

    def free(self) -> None:
        for name in ("filler", "probe"):
            (self.path / name).unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); CI runs these as root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if "permission denied" in mounted.stderr.lower() or "only root" in mounted.stderr:
            pytest.skip(f"this machine does not allow mounting a tmpfs: {mounted.stderr.strip()}")
        pytest.fail(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        unmounted = subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)
        if unmounted.returncode != 0:  # something still holds a file: detach it anyway
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def device_on_disk(
    small_disk: SmallDisk, clock: ManualClock, backend: Backend, network: DeviceNetwork
) -> Iterator[Callable[..., EdgePersona]]:
    """Open the device on the small disk; closed (with room again) before it is unmounted."""
    opened: list[EdgePersona] = []

    def open_one(**kwargs: object) -> EdgePersona:
        sdk = EdgePersona.open(
            small_disk.path / "device",
            "com.example.shop",
            clock=clock,
            tz="UTC",
            backend_url=backend.url,
            public_key=backend.public_key,
            transport=network,
            seed=7,
            **kwargs,  # type: ignore[arg-type]
        )
        opened.append(sdk)
        for purpose in ("personalization", "sync"):
            sdk.consent.grant(purpose)
        return sdk

    yield open_one
    small_disk.free()
    for sdk in opened:
        sdk.close()


def device_db(small_disk: SmallDisk) -> Path:
    return small_disk.path / "device" / "edgepersona.db"


def queue(small_disk: SmallDisk) -> list[tuple[str, str, str]]:
    """The device's upload queue, read from the file as another process would."""
    with contextlib.closing(sqlite3.connect(device_db(small_disk))) as conn:
        return conn.execute(
            "SELECT upload_id, week, payload FROM upload_queue ORDER BY week"
        ).fetchall()


def spent_weeks(small_disk: SmallDisk) -> list[str]:
    with contextlib.closing(sqlite3.connect(device_db(small_disk))) as conn:
        return [w for (w,) in conn.execute("SELECT week FROM privacy_budget ORDER BY week")]


def server_uploads(backend: Backend) -> list[tuple[str, str]]:
    with engine(backend.app).connect() as conn:
        rows = conn.execute(text("SELECT upload_id, week FROM aggregates ORDER BY week"))
        return [(str(upload_id), str(week)) for upload_id, week in rows]


def test_sync_on_a_full_disk_reports_it_loses_nothing_and_delivers_once_there_is_room(
    device_on_disk: Callable[..., EdgePersona],
    small_disk: SmallDisk,
    clock: ManualClock,
    backend: Backend,
    network: DeviceNetwork,
) -> None:
    sdk = device_on_disk()
    live_a_week(sdk, clock)
    network.faults["/v1/aggregates"] = [refused]
    assert sdk.sync().status == "offline"  # registered; week 10 waits in the queue
    waiting = queue(small_disk)
    assert [week for _, week, _ in waiting] == ["2026-W10"]
    live_a_week(sdk, clock)  # week 11 is due to be queued at the next sync

    small_disk.fill(device_db(small_disk))
    requests_before = len(network.sent)
    result = sdk.sync(force=True)
    assert result.status == "storage_error"
    assert "database or disk is full" in result.message
    assert (result.sent, result.pending) == (0, 1)
    # Nothing half done: week 11 is neither queued nor spent, week 10 is intact, and nothing
    # was sent whose answer could not have been recorded.
    assert queue(small_disk) == waiting
    assert spent_weeks(small_disk) == ["2026-W10"]
    assert network.sent[requests_before:] == []
    assert sdk.decide("home", ["coffee_to_go", "flash_sale"]).personalized
    # The decision waits in the buffer, which cannot be written; the status still reads.
    status = sdk.sync_status()
    assert status["pending"] == 1 and status["epsilon"]["spent_all_time"] == 1.0
    assert sdk.sync(force=True).status == "storage_error"  # tried again: the same answer

    small_disk.free()
    result = sdk.sync(force=True)
    assert (result.status, result.sent, result.pending) == ("synced", 2, 0)
    stored = server_uploads(backend)
    assert [week for _, week in stored] == ["2026-W10", "2026-W11"]
    assert stored[0][0] == waiting[0][0]  # the very upload queued before the disk filled
    assert spent_weeks(small_disk) == ["2026-W10", "2026-W11"]
    assert sdk.sync(force=True).status == "nothing_to_send"
    assert server_uploads(backend) == stored


def test_a_model_update_that_cannot_be_written_is_refused_then_fetched_again(
    device_on_disk: Callable[..., EdgePersona],
    small_disk: SmallDisk,
    clock: ManualClock,
    backend: Backend,
    network: DeviceNetwork,
) -> None:
    sdk = device_on_disk(sync_settings=SHADOW)
    live_a_week(sdk, clock)
    release(backend, 2)

    def disk_fills_during_the_download(
        request: httpx.Request, forward: Callable[[], httpx.Response]
    ) -> httpx.Response:
        small_disk.fill(device_db(small_disk))
        return forward()

    network.faults["/v1/models/2/bundle"] = [disk_fills_during_the_download]
    result = sdk.sync()
    assert result.status == "storage_error"
    assert result.sent == 1  # the upload went before the disk filled
    assert (
        result.model
        == "rejected v2: cannot keep the bundle on this device: No space left on device"
    )
    download = sdk.model_status()["download"]
    assert download["state"] == "rejected" and "No space left" in download["reason"]
    assert not list((small_disk.path / "device" / "bundles").glob("*"))  # no partial file
    assert decide_times(sdk, 4) == [1, 1, 1, 1]  # the last good bundle keeps deciding

    small_disk.free()
    clock.advance(120)
    result = sdk.sync()
    assert (result.status, result.model) == ("nothing_to_send", "shadow v2 0/3")
    assert sum(s.url.endswith("/v1/models/2/bundle") for s in network.sent) == 2
    # the refusal reached the history once there was room; it did not bar the version
    assert events(sdk) == [(2, "rejected"), (2, "shadow")]
    assert "No space left on device" in sdk.model_status()["history"][1]["reason"]
    assert decide_times(sdk, 4) == [1, 1, 1, 2]
    assert len(server_uploads(backend)) == 1


def test_a_swap_that_cannot_be_written_waits_and_decide_keeps_serving(
    device_on_disk: Callable[..., EdgePersona],
    small_disk: SmallDisk,
    clock: ManualClock,
    backend: Backend,
) -> None:
    sdk = device_on_disk(sync_settings=SHADOW)
    live_a_week(sdk, clock)
    release(backend, 2)
    assert sdk.sync().model == "shadow v2 0/3"
    small_disk.fill(device_db(small_disk))
    # The shadow run ends on the third decision, but the swap cannot be written: no decision
    # fails, the bundle in use keeps serving, and v2 stays in shadow.
    assert decide_times(sdk, 5) == [1, 1, 1, 1, 1]
    status = sdk.model_status()
    assert status["version"] == 1 and status["shadow"]["version"] == 2
    assert "database or disk is full" in status["download"]["adopt_error"]

    small_disk.free()
    assert decide_times(sdk, 2) == [1, 2]  # the next decision writes the swap, then makes it
    assert events(sdk) == [(2, "shadow"), (2, "adopted")]
    assert "adopt_error" not in sdk.model_status()["download"]


def test_a_full_buffer_on_a_full_disk_drops_and_counts_new_signals_and_never_raises(
    device_on_disk: Callable[..., EdgePersona], small_disk: SmallDisk, clock: ManualClock
) -> None:
    # The writer thread sleeps through the test (no batch size or interval is reached), so
    # every commit is the caller's: the backpressure path is all that writes.
    settings = Settings(max_buffered_rows=20, flush_max_rows=1_000, flush_interval_s=3_600)
    sdk = device_on_disk(settings=settings)
    sdk.track_event("before", ts=clock.time())
    sdk.flush()
    small_disk.fill(device_db(small_disk))
    start = clock.time() + 1
    accepted = [sdk.track_event(f"e{i}", ts=start + i) for i in range(50)]
    # The 20th fills the buffer and tries to commit it, which fails; the rest are dropped.
    assert accepted == [True] * 20 + [False] * 30
    assert sdk.decide("home", ["coffee_to_go", "flash_sale"]).offers  # its rows dropped too
    assert sdk.stats()["buffered"] == 20
    assert sdk.stats()["dropped"]["event.storage_full"] == 30
    assert "database or disk is full" in sdk.stats()["last_write_error"]
    with pytest.raises(StoreError, match="database or disk is full"):
        sdk.flush()  # the app asked for durability: it is told it did not get it
    assert sdk.stats()["buffered"] == 20

    small_disk.free()
    sdk.flush()
    with contextlib.closing(sqlite3.connect(device_db(small_disk))) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM events ORDER BY ts, id")]
        decisions = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert names == ["before"] + [f"e{i}" for i in range(20)]  # in order, none twice
    assert decisions == 0
    dropped = sum(day.get("dropped.storage_full", 0) for day in sdk.daily_counts().values())
    assert dropped == 32  # 30 events, the decision and its offer_shown event
    assert sdk.stats()["last_write_error"] is None


def test_a_vacuum_that_fails_after_the_commit_does_not_write_the_batch_again(
    device_on_disk: Callable[..., EdgePersona], small_disk: SmallDisk, clock: ManualClock
) -> None:
    settings = Settings(retention_days=1, flush_max_rows=100_000, max_buffered_rows=100_000)
    sdk = device_on_disk(settings=settings)
    for i in range(30_000):  # 1.4 MB of rows: past retention they free over 256 pages
        sdk.track_event("view", float(i), ts=clock.time() + i / 1000)
    sdk.flush()
    with contextlib.closing(sqlite3.connect(device_db(small_disk))) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # room on the 4 MB disk for the next
    clock.advance(2 * 86400)  # the hourly maintenance is due, and retention deletes them all
    # The disk fills right after the next commit, before the vacuum that follows it.
    sdk._store.after_commit.append(lambda hourly: small_disk.fill(device_db(small_disk)))
    sdk.track_event("late", ts=clock.time())
    sdk.flush()  # committed: the failed vacuum is reported, not raised
    assert "vacuum failed (database or disk is full)" in sdk.stats()["last_write_error"]
    sdk._store.after_commit.pop()
    small_disk.free()
    sdk.flush()
    with contextlib.closing(sqlite3.connect(device_db(small_disk))) as conn:
        late = conn.execute("SELECT COUNT(*) FROM events WHERE name = 'late'").fetchone()[0]
        rollup = conn.execute("SELECT n FROM rollup_daily WHERE key = 'late'").fetchall()
        freed = conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert (late, rollup) == (1, [(1,)])
    assert freed >= 256  # the vacuum did not run; the next hourly one gives the pages back
