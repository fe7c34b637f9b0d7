"""Pooled PostgreSQL connections are pinged before use only after sitting idle (backend/db.py).

The database's end of a pooled connection is killed with ``pg_terminate_backend`` (which
waits until the server process is gone), as a database restart would.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from edgepersona.backend.db import _create_engine
from edgepersona.backend.migrations import migrate
from edgepersona.backend.payload import validate_upload
from edgepersona.backend.store import create_device
from edgepersona.backend.upload_write import write_upload

from ..conftest import T0
from .conftest import valid_payload


def backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def kill_pooled_connection(engine: Engine, url: str) -> int:
    """Kill the server end of the connection ``engine``'s pool holds; its backend pid."""
    with engine.connect() as conn:
        dead = backend_pid(conn)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": dead}).scalar()
    admin.dispose()
    return dead


def test_an_idle_connection_that_died_is_replaced_before_use(postgres_url: str) -> None:
    engine = _create_engine(postgres_url, ping_after_idle_s=0.0)
    dead = kill_pooled_connection(engine, postgres_url)
    with engine.connect() as conn:  # the ping fails, the pool connects afresh: no error
        assert backend_pid(conn) != dead
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(postgres_url: str) -> None:
    engine = _create_engine(postgres_url, ping_after_idle_s=3600.0)
    dead = kill_pooled_connection(engine, postgres_url)
    with pytest.raises(OperationalError), engine.connect() as conn:  # no ping: the cost
        backend_pid(conn)
    with engine.connect() as conn:  # SQLAlchemy dropped the dead connection
        assert backend_pid(conn) != dead
    engine.dispose()


def test_an_upload_on_a_dead_connection_fails_as_unavailable_and_the_next_reconnects(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The upload write runs on the driver's connection (backend/upload_write.py), outside
    SQLAlchemy's execution layer: its errors must still arrive as SQLAlchemy's (a 503), and a
    dead connection must leave the pool quietly (not through a failed reset logged as an
    error)."""
    engine = _create_engine(postgres_url, ping_after_idle_s=3600.0)
    migrate(engine)
    with engine.begin() as conn:
        create_device(conn, "d" * 32, "token-hash", 0.0)
    upload = validate_upload(valid_payload(), T0)
    dead = kill_pooled_connection(engine, postgres_url)
    with pytest.raises(OperationalError):
        write_upload(engine, "token-hash", upload, T0, limit=20)
    assert write_upload(engine, "token-hash", upload, T0, limit=20).status == "accepted"
    with engine.connect() as conn:
        assert backend_pid(conn) != dead
    engine.dispose()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
