"""One SQLAlchemy engine per app, one connection per request, and the ``init-db`` command.

SQLite (the default) runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock up front, so two workers checking the same rate
limit queue up instead of both reading "19 uploads" and both writing the 20th (or one failing
with "database is locked" halfway). PostgreSQL (``postgresql+psycopg://``) gets the same
guarantee from ``SELECT ... FOR UPDATE`` on the device row, see ``store.lock_device``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from .migrations import LATEST, migrate

__all__ = ["engine", "get_db", "init_app", "init_db"]

_EXTENSION = "edgepersona.db"
SQLITE_BUSY_TIMEOUT_S = 15.0


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


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        # pre_ping: a worker outlives a database restart without answering errors once.
        return create_engine(url, pool_pre_ping=True)
    created = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(created, "connect", _on_sqlite_connect)
    event.listen(created, "begin", _on_sqlite_begin)
    return created


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Stop the sqlite3 module from issuing its own deferred BEGIN; _on_sqlite_begin does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
