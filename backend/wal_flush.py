"""Flush a SQLite file's write-ahead log shortly after commits that did not wait for it.

With ``EDGEPERSONA_UPLOAD_FLUSH=background`` an upload commits with ``synchronous=NORMAL``:
its transaction is appended to the ``-wal`` file (in the operating system's cache, so a crash
of the worker or of the whole service loses nothing) and answered without waiting for the disk.
What ``synchronous=FULL`` would add at that commit is one ``fsync`` of the ``-wal`` file; here a
thread of each worker process does that fsync for every commit of the last ``FLUSH_INTERVAL_S``
at once, as PostgreSQL's WAL writer does for asynchronous commits. So a power loss or an
operating-system crash can lose the uploads answered in the last fraction of a second, and
no more; any later durable commit (a registration, an erasure) flushes them too, as the log
is written in order.

The thread starts with the first such commit of a process and stops after a few idle
intervals, so a quiet worker (or a test) holds no thread. One flusher per file per process:
after a fork the child starts with none (a thread does not survive a fork).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["FLUSH_INTERVAL_S", "WalFlusher", "wal_flusher"]

FLUSH_INTERVAL_S = 0.2
# Intervals with nothing to flush before the thread stops (it starts again at the next commit).
_IDLE_ROUNDS = 25

_log = logging.getLogger(__name__)
_flushers: dict[str, WalFlusher] = {}
_flushers_lock = threading.Lock()


def wal_flusher(database: str) -> WalFlusher:
    """This process's flusher of the SQLite file ``database`` (a path)."""
    path = os.path.abspath(database)
    with _flushers_lock:
        flusher = _flushers.get(path)
        if flusher is None:
            flusher = _flushers[path] = WalFlusher(path)
        return flusher


def _forget_flushers() -> None:
    global _flushers_lock
    _flushers.clear()
    _flushers_lock = threading.Lock()  # in case the fork came while another thread held it


os.register_at_fork(after_in_child=_forget_flushers)


class WalFlusher:
    """Makes the commits of one SQLite file durable within about ``interval_s`` seconds.

    ``sleep`` is how the thread waits between flushes; tests pass one they control.
    """

    def __init__(
        self,
        database: str,
        interval_s: float = FLUSH_INTERVAL_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._wal = database + "-wal"
        self._interval_s = interval_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self.flushes = 0  # fsyncs done, for tests and curious operators

    @property
    def pending(self) -> bool:
        """Whether a commit is waiting for the next flush."""
        return self._pending

    def committed(self) -> None:
        """Note a commit that did not wait for the disk; it is flushed at the next interval."""
        with self._lock:
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"wal-flush {self._wal}", daemon=True
                )
                self._thread.start()

    def flush(self) -> bool:
        """Fsync the log if a commit is waiting for it; whether it did.

        Every commit noted before this call is durable when it returns (the fsync covers
        everything written to the file so far). A log that is gone was checkpointed into the
        database file and removed by SQLite, which syncs both first.
        """
        with self._lock:
            if not self._pending:
                return False
            self._pending = False
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            os.fsync(fd)
        except OSError as exc:  # the disk failed: nothing else reports it for these uploads
            _log.error("could not flush %s to disk: %s", self._wal, exc)
        finally:
            os.close(fd)
        self.flushes += 1
        return True

    def _run(self) -> None:
        idle = 0
        while True:
            self._sleep(self._interval_s)
            if self.flush():
                idle = 0
                continue
            idle += 1
            if idle >= _IDLE_ROUNDS:
                with self._lock:
                    if not self._pending:  # else a commit came in just now: go on
                        self._thread = None
                        return
