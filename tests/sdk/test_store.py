"""The store: durable buffered writes, incremental rollups, retention, export and erase."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from edgepersona.sdk import (
    EdgePersona,
    ManualClock,
    Settings,
    StoreClosedError,
    StoreError,
)
from edgepersona.sdk._schema import SCHEMA_VERSION

from ..conftest import T0


def rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "edgepersona.db") as conn:
        return conn.execute(sql).fetchall()


def test_database_is_wal_with_current_schema(sdk: EdgePersona, data_dir: Path) -> None:
    assert rows(data_dir, "PRAGMA journal_mode") == [("wal",)]
    assert rows(data_dir, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_signals_reach_disk_on_flush_not_before(sdk: EdgePersona, data_dir: Path) -> None:
    sdk.track_event("view", ts=T0)
    sdk.record_location(48.85, 2.35, 12.0, 0.0, ts=T0)
    assert rows(data_dir, "SELECT COUNT(*) FROM events") == [(0,)]
    sdk.flush()
    assert rows(data_dir, "SELECT name, value FROM events") == [("view", None)]
    assert rows(data_dir, "SELECT lat, lon, accuracy_m, speed_mps FROM locations") == [
        (48.85, 2.35, 12.0, 0.0)
    ]


def test_writer_commits_when_buffer_fills(data_dir: Path, clock: ManualClock) -> None:
    settings = Settings(flush_max_rows=10, flush_interval_s=3600)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        for i in range(25):
            sdk.track_event("view", float(i), ts=T0 + i)
        # A full batch wakes the writer thread; no flush() here: give it up to 5 s to commit.
        for _ in range(500):
            if rows(data_dir, "SELECT COUNT(*) FROM events")[0][0] >= 20:
                break
            threading.Event().wait(0.01)
        assert rows(data_dir, "SELECT COUNT(*) FROM events")[0][0] >= 20


def test_backpressure_commits_on_the_callers_thread(data_dir: Path, clock: ManualClock) -> None:
    settings = Settings(flush_max_rows=5, max_buffered_rows=8, flush_interval_s=3600)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        for i in range(100):
            sdk.track_event("view", ts=T0 + i)
            assert sdk.stats()["buffered"] < 8


def test_rollups_count_and_split_durations_across_hours(sdk: EdgePersona) -> None:
    # 08:50 UTC for 20 minutes: 10 minutes in hour 08, 10 in hour 09; counted once, in 08.
    sdk.track_app("com.whatsapp", ts=T0 + 50 * 60, duration_s=20 * 60)
    sdk.track_event("purchase", 19.5, ts=T0)
    sdk.track_event("purchase", 5.0, ts=T0 + 60)
    hourly = {(r["hour"], r["kind"], r["key"]): r for r in sdk.export()["rollups"]["hourly"]}
    first = hourly[("2026-03-02T08", "app", "communication")]
    second = hourly[("2026-03-02T09", "app", "communication")]
    assert (first["n"], first["seconds"]) == (1, 600.0)
    assert (second["n"], second["seconds"]) == (0, 600.0)
    purchases = hourly[("2026-03-02T08", "event", "purchase")]
    assert (purchases["n"], purchases["value"]) == (2, 24.5)
    daily = {(r["day"], r["kind"], r["key"]): r for r in sdk.export()["rollups"]["daily"]}
    assert daily[("2026-03-02", "app", "communication")]["seconds"] == 1200.0


def test_rollups_use_the_local_time_of_each_signal(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock, tz="Asia/Kolkata") as sdk:
        sdk.consent.grant("personalization")
        sdk.track_event("view", ts=T0)  # 08:00 UTC is 13:30 in India
        sdk.track_event("view", ts=T0 + 1, tz="America/New_York")  # 03:00 in New York
        hours = {r["hour"] for r in sdk.export()["rollups"]["hourly"]}
        offsets = {r["utc_offset"] for r in sdk.export()["signals"]["event"]}
    assert hours == {"2026-03-02T13", "2026-03-02T03"}
    assert offsets == {19800, -18000}


def test_rollups_survive_retention_of_raw_rows(sdk: EdgePersona, clock: ManualClock) -> None:
    for i in range(10):
        sdk.track_event("view", ts=T0 + i)
    sdk.flush()
    clock.advance(36 * 86400)
    sdk.track_event("view", ts=clock.time())
    sdk.maintain()
    exported = sdk.export()
    assert len(exported["signals"]["event"]) == 1
    day = next(r for r in exported["rollups"]["daily"] if r["day"] == "2026-03-02")
    assert day["n"] == 10


def test_raw_rows_are_capped_whatever_the_app_sends(data_dir: Path, clock: ManualClock) -> None:
    settings = Settings(max_raw_rows=50)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        for i in range(200):
            sdk.track_event("view", ts=T0 + i)
        sdk.maintain()
        events = sdk.export()["signals"]["event"]
    assert len(events) == 50
    assert min(e["ts"] for e in events) == T0 + 150  # the newest are kept


@pytest.mark.parametrize("tracked", [50, 51])
def test_the_row_cap_is_exact_at_its_edge(data_dir: Path, clock: ManualClock, tracked: int) -> None:
    settings = Settings(max_raw_rows=50)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        for i in range(tracked):
            sdk.track_event("view", ts=T0 + i)
        sdk.maintain()
        events = sdk.export()["signals"]["event"]
    assert len(events) == 50
    assert min(e["ts"] for e in events) == T0 + tracked - 50


def test_retention_runs_in_the_commit_and_freed_pages_are_reused(
    data_dir: Path, clock: ManualClock
) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        sdk.consent.grant("personalization")
        for i in range(3000):
            sdk.track_event("view", float(i), ts=clock.time() - 3000 + i)
        sdk.flush()
        clock.advance(36 * 86400)  # past the raw-row window and the next hourly maintenance
        sdk.track_event("view", ts=clock.time())
        sdk.flush()  # no maintain(): retention is due, and runs with this commit
        assert rows(data_dir, "SELECT COUNT(*) FROM events") == [(1,)]
        freed = rows(data_dir, "PRAGMA freelist_count")[0][0]
        assert 0 < freed < 256  # kept for the next inserts: not worth a vacuum yet
        sdk.maintain()
        assert rows(data_dir, "PRAGMA freelist_count") == [(0,)]


def test_distinct_keys_per_day_are_capped(data_dir: Path, clock: ManualClock) -> None:
    settings = Settings(max_keys_per_day=5)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        for i in range(20):
            sdk.track_event(f"event_{i}", ts=T0 + i)
            if i % 7 == 0:
                sdk.flush()
        daily = sdk.export()["rollups"]["daily"]
    keys = {r["key"] for r in daily if r["kind"] == "event"}
    assert len(keys) == 6 and "(other)" in keys
    assert sum(r["n"] for r in daily) == 20


def test_concurrent_threads_lose_nothing(sdk: EdgePersona, data_dir: Path) -> None:
    def worker(offset: int) -> None:
        for i in range(2000):
            sdk.track_event("view", float(i), ts=T0 + offset + i / 10_000)
            if i % 500 == 0:
                sdk.flush()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sdk.flush()
    assert rows(data_dir, "SELECT COUNT(*) FROM events") == [(8000,)]
    assert rows(data_dir, "SELECT SUM(n) FROM rollup_daily WHERE kind = 'event'") == [(8000,)]


def test_reopen_keeps_everything(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        sdk.consent.grant("personalization")
        sdk.track_event("view", ts=T0)
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        assert sdk.consent.status("personalization") is True
        assert len(sdk.export()["signals"]["event"]) == 1


def test_one_writer_per_database_in_a_process(sdk: EdgePersona, data_dir: Path) -> None:
    with pytest.raises(StoreError, match="already open"):
        EdgePersona.open(data_dir, "again")


def test_database_from_a_newer_sdk_is_refused(data_dir: Path, clock: ManualClock) -> None:
    EdgePersona.open(data_dir, "app", clock=clock).close()
    with sqlite3.connect(data_dir / "edgepersona.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="upgrade the SDK"):
        EdgePersona.open(data_dir, "app", clock=clock)


def test_unopenable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        EdgePersona.open(blocker / "device", "app")


def test_export_holds_everything_and_is_json(sdk: EdgePersona) -> None:
    sdk.track_app("com.spotify.music", ts=T0, duration_s=60)
    sdk.track_screen("home", ts=T0, duration_s=5)
    sdk.track_event("add_to_cart", 3.0, ts=T0)
    sdk.record_location(48.85, 2.35, ts=T0)
    exported = json.loads(json.dumps(sdk.export()))
    assert exported["format"] == "edgepersona-export/1"
    assert exported["app_id"] == "com.example.shop"
    assert {k: len(v) for k, v in exported["signals"].items()} == {
        "location": 1,
        "app": 1,
        "screen": 1,
        "event": 1,
    }
    assert exported["signals"]["app"][0]["app"] == "com.spotify.music"
    assert [a["purpose"] for a in exported["consent_audit"]] == ["personalization", "location"]
    assert exported["rollups"]["hourly"] and exported["rollups"]["daily"]


def test_erase_leaves_no_file_behind(sdk: EdgePersona, data_dir: Path) -> None:
    sdk.track_event("view", ts=T0)
    sdk.flush()
    sdk.track_event("view", ts=T0 + 1)  # buffered, never written
    sdk.erase()
    assert not data_dir.exists() or list(data_dir.iterdir()) == []
    with pytest.raises(StoreClosedError):
        sdk.track_event("view", ts=T0 + 2)
    with pytest.raises(StoreClosedError):
        sdk.export()


def test_close_is_idempotent_and_closes_open_rows(data_dir: Path, clock: ManualClock) -> None:
    sdk = EdgePersona.open(data_dir, "app", clock=clock, tz="UTC")
    sdk.consent.grant("personalization")
    sdk.track_app("com.netflix.mediaclient", ts=T0)
    clock.advance(120)
    sdk.close()
    sdk.close()
    assert rows(data_dir, "SELECT app, duration_s FROM app_usage") == [
        ("com.netflix.mediaclient", 120.0)
    ]


def test_a_failure_after_the_commit_does_not_write_the_batch_twice(
    sdk: EdgePersona, data_dir: Path
) -> None:
    def failing_hook(hourly: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    hooks = sdk._store.after_commit
    hooks.append(failing_hook)
    sdk.track_event("view", ts=T0)
    with pytest.raises(sqlite3.OperationalError):
        sdk.flush()
    hooks.remove(failing_hook)
    assert sdk.stats()["buffered"] == 0  # committed, so not put back for another write
    sdk.track_event("buy", ts=T0 + 1)
    sdk.flush()
    assert rows(data_dir, "SELECT name FROM events ORDER BY ts") == [("view",), ("buy",)]
    assert rows(data_dir, "SELECT key, n FROM rollup_daily WHERE kind = 'event' ORDER BY key") == [
        ("buy", 1),
        ("view", 1),
    ]


def test_the_wal_file_stays_bounded_and_maintain_empties_it(
    data_dir: Path, clock: ManualClock
) -> None:
    settings = Settings(flush_max_rows=2_000, flush_interval_s=3600)
    wal = data_dir / "edgepersona.db-wal"
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        peak = 0
        for batch in range(40):  # ~80k events, a few MiB of pages written through the log
            for i in range(2_000):
                sdk.track_event("view_" + str(i % 50), float(i), ts=T0 + batch * 2_000 + i)
            sdk.flush()
            peak = max(peak, wal.stat().st_size)
        assert (data_dir / "edgepersona.db").stat().st_size > 2 * (1 << 20)
        assert peak < 2 * (1 << 20)  # SQLite's default would let it reach ~4 MiB and stay
        sdk.maintain()
        assert wal.stat().st_size == 0
