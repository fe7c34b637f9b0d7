"""The flusher that makes background-flushed SQLite uploads durable: driven step by step.

Its thread waits through an injected ``sleep`` that blocks until the test lets it go, so each
interval is one step of the test, and no test waits for real time to pass.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepersona.backend import wal_flush
from edgepersona.backend.wal_flush import WalFlusher, wal_flusher


class Steps:
    """A ``sleep`` for the flusher's thread: each call waits for ``step()`` (or ``release()``)."""

    def __init__(self) -> None:
        self._go: queue.Queue[None] = queue.Queue()
        self._waiting: queue.Queue[None] = queue.Queue()
        self._released = threading.Event()

    def sleep(self, _seconds: float) -> None:
        if self._released.is_set():
            return
        self._waiting.put(None)
        self._go.get()

    def wait_until_asleep(self) -> None:
        self._waiting.get(timeout=10)

    def step(self) -> None:
        """Let one interval pass."""
        self._go.put(None)

    def release(self) -> None:
        """From now on no interval waits: the thread runs out its idle rounds and stops."""
        self._released.set()
        self._go.put(None)


@pytest.fixture
def steps() -> Iterator[Steps]:
    stepper = Steps()
    yield stepper
    stepper.release()  # so no thread outlives its test, waiting


def wal_database(path: Path) -> Path:
    """A SQLite file in WAL mode with one committed row in its -wal file."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    assert (path.parent / (path.name + "-wal")).stat().st_size > 0
    conn.close()  # the last connection: SQLite checkpoints and removes the -wal
    return path


def test_each_commit_is_flushed_at_the_next_interval_then_the_thread_stops(
    tmp_path: Path, steps: Steps
) -> None:
    database = tmp_path / "db.sqlite"
    keep = sqlite3.connect(database)  # keeps the -wal file there
    keep.execute("PRAGMA journal_mode = WAL")
    keep.execute("CREATE TABLE t (x)")
    keep.commit()
    flusher = WalFlusher(str(database), sleep=steps.sleep)
    flusher.committed()
    steps.wait_until_asleep()
    assert flusher.pending and flusher.flushes == 0
    flusher.committed()  # two commits in one interval: one flush
    steps.step()
    steps.wait_until_asleep()
    assert not flusher.pending and flusher.flushes == 1
    for _ in range(wal_flush._IDLE_ROUNDS - 1):  # idle intervals: nothing to flush
        steps.step()
        steps.wait_until_asleep()
    assert flusher.flushes == 1
    thread = flusher._thread
    assert thread is not None
    steps.step()  # the last idle interval: the thread stops
    thread.join(10)
    assert not thread.is_alive() and flusher._thread is None
    flusher.committed()  # and the next commit starts another
    steps.wait_until_asleep()
    steps.step()
    steps.wait_until_asleep()
    assert flusher.flushes == 2
    keep.close()


def test_a_flush_with_nothing_pending_does_nothing_and_a_removed_log_is_not_an_error(
    tmp_path: Path, steps: Steps
) -> None:
    database = wal_database(tmp_path / "db.sqlite")
    flusher = WalFlusher(str(database), sleep=steps.sleep)
    assert flusher.flush() is False
    flusher.committed()
    steps.wait_until_asleep()  # its thread waits: the flush below is this test's own
    assert flusher.flush() is True  # the -wal is gone: checkpointed and synced by SQLite
    assert not flusher.pending and flusher.flushes == 0
    assert flusher.flush() is False


def test_one_flusher_per_file_per_process(tmp_path: Path) -> None:
    assert wal_flusher(str(tmp_path / "a.db")) is wal_flusher(
        str(tmp_path / ".." / tmp_path.name / "a.db")
    )
    assert wal_flusher(str(tmp_path / "a.db")) is not wal_flusher(str(tmp_path / "b.db"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_without_its_parents_flushers(tmp_path: Path) -> None:
    parent = wal_flusher(str(tmp_path / "a.db"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got a new flusher, and leave at once
        os.write(write, b"1" if wal_flusher(str(tmp_path / "a.db")) is not parent else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
