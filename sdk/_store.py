"""The on-device store: one SQLite file (WAL), one writer, a buffer in front of it.

Why a buffer: a ``track_*`` call on the UI thread must cost microseconds, while a SQLite
commit costs milliseconds. Calls append to an in-memory list; a writer thread commits the
list in one transaction when it holds ``flush_max_rows`` rows or ``flush_interval_s`` has
passed, and ``flush()``/``close()`` commit at once. What a crash can lose is exactly what
was not yet committed: the buffered rows (at most ``flush_max_rows``, or the signals of the
last ``flush_interval_s`` seconds) plus each still-open foreground row (see ``_signals``).
Everything a ``flush()`` returned from is on disk; with ``durability="normal"`` a power cut
(not a process kill) may also roll back the last transactions, never corrupt the file.

When the file cannot be written (disk full) the rows wait in the buffer and the writer tries
again every ``flush_interval_s``; a crash then loses all of them. The buffer never holds more
than ``max_buffered_rows``: once it is full and the last write failed, each new signal is
dropped and counted as ``dropped.storage_full`` on its local day (in ``daily_counts``, written
once there is room); ``track_*`` and ``decide()`` still return without raising, and a
``track_*`` whose own signal was dropped returns ``False``. The newest are dropped, not the
oldest: the buffer stays an unbroken run of what the app tracked after the last commit, so
what reaches the disk has one gap, at its end, and dropping at the door costs nothing on the
caller's thread (removing the oldest of 50,000 rows moves the whole list on every call).

All database access goes through one connection guarded by one lock, so the UI thread, a
plyer callback thread and the writer can use the store at once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from . import _rollups
from ._localtime import Zone, day_key, hour_key
from ._schema import RAW_TABLES, ROLLUP_ONLY_KINDS, TABLE_OF_KIND, migrate
from .clock import Clock
from .errors import StoreClosedError, StoreError

T = TypeVar("T")
DB_NAME = "edgepersona.db"
_DB_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal")
_MAINTENANCE_EVERY_S = 3600.0
_VACUUM_MIN_FREE_PAGES = 256  # 1 MiB of 4 KiB pages
# By default SQLite checkpoints every 1,000 pages and keeps the WAL file at the largest size
# it reached (~4 MiB): on a phone that was most of the footprint. Checkpointing every 1 MiB
# and cutting the file back to that when the log restarts cost no measurable replay speed.
_WAL_LIMIT_BYTES = 1 << 20
_WAL_CHECKPOINT_PAGES = 256  # 1 MiB of 4 KiB pages
_OPEN_PATHS: set[Path] = set()
_OPEN_PATHS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """How much the device keeps, how often it writes, how far back it looks.

    Defaults suit a phone; every field is validated when the object is made.
    """

    retention_days: float = 35.0  # raw rows older than this are deleted (rollups keep them)
    hourly_rollup_days: float = 90.0
    daily_rollup_days: float = 400.0
    max_raw_rows: int = 500_000  # per kind; oldest deleted first, whatever the app sends
    max_keys_per_day: int = 200  # distinct screen/event names per day before "(other)"
    flush_interval_s: float = 1.0
    flush_max_rows: int = 1_000
    max_buffered_rows: int = 50_000  # past this a track call commits or, on a full disk, drops
    foreground_cap_s: float = 1_800.0  # an app row with no successor counts at most this long
    feature_window_days: int = 28  # features and the persona look at this many local days
    durability: str = "normal"  # "normal" or "full" (fsync every commit)

    def __post_init__(self) -> None:
        if self.durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        for name in (
            "retention_days",
            "hourly_rollup_days",
            "daily_rollup_days",
            "flush_interval_s",
            "foreground_cap_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in (
            "max_raw_rows",
            "max_keys_per_day",
            "flush_max_rows",
            "max_buffered_rows",
            "feature_window_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


Row = tuple[str, float, Zone, tuple[Any, ...]]  # kind, ts, zone of the signal, kind's fields
# Committed rows per kind, each ``(ts, utc_offset, *fields)``, in the order they were tracked.
Batch = dict[str, list[tuple[Any, ...]]]
InTransaction = Callable[[Batch, sqlite3.Connection], None]
AfterCommit = Callable[[_rollups.Sums], None]


class Store:
    """SQLite store with a buffered single writer; see the module docstring for guarantees."""

    def __init__(self, data_dir: Path, clock: Clock, settings: Settings, zone: Zone) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME
        self.settings = settings
        self.zone = zone
        self._clock = clock
        self._buffer: list[Row] = []
        self._flush_max_rows = settings.flush_max_rows  # read on every append
        self._max_buffered_rows = settings.max_buffered_rows
        self._counts: dict[tuple[str, str], int] = {}
        self._buf_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._known_keys: dict[tuple[str, str], set[str]] = {}
        self._next_maintenance = 0.0
        self._closed = False
        self.last_write_error: str | None = None
        # Derived state (places, activity) hooks into every commit: one pass over new rows.
        self.in_transaction: list[InTransaction] = []
        self.after_commit: list[AfterCommit] = []
        self.after_flush: list[Callable[[], None]] = []
        self._claim(self.path)
        try:
            self._conn = self._connect()
        except BaseException:
            self._release(self.path)
            raise
        self.db = sqlite_utils.Database(self._conn)
        self._wake = threading.Event()
        self._writer = threading.Thread(
            target=self._run_writer, name="edgepersona-writer", daemon=True
        )
        self._writer.start()

    # -- the hot path -------------------------------------------------------------------

    def append(self, kind: str, ts: float, zone: Zone, fields: tuple[Any, ...]) -> bool:
        """Buffer one validated signal; ``False`` if it was dropped because storage is full.

        Never raises for storage: past ``max_buffered_rows`` it commits the buffer on the
        caller's thread, and when that fails (or the last write failed) the signal is
        dropped and counted as ``dropped.storage_full``, so memory stays bounded.
        """
        with self._buf_lock:
            if self._closed:
                raise StoreClosedError("this EdgePersona was closed; open a new one")
            if len(self._buffer) >= self._max_buffered_rows and self.last_write_error:
                # The writer retries on its own interval; a 50,000-row transaction that
                # fails again would cost the UI thread milliseconds on every call.
                self._count("dropped.storage_full", ts, zone, 1)
                return False
            self._buffer.append((kind, ts, zone, fields))
            size = len(self._buffer)
        if size == self._flush_max_rows:
            self._wake.set()  # once per batch: setting an Event costs more than the append
        elif size >= self._max_buffered_rows:
            # The writer is not keeping up: the caller pays, memory stays bounded. A failed
            # commit keeps the rows buffered (this one too) and makes the next calls drop.
            with contextlib.suppress(StoreError):
                self.flush()
        return True

    def count(self, name: str, ts: float, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` of the local day of ``ts``; written with the buffer."""
        with self._buf_lock:
            self._count(name, ts, self.zone, n)

    def _count(self, name: str, ts: float, zone: Zone, n: int) -> None:
        """``count()`` with ``_buf_lock`` held by the caller."""
        key = (day_key(ts + zone.offset(ts)), name)
        self._counts[key] = self._counts.get(key, 0) + n

    def buffered(self) -> int:
        return len(self._buffer)

    def discard_buffered(self, kinds: set[str]) -> None:
        with self._buf_lock:
            self._buffer = [row for row in self._buffer if row[0] not in kinds]

    # -- writing ------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit everything buffered so far; on return it is on disk.

        Raises ``StoreError`` when the transaction fails: its rows go back to the buffer for
        the next attempt. Once it has committed, nothing puts them back (they would be
        written twice): an after-commit hook's exception propagates, and the hourly vacuum,
        which only gives free pages back to the file system, is retried at the next hour.
        """
        with self._flush_lock:
            with self._buf_lock:
                batch, self._buffer = self._buffer, []
                counts, self._counts = self._counts, {}
            if self._closed and not batch and not counts:
                return
            with self._db_lock:
                self._check_open()
                now = self._clock.time()
                due = now >= self._next_maintenance
                try:
                    # Retention shares the batch's transaction: one commit, not two.
                    with self._transaction():
                        hourly = self._write(batch, counts)
                        if due:
                            self._retain(now)
                except sqlite3.Error as exc:
                    with self._buf_lock:  # keep the rows for the next attempt: nothing is lost
                        self._buffer[:0] = batch
                        for key, n in counts.items():
                            self._counts[key] = self._counts.get(key, 0) + n
                    self.last_write_error = str(exc)
                    raise StoreError(
                        f"writing to {self.path} failed ({exc}); rows kept in memory"
                    ) from exc
                self.last_write_error = None
                if due:
                    self._next_maintenance = now + _MAINTENANCE_EVERY_S
                for hook in self.after_commit:
                    hook(hourly)
                if due:
                    try:
                        self._vacuum(force=False)
                    except sqlite3.Error as exc:
                        self.last_write_error = f"vacuum failed ({exc}); the rows are committed"
        if batch:
            for after in self.after_flush:  # outside every lock: these may call back into us
                after()

    def _write(self, batch: list[Row], counts: dict[tuple[str, str], int]) -> _rollups.Sums:
        by_kind: Batch = {kind: [] for kind in (*RAW_TABLES, *ROLLUP_ONLY_KINDS)}
        last_zone, offset, valid_from, valid_to = None, 0, 0.0, -1.0
        for kind, ts, zone, fields in batch:
            if zone is not last_zone or not valid_from <= ts < valid_to:
                offset, valid_from, valid_to = zone.span(ts)  # a whole day, mostly
                last_zone = zone
            by_kind[kind].append((ts, offset, *fields))
        hourly_slots: dict[tuple[int, str, str], list[float]] = {}
        for kind, rows in by_kind.items():
            if not rows:
                continue
            if kind in RAW_TABLES:
                columns = RAW_TABLES[kind]
                self._conn.executemany(
                    f"INSERT INTO {TABLE_OF_KIND[kind]} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    rows,
                )
            if kind == "location":  # most rows: only counted, per local hour
                _rollups.fold_counts(kind, "fix", [row[0] + row[1] for row in rows], hourly_slots)
            elif kind != "decision":
                _rollups.fold(kind, _rollup_rows(kind, rows), hourly_slots)
        for hook in self.in_transaction:
            hook(by_kind, self._conn)
        hourly = _rollups.named(hourly_slots)
        self._load_known_keys(hourly)
        hourly = _rollups.cap_keys(hourly, self._known_keys, self.settings.max_keys_per_day)
        for table, period, sums in (
            ("rollup_hourly", "hour", hourly),
            ("rollup_daily", "day", _rollups.days_of(hourly)),
        ):
            self._conn.executemany(
                f"INSERT INTO {table} ({period}, kind, key, n, seconds, value) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n, "
                "seconds = seconds + excluded.seconds, value = value + excluded.value",
                [(*key, *values) for key, values in sums.items()],
            )
        self._conn.executemany(
            "INSERT INTO daily_counts (day, name, n) VALUES (?, ?, ?) "
            "ON CONFLICT DO UPDATE SET n = n + excluded.n",
            [(day, name, n) for (day, name), n in counts.items()],
        )
        return hourly

    def _load_known_keys(self, hourly: _rollups.Sums) -> None:
        if len(self._known_keys) > 64:
            self._known_keys.clear()
        for day, kind in {(hour[:10], kind) for hour, kind, _ in hourly}:
            if (day, kind) not in self._known_keys:
                self._known_keys[(day, kind)] = {
                    key
                    for (key,) in self._conn.execute(
                        "SELECT key FROM rollup_daily WHERE day = ? AND kind = ?", (day, kind)
                    )
                }

    def _retain(self, now: float) -> None:
        """Retention, inside the caller's transaction: drop raw rows past the window or the
        row cap, and old rollups."""
        s = self.settings
        local_now = now + self.zone.offset(now)
        for table in TABLE_OF_KIND.values():
            self._conn.execute(
                f"DELETE FROM {table} WHERE ts < ?", (now - s.retention_days * 86400,)
            )
            # Fewer than the cap between the lowest and highest id means fewer rows than the
            # cap: the exact count (a walk over the table) is only needed past that.
            low, high = self._conn.execute(  # two subqueries: each is one b-tree descent
                f"SELECT (SELECT MIN(id) FROM {table}), (SELECT MAX(id) FROM {table})"
            ).fetchone()
            if high is not None and high - low >= s.max_raw_rows:
                self._conn.execute(
                    f"DELETE FROM {table} WHERE id <= "
                    f"(SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (s.max_raw_rows,),
                )
        self._conn.execute(
            "DELETE FROM rollup_hourly WHERE hour < ?",
            (hour_key(local_now - s.hourly_rollup_days * 86400),),
        )
        self._conn.execute("DELETE FROM stays WHERE end < ?", (now - s.hourly_rollup_days * 86400,))
        oldest_day = day_key(local_now - s.daily_rollup_days * 86400)
        self._conn.execute("DELETE FROM rollup_daily WHERE day < ?", (oldest_day,))
        self._conn.execute("DELETE FROM daily_counts WHERE day < ?", (oldest_day,))

    def _vacuum(self, *, force: bool) -> None:
        """Give freed pages back to the file system: always when asked (``maintain()``),
        else once they add up to ``_VACUUM_MIN_FREE_PAGES``. Freed pages are reused by the
        next inserts anyway, and moving pages on every hourly pass costs a commit each time."""
        if force or self._conn.execute("PRAGMA freelist_count").fetchone()[0] >= (
            _VACUUM_MIN_FREE_PAGES
        ):
            self._conn.executescript("PRAGMA incremental_vacuum;")  # steps to completion

    def maintain(self) -> None:
        """Apply retention now (it also runs by itself at most hourly, on a flush)."""
        self.flush()
        with self._db_lock:
            self._check_open()
            now = self._clock.time()
            with self._transaction():
                self._retain(now)
            self._vacuum(force=True)
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._next_maintenance = now + _MAINTENANCE_EVERY_S

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction, after the buffer so that order is kept.

        All of ``fn`` is committed or none of it. Raises ``StoreError`` when the file cannot
        be written (disk full, I/O error): the transaction is rolled back.
        """
        self.flush()
        with self._db_lock:
            self._check_open()
            try:
                with self._transaction():
                    result = fn(self._conn)
            except sqlite3.OperationalError as exc:
                self.last_write_error = str(exc)
                raise StoreError(
                    f"writing to {self.path} failed ({exc}); nothing of it was kept"
                ) from exc
            self.last_write_error = None
            return result

    def delete_kinds(self, kinds: set[str], tables: tuple[str, ...] = ()) -> None:
        """Delete every raw row and rollup of ``kinds``, and all of ``tables`` (derived data)."""
        self.discard_buffered(kinds)

        def delete(conn: sqlite3.Connection) -> None:
            for table in tables:
                conn.execute(f"DELETE FROM {table}")
            for kind in kinds:
                if kind in TABLE_OF_KIND:
                    conn.execute(f"DELETE FROM {TABLE_OF_KIND[kind]}")
                conn.execute("DELETE FROM rollup_hourly WHERE kind = ?", (kind,))
                conn.execute("DELETE FROM rollup_daily WHERE kind = ?", (kind,))

        self.write(delete)
        with self._db_lock:
            self._known_keys.clear()
            self._conn.executescript("PRAGMA incremental_vacuum;")  # steps to completion

    def read(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn`` on the database after committing the buffer, so it sees every signal."""
        self.flush()
        return self.read_committed(fn)

    def read_committed(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn`` on what is committed, without flushing the buffer first.

        For tables written only through ``write()`` (settings, the upload queue), which are
        always committed: reading them keeps working while the buffer cannot be written.
        """
        with self._db_lock:
            self._check_open()
            try:
                return fn(self.db)
            except sqlite3.OperationalError as exc:
                raise StoreError(f"reading {self.path} failed ({exc})") from exc

    def setting(self, key: str) -> str | None:
        """The value of ``key`` in the ``settings`` table (committed), or ``None``."""
        row = self.read_committed(
            lambda db: db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else str(row[0])

    def settings_under(self, prefix: str) -> dict[str, str]:
        """Every ``settings`` entry whose key starts with ``prefix`` (committed)."""
        return dict(
            self.read_committed(
                lambda db: db.execute(
                    "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ?",
                    (len(prefix), prefix),
                ).fetchall()
            )
        )

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Commit the buffer, stop the writer and close the file. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._shutdown()

    def erase(self) -> None:
        """Delete the database files; buffered rows are discarded, not written."""
        with self._buf_lock:
            self._buffer = []
            self._counts = {}
        self._shutdown()
        for name in _DB_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()
        with contextlib.suppress(OSError):  # the directory goes too, unless the app put files in it
            self.data_dir.rmdir()

    def _shutdown(self) -> None:
        with self._buf_lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        if threading.current_thread() is not self._writer:
            self._writer.join()
        with self._db_lock:
            self._conn.close()
        self._release(self.path)

    def _run_writer(self) -> None:
        interval = self.settings.flush_interval_s
        while not self._closed:
            # A full batch is written at once, unless the last write failed: retrying a full
            # disk in a loop would hold the database lock and burn a core.
            if self.last_write_error or len(self._buffer) < self.settings.flush_max_rows:
                self._wake.wait(interval)
            self._wake.clear()
            if self._closed:
                return
            # A failed write keeps its rows in the buffer; the next round retries them.
            with contextlib.suppress(StoreError):
                self.flush()

    # -- plumbing -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise StoreError(f"{self.path}: this filesystem does not support SQLite WAL")
            conn.execute(f"PRAGMA synchronous = {self.settings.durability.upper()}")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT_BYTES}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
            migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the database at {self.path}: {exc}") from exc
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) may or may not have ended the transaction itself.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this EdgePersona was closed or erased; open a new one")

    @staticmethod
    def _claim(path: Path) -> None:
        key = path.resolve()
        with _OPEN_PATHS_LOCK:
            if key in _OPEN_PATHS:
                raise StoreError(
                    f"{path} is already open in this process; share that EdgePersona instance "
                    "(one writer per database)"
                )
            _OPEN_PATHS.add(key)

    @staticmethod
    def _release(path: Path) -> None:
        with _OPEN_PATHS_LOCK:
            _OPEN_PATHS.discard(path.resolve())


