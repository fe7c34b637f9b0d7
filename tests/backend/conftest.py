"""Backend fixtures: apps on a temporary SQLite file or on this run's own PostgreSQL database.

PostgreSQL is not optional: if it cannot be reached, every PostgreSQL test fails with a message
saying so (a skip would let CI pass without the service). The server is found at
``EDGEPERSONA_TEST_POSTGRES_URL`` or, by default, 127.0.0.1:5432 as user ``postgres`` (then
``root``), database ``test``; the run creates a database ``ep_<random>`` there and drops it at
the end. Each test starts from an empty schema.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.sdk import ManualClock
from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION

POSTGRES_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
WEEK_OF_T0 = "2026-W10"  # T0 is Monday 2026-03-02

MakeApp = Callable[..., Flask]


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of this test session on the PostgreSQL server; dropped when the run ends."""
    override = os.environ.get("EDGEPERSONA_TEST_POSTGRES_URL")
    failures = []
    for url in (override,) if override else POSTGRES_CANDIDATES:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            admin.dispose()
            failures.append(f"{make_url(url).render_as_string()}: {exc.orig}")
            continue
        name = f"ep_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    pytest.fail(
        "PostgreSQL is not reachable, and the backend must be tested on it. Start it on "
        "127.0.0.1:5432 with a database 'test' (trust auth for user postgres or root), or point "
        "EDGEPERSONA_TEST_POSTGRES_URL at a server. Tried:\n  " + "\n  ".join(failures),
        pytrace=False,
    )


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    reset = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with reset.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    reset.dispose()
    return postgres_server_url


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Where the app stores its rows; a test class may override this (see test_store.py)."""
    return f"sqlite:///{tmp_path / 'backend.db'}"


@pytest.fixture
def make_app(database_url: str, clock: ManualClock) -> Iterator[MakeApp]:
    """Build apps (think: gunicorn workers) on one database; engines are closed at the end.

    Every setting is given, so the developer's environment cannot change what tests see.
    """
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        config = {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "CLOCK": clock,
            "MAX_CONTENT_LENGTH": 64 * 1024,
            "RATE_LIMIT_UPLOADS_PER_HOUR": 20,
            "K_ANONYMITY_FLOOR": 50,
            "ADMIN_API_KEY": None,
            **overrides,
        }
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        engine(app).dispose()


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    """An app whose database has been migrated."""
    created = make_app()
    with created.app_context():
        init_db()
    return created


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def register(client: FlaskClient) -> dict[str, str]:
    """Register a device; its Authorization header."""
    response = client.post("/v1/devices")
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json['token']}"}  # type: ignore[index]


@pytest.fixture
def auth(client: FlaskClient) -> dict[str, str]:
    """The Authorization header of a freshly registered device."""
    return register(client)


def valid_payload(**overrides: Any) -> dict[str, Any]:
    """An upload that every rule accepts at T0; keyword arguments replace fields."""
    payload: dict[str, Any] = {
        "upload_id": uuid.uuid4().hex,
        "schema_version": SCHEMA_VERSION,
        "week": WEEK_OF_T0,
        "features": [(f.low + f.high) / 2 for f in FEATURES],
        "epsilon": 1.0,
        "mechanism": "laplace",
        "model_version": 3,
        "persona": "commuter",
        "outcomes": [
            {"offer": "coffee-10", "accepted": 2.4, "dismissed": -0.7},
            {"offer": "rail:pass", "accepted": 0.0, "dismissed": 1.2},
        ],
        "sdk_version": "0.1.0",
    }
    payload.update(overrides)
    return payload
