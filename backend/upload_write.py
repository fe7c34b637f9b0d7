"""An upload's write: charge the device's rate limit, store the upload as one aggregate row.

This is the one write on the service's hot path, and it runs on the database driver's own
connection rather than through SQLAlchemy: on a 2-core machine SQLAlchemy's execution layer
cost four times what SQLite took to run the same statements (about 0.3 ms of an upload's
0.9 ms of worker CPU), and on PostgreSQL every statement is a round trip of its own. So:

- **PostgreSQL**: one statement in autocommit, a chain of data-modifying CTEs (charge the
  device, insert the aggregate from the charged row). One round trip and one commit; psycopg
  prepares it after a few executions.
- **SQLite**: ``BEGIN IMMEDIATE`` (the write lock, as for every write of this service), the
  same two steps as two statements, ``COMMIT``; the workers take turns through a lock file
  first (``_writers_turn``), which wakes a waiting worker at once where SQLite's own lock
  makes it sleep.

The upload's outcome counts go into its row as one JSON object (``schema.aggregates``): a row
per offer made an upload nine inserts, and with one row SQLite ingested 7-13% more uploads a
second in A/B runs (docs/benchmarks.md).

With ``flush="background"`` (``EDGEPERSONA_UPLOAD_FLUSH``) the upload's commit does not wait
for the disk: SQLite commits it with ``synchronous = NORMAL`` (set back to ``FULL`` for the
connection's next user) and ``backend.wal_flush`` fsyncs the log within 0.2 s; PostgreSQL turns
``synchronous_commit`` off for that one transaction, from inside the statement. What that
trades is in docs/backend.md, "Durability".

The statements name the tables of ``backend.schema``; the migrations own their shape, and the
tests run this module on both databases. Driver errors are raised as SQLAlchemy's exceptions
(``OperationalError`` is a 503 like everywhere else), and a connection the driver reports as
dead is invalidated, as SQLAlchemy would.

**The rate limit is GCRA** (the generic cell rate algorithm, a token bucket kept as one number):
each device row holds ``rate_tat``, the time at which its bucket would be full again. An upload
pushes it ``interval = 3600 / limit`` seconds past ``max(rate_tat, now)``, and is allowed when
that stays within an hour of ``now``. So a device with a full bucket may send ``limit`` uploads
at once (the burst), then one every ``interval`` seconds; an idle hour refills the bucket.

The charge is one ``UPDATE ... WHERE ... RETURNING`` that finds the device by its token, checks
its bucket and locks its row, so concurrent uploads on any number of workers see each other's
charges (PostgreSQL re-checks the ``WHERE`` on the row a concurrent update committed; SQLite
holds its write lock). The aggregate is inserted with ``ON CONFLICT DO NOTHING``: a replay
inserts nothing, and is given its charge back (a second statement, for replays only). So the
rate limit is checked before the duplicate, as the contract says: a replay sent while the
bucket is empty gets 429. When nothing was charged, one more read tells an unknown token (401)
from an empty bucket (429, with the wait).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any, Literal, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from .payload import Upload
from .wal_flush import wal_flusher

__all__ = ["RATE_WINDOW_S", "Flush", "Written", "write_upload"]

RATE_WINDOW_S = 3600.0
# Slack for the sum of ``limit`` intervals (3600 / limit each) in floating point: without it a
# limit such as 7 could refuse the 7th upload of a burst by a rounding error of 1e-12 s.
_ROUNDING_S = 1e-6
_ALLOWED_S = RATE_WINDOW_S + _ROUNDING_S

_AGGREGATE_COLUMNS = (
    "device_id, upload_id, week, schema_version, model_version, epsilon, mechanism, features, "
    "sdk_version, received_at, persona, outcomes"
)
# Why a device was not charged: no such device, or its bucket is empty.
_RATE_TAT = {
    "sqlite": "SELECT rate_tat FROM devices WHERE token_sha256 = :token",
    "postgresql": "SELECT rate_tat FROM devices WHERE token_sha256 = %(token)s",
}
_REFUND = {
    "sqlite": "UPDATE devices SET rate_tat = rate_tat - :interval WHERE id = :device_id",
    "postgresql": "UPDATE devices SET rate_tat = rate_tat - %(interval)s WHERE id = %(device_id)s",
}

_SQLITE_CHARGE = f"""
    UPDATE devices SET rate_tat = max(rate_tat, :now) + :interval
    WHERE token_sha256 = :token AND max(rate_tat, :now) + :interval - :now <= {_ALLOWED_S!r}
    RETURNING id"""
_SQLITE_INSERT_AGGREGATE = f"""
    INSERT INTO aggregates ({_AGGREGATE_COLUMNS})
    VALUES (:device_id, :upload_id, :week, :schema_version, :model_version, :epsilon,
            :mechanism, :features, :sdk_version, :now, :persona, :outcomes)
    ON CONFLICT (device_id, upload_id) DO NOTHING
    RETURNING id"""

# The PostgreSQL write, for each ``flush``: "background" commits without waiting for the WAL
# flush (``synchronous_commit`` off for this transaction only, set by the statement itself).
_POSTGRESQL_WRITE = f"""
    WITH background AS (
        SELECT set_config('synchronous_commit', 'off', true) WHERE %(background)s
    ), charged AS (
        UPDATE devices SET rate_tat = GREATEST(rate_tat, %(now)s) + %(interval)s
        WHERE token_sha256 = %(token)s
          AND GREATEST(rate_tat, %(now)s) + %(interval)s - %(now)s <= {_ALLOWED_S!r}
        RETURNING id
    ), stored AS (
        INSERT INTO aggregates ({_AGGREGATE_COLUMNS})
        SELECT id, %(upload_id)s, %(week)s, %(schema_version)s, %(model_version)s, %(epsilon)s,
               %(mechanism)s, %(features)s::json, %(sdk_version)s, %(now)s, %(persona)s,
               %(outcomes)s::json
        FROM charged
        ON CONFLICT (device_id, upload_id) DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM charged), (SELECT id FROM stored), (SELECT 1 FROM background)"""


Flush = Literal["background", "each"]


class Written(NamedTuple):
    """What became of an upload: its status, and for ``rate_limited`` the seconds to wait."""

    status: Literal["accepted", "duplicate", "rate_limited", "unknown_token"]
    retry_after: int = 0


def write_upload(
    bound: Engine,
    token_sha256: str,
    upload: Upload,
    now: float,
    limit: int,
    flush: Flush = "each",
) -> Written:
    """Store ``upload`` for the device holding this token, charged against its ``limit``
    (uploads per hour), at ``now`` (Unix s): all of it or nothing, in one transaction.

    ``flush`` is ``EDGEPERSONA_UPLOAD_FLUSH``: "each" returns once the transaction is on disk;
    "background" once it is committed, the disk flush following within a fraction of a
    second (``backend.wal_flush`` on SQLite, the WAL writer on PostgreSQL).

    Raises SQLAlchemy's ``DBAPIError`` subclasses for database errors (``OperationalError``
    when the database is unavailable or, on SQLite, locked past the busy timeout).
    """
    params = {
        "token": token_sha256,
        "now": now,
        "interval": RATE_WINDOW_S / limit,
        "upload_id": upload.upload_id,
    }
    dialect = bound.dialect.name
    if dialect == "postgresql":
        with _driver_connection(bound) as raw:
            return _write_postgresql(
                raw, {**params, "background": flush == "background"}, upload, limit
            )
    if dialect == "sqlite":
        return _write_sqlite(bound, params, upload, limit, flush)
    raise ValueError(f"uploads are written to SQLite or PostgreSQL, not {dialect}")


def _write_sqlite(
    bound: Engine, params: dict[str, Any], upload: Upload, limit: int, flush: Flush
) -> Written:
    database = bound.url.database
    flusher = (  # none for an in-memory database: nothing there reaches a disk
        wal_flusher(database)
        if flush == "background" and database and database != ":memory:"
        else None
    )
    # The row is made before the writers' turn: the workers wait for each other only while
    # one of them runs its statements.
    row = {**params, **_aggregate(upload)}
    with _driver_connection(bound) as raw:
        if flusher is not None:
            raw.execute("PRAGMA synchronous = NORMAL")  # this connection's next commits
        try:
            with _writers_turn(database):
                written = _sqlite_transaction(raw, row, limit)
        finally:
            if flusher is not None:
                raw.execute("PRAGMA synchronous = FULL")  # every other write waits for the disk
    if flusher is not None:
        flusher.committed()
    return written


def _sqlite_transaction(raw: Any, row: dict[str, Any], limit: int) -> Written:
    cursor = raw.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        written = _sqlite_statements(cursor, row, limit)
        cursor.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            cursor.execute("ROLLBACK")
        raise
    return written


@contextmanager
def _writers_turn(database: str | None) -> Iterator[None]:
    """Wait for this SQLite file's upload writers' lock: a ``flock`` on a file beside it.

    SQLite makes a writer that finds its lock taken sleep and retry (1 ms, 2 ms, 5 ms...), so
    two workers taking turns to write spent a third of their time asleep with the lock free.
    A blocked ``flock`` is woken the moment the holder lets go. Only upload writes take it,
    each for one transaction (bounded by the busy timeout), and it is never taken twice by
    one thread, so waiting on it is bounded; the kernel drops it when a process dies. Other
    writers (registration, erasure, the registry) queue on SQLite's own lock as before.
    """
    if not database or database == ":memory:":
        yield  # a private in-memory database: no other writer
        return
    path = f"{database}-writer.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise sqlite3.OperationalError(f"cannot open the writers' lock {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and so the lock


def _sqlite_statements(cursor: Any, row: dict[str, Any], limit: int) -> Written:
    charged = cursor.execute(_SQLITE_CHARGE, row).fetchone()
    if charged is None:
        return _refusal(cursor.execute(_RATE_TAT["sqlite"], row).fetchone(), row, limit)
    row["device_id"] = charged[0]
    stored = cursor.execute(_SQLITE_INSERT_AGGREGATE, row).fetchone()
    if stored is None:
        cursor.execute(_REFUND["sqlite"], row)
        return Written("duplicate")
    return Written("accepted")


def _write_postgresql(raw: Any, params: dict[str, Any], upload: Upload, limit: int) -> Written:
    raw.autocommit = True  # one statement, its own transaction: no BEGIN, no COMMIT round trip
    try:
        device_id, aggregate_id, _ = raw.execute(
            _POSTGRESQL_WRITE,
            {**params, **_aggregate(upload)},
        ).fetchone()
        if aggregate_id is not None:
            return Written("accepted")
        if device_id is not None:  # charged, but this device had stored this upload already
            raw.execute(_REFUND["postgresql"], {**params, "device_id": device_id})
            return Written("duplicate")
        state = raw.execute(_RATE_TAT["postgresql"], params).fetchone()
    finally:
        if not raw.closed:
            raw.autocommit = False
    return _refusal(state, params, limit)


def _aggregate(upload: Upload) -> dict[str, Any]:
    """The upload's columns of its aggregate row (the device's id comes with the charge)."""
    return {
        "week": upload.week,
        "schema_version": upload.schema_version,
        "model_version": upload.model_version,
        "epsilon": upload.epsilon,
        "mechanism": upload.mechanism,
        "features": json.dumps(upload.features),
        "sdk_version": upload.sdk_version,
        "persona": upload.persona,
        "outcomes": json.dumps({o.offer: [o.accepted, o.dismissed] for o in upload.outcomes}),
    }


def _refusal(state: tuple[float] | None, params: dict[str, Any], limit: int) -> Written:
    """Why an upload was not charged, from its device's ``(rate_tat,)``: unknown or limited.

    On PostgreSQL ``state`` is read just after the write, so a refund may have made room
    meanwhile; that upload is still refused, with the shortest wait.
    """
    if state is None:
        return Written("unknown_token")
    wait = max(state[0], params["now"]) + params["interval"] - params["now"] - _ALLOWED_S
    return Written("rate_limited", max(1, math.ceil(wait)))


@contextmanager
def _driver_connection(bound: Engine) -> Iterator[Any]:
    """A pooled connection's driver connection, its errors raised as SQLAlchemy's."""
    with closing(bound.raw_connection()) as pooled:
        try:
            yield pooled.driver_connection
        except bound.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(bound, pooled, exc) from exc


def _wrapped(bound: Engine, pooled: PoolProxiedConnection, exc: Any) -> BaseException:
    dialect = bound.dialect
    dead = dialect.is_disconnect(exc, pooled.dbapi_connection, None)
    if dead:
        pooled.invalidate(exc)
    return DBAPIError.instance(
        None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=dead, dialect=dialect
    )
