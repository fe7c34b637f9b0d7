"""One SQLAlchemy engine per app, one connection per request, and the ``init-db`` command.

SQLite (the default) runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock up front, so two workers checking the same rate
limit queue up instead of both charging the last upload of a bucket (or one failing with
"database is locked" halfway). PostgreSQL (``postgresql+psycopg://``) gets the same guarantee
from the row lock of the ``UPDATE`` that charges an upload (``backend.upload_write``).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from .migrations import LATEST, migrate

__all__ = ["engine", "get_db", "init_app", "init_db", "read_tx"]

_EXTENSION = "edgepersona.db"
SQLITE_BUSY_TIMEOUT_S = 15.0
# PostgreSQL: a pooled connection is pinged before use only when it sat in the pool longer
# than this. A ping on every request (pool_pre_ping) is one more round trip per upload; a
# connection used a moment ago is almost surely alive, and one that has sat idle (say across a
# database restart) is checked. The cost: a restart while a worker is busy fails that
# worker's next request once (503 database_unavailable, which devices retry); SQLAlchemy then
# replaces the pool's connections.
PING_AFTER_IDLE_S = 1.0
# An execution option (on the connection) and a pool-entry flag: this SQLite connection reads.
_READ_ONLY = "edgepersona_read_only"


def init_app(app: Flask) -> None:
    """Give ``app`` its engine, close each request's connection, and add ``flask init-db``."""
    app.extensions[_EXTENSION] = _create_engine(app.config["DATABASE_URL"])
    app.teardown_appcontext(_close_db)
    app.cli.add_command(_init_db_command)


def engine(app: Flask | None = None) -> Engine:
    """The engine of ``app`` (default: the current app); dispose it when the app is done."""
    found: Engine = (app or current_app).extensions[_EXTENSION]
    return found


def get_db() -> Connection:
    """This request's connection, opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = engine().connect()
    db: Connection = g.db
    return db


@contextlib.contextmanager
def read_tx(bound: Engine) -> Iterator[Connection]:
    """A read-only transaction on a connection of its own: one consistent snapshot, no lock.

    For a long read that writers must not wait for (a retrain's window). SQLite: a deferred
    ``BEGIN`` with ``PRAGMA query_only``; in WAL mode its snapshot is fixed at the first read
    and writers commit meanwhile (the WAL cannot be checkpointed past that snapshot until the
    read ends, so it grows for that long). PostgreSQL: ``REPEATABLE READ, READ ONLY``, so every
    statement sees the snapshot of the first. A write inside raises on both databases.
    """
    if bound.dialect.name == "sqlite":
        options: dict[str, Any] = {_READ_ONLY: True}
    else:
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with bound.execution_options(**options).connect() as conn, conn.begin():
        yield conn


def init_db() -> int:
    """Create or upgrade the current app's tables; return the schema version found before."""
    return migrate(engine())


def _close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()  # rolls back whatever a failed request left open


@click.command("init-db")
@with_appcontext
def _init_db_command() -> None:
    """Create the tables, or upgrade them to this version; safe to run again.

    Example: flask --app edgepersona.backend init-db
    """
    before = init_db()
    if before == LATEST:
        click.echo(f"Database already at schema version {LATEST}.")
    else:
        click.echo(f"Database upgraded from schema version {before} to {LATEST}.")


def _create_engine(url: str, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        created = create_engine(url)
        event.listen(created, "checkin", _on_checkin)
        event.listen(
            created, "checkout", functools.partial(_on_checkout, created.dialect, ping_after_idle_s)
        )
        return created
    created = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(created, "connect", _on_sqlite_connect)
    event.listen(created, "begin", _on_sqlite_begin)
    event.listen(created, "checkin", _on_sqlite_checkin)
    return created


def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _on_checkout(
    dialect: Dialect,
    ping_after_idle_s: float,
    dbapi_connection: Any,
    record: ConnectionPoolEntry,
    _proxy: PoolProxiedConnection,
) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since <= ping_after_idle_s:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as exc:  # whatever the driver raises for a dead connection
        # The pool discards this connection and checks out another (a fresh one if need be).
        raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Stop the sqlite3 module from issuing its own deferred BEGIN; _on_sqlite_begin does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    # Every commit waits for the disk (SQLite's usual default, spelled out): only uploads may
    # be told not to (EDGEPERSONA_UPLOAD_FLUSH, backend.upload_write).
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    if not conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    conn.exec_driver_sql("PRAGMA query_only = ON")
    conn.info[_READ_ONLY] = True  # the pool entry's: _on_sqlite_checkin turns it off again
    conn.exec_driver_sql("BEGIN")


def _on_sqlite_checkin(dbapi_connection: sqlite3.Connection | None, record: Any) -> None:
    # Only a connection that read_tx used: the pooled connection is writable for the next user.
    if record.info.pop(_READ_ONLY, False) and dbapi_connection is not None:
        dbapi_connection.execute("PRAGMA query_only = OFF")