def put_settings(conn: sqlite3.Connection, values: Mapping[str, str | None]) -> None:
    """Set (or, for ``None``, delete) ``settings`` entries, inside the caller's transaction."""
    for key, value in values.items():
        if value is None:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _rollup_rows(kind: str, rows: list[tuple[Any, ...]]) -> list[_rollups.Folded]:
    """(local_ts, key, seconds, value) of raw rows ``(ts, utc_offset, *fields)`` of ``kind``.

    Apps roll up by category, never by app id; screens and events by name. (Fixes are only
    counted, by ``fold_counts``; decisions have no rollup.)
    """
    if kind == "app":
        return [(ts + off, category, d or 0.0, 0.0) for ts, off, _, category, d in rows]
    if kind == "screen":
        return [(ts + off, name, d or 0.0, 0.0) for ts, off, name, d in rows]
    if kind == "event":
        return [(ts + off, name, 0.0, v or 0.0) for ts, off, name, v in rows]
    if kind == "session":  # key, duration_s
        return [(ts + off, key, d or 0.0, 0.0) for ts, off, key, d in rows]
    if kind == "feedback":  # outcomes per persona and offer: what sync reports, noised
        return [
            (ts + off, f"{p or '-'}|{offer}|{outcome}", 0.0, 0.0)
            for ts, off, _, offer, outcome, p in rows
        ]
    raise ValueError(f"no rollup for {kind!r} rows")
