"""Everything that depends on the database, run once on SQLite and once on PostgreSQL.

``StoreContract`` holds the tests; each subclass only says where the database is (the Flower
pattern). Rows are counted in the database itself, not inferred from answers.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import secrets
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Table, UniqueConstraint, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from edgepersona.backend.db import engine, init_db
from edgepersona.backend.errors import SchemaError
from edgepersona.backend.migrations import LATEST, MIGRATIONS, current_version, migrate
from edgepersona.backend.payload import validate_upload
from edgepersona.backend.schema import (
    aggregates,
    devices,
    metadata,
    schema_version,
)
from edgepersona.backend.upload_write import write_upload
from edgepersona.backend.wal_flush import wal_flusher
from edgepersona.backend.web import hash_token
from edgepersona.sdk import ManualClock

from ..conftest import T0
from .conftest import MakeApp, register, valid_payload


def count(app: Flask, table: Table, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine(app).connect() as conn:
        return int(conn.execute(query).scalar_one())


def rate_tat(app: Flask, auth: dict[str, str]) -> float:
    """When the rate-limit bucket of the device whose Authorization header is ``auth`` is full."""
    with engine(app).connect() as conn:
        found = conn.execute(
            select(devices.c.rate_tat).where(devices.c.id == device_id(app, auth))
        ).scalar_one()
    return float(found)


def post(client: FlaskClient, auth: dict[str, str], payload: dict[str, Any]) -> tuple[int, str]:
    """Upload ``payload``; the status and the Retry-After header ("" without one)."""
    response = client.post("/v1/aggregates", json=payload, headers=auth)
    return response.status_code, response.headers.get("Retry-After", "")


def device_id(app: Flask, auth: dict[str, str]) -> str:
    """The id of the device whose Authorization header is ``auth``."""
    token = auth["Authorization"].split()[1]
    with engine(app).connect() as conn:
        found = conn.execute(
            select(devices.c.id).where(devices.c.token_sha256 == hash_token(token))
        ).scalar_one()
    return str(found)


class StoreContract:
    """The storage-dependent behaviour every supported database must show."""

    # How a connection reports whether its commits wait for the disk, and the durable answer.
    COMMIT_MODE_QUERY: str
    DURABLE: object

    # Registration ---------------------------------------------------------------------------

    def test_register_stores_only_the_hash_of_a_random_token(
        self, app: Flask, client: FlaskClient
    ) -> None:
        first, second = client.post("/v1/devices"), client.post("/v1/devices")
        assert first.status_code == second.status_code == 201
        for answer in (first.json, second.json):
            assert answer is not None
            assert len(answer["device_id"]) == 32 and int(answer["device_id"], 16) >= 0
            assert len(answer["token"]) == 43
        assert first.json != second.json
        with engine(app).connect() as conn:
            rows = conn.execute(select(devices)).mappings().all()
        assert len(rows) == 2
        stored = {value for row in rows for value in row.values()}
        assert first.json["token"] not in stored  # type: ignore[index]
        assert all(row["created_at"] == T0 for row in rows)

    # Ingest ---------------------------------------------------------------------------------

    def test_upload_is_stored_once_and_a_replay_answers_duplicate(
        self, app: Flask, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        payload = valid_payload()
        first = client.post("/v1/aggregates", json=payload, headers=auth)
        replay = client.post("/v1/aggregates", json=payload, headers=auth)
        assert (first.status_code, first.json) == (201, {"status": "accepted"})
        assert (replay.status_code, replay.json) == (200, {"status": "duplicate"})
        assert count(app, aggregates) == 1
        with engine(app).connect() as conn:
            row = conn.execute(select(aggregates)).mappings().one()
        assert row["features"] == payload["features"]
        assert (row["week"], row["epsilon"], row["mechanism"]) == ("2026-W10", 1.0, "laplace")
        assert (row["model_version"], row["schema_version"], row["received_at"]) == (3, 1, T0)
        assert row["persona"] == payload["persona"]
        assert row["outcomes"] == {
            o["offer"]: [o["accepted"], o["dismissed"]] for o in payload["outcomes"]
        }
        assert rate_tat(app, auth) == T0 + 3600 / 20  # charged once

    def test_a_replay_with_other_content_is_still_a_duplicate(
        self, app: Flask, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        payload = valid_payload()
        client.post("/v1/aggregates", json=payload, headers=auth)
        changed = {**payload, "epsilon": 2.0, "outcomes": []}
        assert client.post("/v1/aggregates", json=changed, headers=auth).status_code == 200
        with engine(app).connect() as conn:
            stored = conn.execute(select(aggregates.c.epsilon, aggregates.c.outcomes)).one()
        assert (stored.epsilon, len(stored.outcomes)) == (1.0, 2)

    def test_a_failed_write_leaves_nothing_half_written(
        self, app: Flask, auth: dict[str, str]
    ) -> None:
        upload = validate_upload(valid_payload(), T0)
        broken = dataclasses.replace(upload, week=None)  # fails the insert, after the charge
        token_hash = hash_token(auth["Authorization"].split()[1])
        full = rate_tat(app, auth)
        with pytest.raises(IntegrityError):  # the ingest view's write, with a row that fails
            write_upload(engine(app), token_hash, broken, T0, limit=20)
        assert count(app, aggregates) == 0
        assert rate_tat(app, auth) == full  # the charge was rolled back too
        # and the connection went back to the pool usable
        assert write_upload(engine(app), token_hash, upload, T0, limit=20).status == "accepted"

    def test_background_flush_answers_as_each_and_later_writes_still_wait_for_the_disk(
        self, make_app: MakeApp
    ) -> None:
        app = make_app(UPLOAD_FLUSH="background", RATE_LIMIT_UPLOADS_PER_HOUR=2)
        with app.app_context():
            init_db()
        client = app.test_client()
        auth = register(client)
        payload = valid_payload()
        assert post(client, auth, payload) == (201, "")
        assert post(client, auth, payload) == (200, "")
        assert post(client, auth, valid_payload()) == (201, "")
        assert post(client, auth, payload) == (429, "1800")
        assert count(app, aggregates) == 2
        # The upload's commit mode ends with its transaction: the connection it used (the
        # pool's only one here) commits the next write durably.
        with engine(app).connect() as conn:
            assert conn.exec_driver_sql(self.COMMIT_MODE_QUERY).scalar() == self.DURABLE

    def test_a_refused_upload_stores_nothing(
        self, app: Flask, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        full = rate_tat(app, auth)
        bad = valid_payload(features=[0.0])
        assert client.post("/v1/aggregates", json=bad, headers=auth).status_code == 422
        assert count(app, aggregates) == 0
        assert rate_tat(app, auth) == full

    # Rate limit -----------------------------------------------------------------------------

    def test_a_burst_of_the_limit_then_one_upload_per_interval(
        self, make_app: MakeApp, clock: ManualClock
    ) -> None:
        app = make_app(RATE_LIMIT_UPLOADS_PER_HOUR=3)  # one upload back every 1200 s
        with app.app_context():
            init_db()
        client = app.test_client()
        auth, other = register(client), register(client)
        assert [post(client, auth, valid_payload())[0] for _ in range(3)] == [201] * 3
        limited = client.post("/v1/aggregates", json=valid_payload(), headers=auth)
        assert limited.status_code == 429
        assert limited.json["error"]["code"] == "rate_limited"  # type: ignore[index]
        assert "retry in 1200 seconds" in limited.json["error"]["message"]  # type: ignore[index]
        assert limited.headers["Retry-After"] == "1200"
        # Another device is not affected.
        assert post(client, other, valid_payload()) == (201, "")
        clock.advance(1199)
        assert post(client, auth, valid_payload()) == (429, "1")
        clock.advance(1)  # one upload refilled, and only one
        assert post(client, auth, valid_payload()) == (201, "")
        assert post(client, auth, valid_payload()) == (429, "1200")
        clock.advance(2 * 3600)  # an idle spell refills the bucket up to the burst, no further
        assert [post(client, auth, valid_payload())[0] for _ in range(4)] == [201] * 3 + [429]
        assert count(app, aggregates) == 3 + 1 + 1 + 3

    def test_a_limit_that_does_not_divide_the_hour_allows_its_whole_burst(
        self, make_app: MakeApp
    ) -> None:
        app = make_app(RATE_LIMIT_UPLOADS_PER_HOUR=7)  # 514.29 s per upload, inexact in binary
        with app.app_context():
            init_db()
        client = app.test_client()
        auth = register(client)
        assert [post(client, auth, valid_payload())[0] for _ in range(7)] == [201] * 7
        assert post(client, auth, valid_payload()) == (429, "515")

    def test_replays_and_refused_uploads_are_not_charged(self, make_app: MakeApp) -> None:
        app = make_app(RATE_LIMIT_UPLOADS_PER_HOUR=2)
        with app.app_context():
            init_db()
        client = app.test_client()
        auth = register(client)
        payload = valid_payload()
        for _ in range(5):
            assert client.post("/v1/aggregates", json={}, headers=auth).status_code == 422
        assert post(client, auth, payload) == (201, "")
        for _ in range(3):
            assert post(client, auth, payload) == (200, "")
        assert post(client, auth, valid_payload()) == (201, "")
        assert post(client, auth, valid_payload()) == (429, "1800")
        # The rate limit is checked before the duplicate: an empty bucket refuses a replay too.
        assert post(client, auth, payload) == (429, "1800")
        assert count(app, aggregates) == 2

    def test_rate_limit_holds_across_workers_and_concurrent_requests(
        self, make_app: MakeApp
    ) -> None:
        workers = [make_app(RATE_LIMIT_UPLOADS_PER_HOUR=5) for _ in range(2)]
        with workers[0].app_context():
            init_db()
        auth = register(workers[0].test_client())
        statuses: list[int] = []
        replay = valid_payload()

        def send(worker: Flask, payload: dict[str, Any]) -> None:
            response = worker.test_client().post("/v1/aggregates", json=payload, headers=auth)
            statuses.append(response.status_code)

        threads = [
            threading.Thread(target=send, args=(workers[i % 2], valid_payload())) for i in range(8)
        ] + [threading.Thread(target=send, args=(workers[i % 2], replay)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Nine distinct uploads for a burst of five: exactly five stored, whichever they are;
        # a replay is answered 200 (not charged) or 429 (no upload left), never stored again.
        assert set(statuses) <= {200, 201, 429}
        assert statuses.count(201) == 5
        assert statuses.count(200) + statuses.count(429) == 7
        assert count(workers[1], aggregates) == 5
        assert rate_tat(workers[1], auth) == T0 + 5 * 720  # five charges, none refunded twice

    # Isolation and erasure ------------------------------------------------------------------

    def test_devices_cannot_touch_each_others_rows(self, app: Flask, client: FlaskClient) -> None:
        alice, bob = register(client), register(client)
        shared_id = valid_payload()["upload_id"]
        # The same upload id from two devices is two uploads: ids are scoped to a device.
        for auth in (alice, bob):
            response = client.post(
                "/v1/aggregates", json=valid_payload(upload_id=shared_id), headers=auth
            )
            assert response.status_code == 201
        alice_id, bob_id = device_id(app, alice), device_id(app, bob)
        assert count(app, aggregates, device_id=alice_id) == 1
        assert client.delete("/v1/devices/me", headers=bob).status_code == 204
        assert count(app, aggregates, device_id=alice_id) == 1
        assert count(app, devices, id=alice_id) == 1
        assert count(app, aggregates, device_id=bob_id) == 0

    def test_erase_deletes_every_row_of_the_device_and_kills_its_token(
        self, app: Flask, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        for _ in range(3):
            client.post("/v1/aggregates", json=valid_payload(), headers=auth)
        gone = client.delete("/v1/devices/me", headers=auth)
        assert (gone.status_code, gone.data, gone.content_type) == (204, b"", None)
        for table in (devices, aggregates):
            assert count(app, table) == 0, table.name
        for method, path in (("delete", "/v1/devices/me"), ("post", "/v1/aggregates")):
            response = getattr(client, method)(path, json=valid_payload(), headers=auth)
            assert response.status_code == 401
            assert "register again" in response.json["error"]["message"]

    # Schema ---------------------------------------------------------------------------------

    def test_migrations_build_exactly_the_declared_tables(self, app: Flask) -> None:
        with engine(app).connect() as conn:
            found = inspect(conn)
            assert set(found.get_table_names()) == set(metadata.tables)
            for table in metadata.sorted_tables:
                columns = {c["name"]: c["nullable"] for c in found.get_columns(table.name)}
                assert columns == {c.name: c.nullable for c in table.columns}, table.name
                indexes = {i["name"] for i in found.get_indexes(table.name)}
                assert indexes >= {i.name for i in table.indexes}, table.name
                unique = {
                    tuple(u["column_names"]) for u in found.get_unique_constraints(table.name)
                }
                declared = {
                    tuple(c.name for c in constraint.columns)
                    for constraint in table.constraints
                    if isinstance(constraint, UniqueConstraint)
                }
                assert unique >= declared, table.name
                keys = found.get_pk_constraint(table.name)["constrained_columns"]
                assert keys == [c.name for c in table.primary_key.columns], table.name

    def test_migrate_is_idempotent_and_refuses_a_newer_database(self, app: Flask) -> None:
        assert migrate(engine(app)) == LATEST
        with engine(app).begin() as conn:
            assert current_version(conn) == LATEST
            conn.execute(schema_version.update().values(version=LATEST + 1))
        with pytest.raises(SchemaError, match="upgrade edgepersona"):
            migrate(engine(app))

    def test_a_version_3_database_is_upgraded_keeping_its_devices(self, make_app: MakeApp) -> None:
        app = make_app()
        token = secrets.token_urlsafe(32)
        with engine(app).begin() as conn:
            for step in MIGRATIONS[:3]:
                step(conn)
            conn.execute(insert(schema_version).values(version=3))
            conn.execute(
                text("INSERT INTO devices (id, token_sha256, created_at) VALUES ('d', :t, :at)"),
                {"t": hash_token(token), "at": T0},
            )
            conn.execute(
                text("INSERT INTO uploads_log (device_id, at) VALUES ('d', :at)"), {"at": T0}
            )
        assert migrate(engine(app)) == 3
        with engine(app).connect() as conn:
            assert not inspect(conn).has_table("uploads_log")
            assert conn.execute(select(devices.c.rate_tat)).scalar_one() == 0.0  # a full bucket
        auth = {"Authorization": f"Bearer {token}"}
        assert post(app.test_client(), auth, valid_payload()) == (201, "")
        assert count(app, aggregates, device_id="d") == 1

    def test_a_version_4_database_keeps_its_outcomes_in_the_aggregate_rows(
        self, make_app: MakeApp
    ) -> None:
        app = make_app()
        columns = "device_id, upload_id, week, schema_version, model_version, epsilon, "
        columns += "mechanism, features, sdk_version, received_at"
        with engine(app).begin() as conn:
            for step in MIGRATIONS[:4]:
                step(conn)
            conn.execute(insert(schema_version).values(version=4))
            conn.execute(
                text("INSERT INTO devices (id, token_sha256, created_at) VALUES ('d', 't', 0)")
            )
            for upload_id in ("with", "without"):  # outcome rows, and none
                conn.execute(
                    text(
                        f"INSERT INTO aggregates ({columns}) VALUES ('d', :u, '2026-W10', 1, 3, "
                        "1.0, 'laplace', '[0.5]', '0.1.0', 0)"
                    ),
                    {"u": upload_id},
                )
            conn.execute(
                text(
                    "INSERT INTO outcomes (aggregate_id, persona, offer, accepted, dismissed) "
                    "SELECT id, 'commuter', :offer, :accepted, :dismissed FROM aggregates "
                    "WHERE upload_id = 'with'"
                ),
                [
                    {"offer": "coffee", "accepted": 2.5, "dismissed": -0.125},
                    {"offer": "lunch", "accepted": 1e-7, "dismissed": 0.1 + 0.2},
                ],
            )
        assert migrate(engine(app)) == 4
        with engine(app).connect() as conn:
            assert not inspect(conn).has_table("outcomes")
            rows = conn.execute(
                select(
                    aggregates.c.upload_id, aggregates.c.persona, aggregates.c.outcomes
                ).order_by(aggregates.c.upload_id)
            ).all()
        assert [tuple(row) for row in rows] == [
            ("with", "commuter", {"coffee": [2.5, -0.125], "lunch": [1e-7, 0.1 + 0.2]}),
            ("without", None, {}),
        ]

    def test_init_db_command_and_health_before_and_after(self, make_app: MakeApp) -> None:
        app = make_app()
        client = app.test_client()
        before = client.get("/healthz")
        assert before.status_code == 503
        assert before.json["database"] == f"schema version 0, expected {LATEST}"  # type: ignore[index]
        assert "init-db" in before.json["error"]["message"]  # type: ignore[index]
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert f"from schema version 0 to {LATEST}" in result.output
        again = app.test_cli_runner().invoke(args=["init-db"])
        assert "already at schema version" in again.output
        assert client.get("/healthz").json == {"status": "ok", "database": "ok"}

    def test_a_device_row_cannot_be_inserted_twice_with_one_token(self, app: Flask) -> None:
        row = {"token_sha256": "0" * 64, "created_at": T0}
        with engine(app).connect() as conn:
            conn.execute(insert(devices).values(id="a" * 32, **row))
            conn.commit()
            with pytest.raises(IntegrityError):
                conn.execute(insert(devices).values(id="b" * 32, **row))


class TestSQLite(StoreContract):
    """The default database: a file in a temporary folder (see conftest.database_url)."""

    COMMIT_MODE_QUERY, DURABLE = "PRAGMA synchronous", 2  # FULL

    @pytest.mark.parametrize("flush", ["each", "background"])
    def test_only_a_background_upload_commits_without_waiting_for_the_disk(
        self, make_app: MakeApp, flush: str
    ) -> None:
        app = make_app(UPLOAD_FLUSH=flush)
        with app.app_context():
            init_db()
        client = app.test_client()
        auth = register(client)
        bound = engine(app)
        bound.dispose()  # connections made from here on report their statements
        statements: list[str] = []
        event.listen(bound, "connect", lambda conn, _: conn.set_trace_callback(statements.append))
        assert post(client, auth, valid_payload()) == (201, "")
        commit = statements.index("COMMIT")
        modes = [s for s in statements if s.startswith("PRAGMA synchronous")]
        flusher = wal_flusher(str(bound.url.database))
        if flush == "each":
            assert modes == []
            assert not flusher.pending and flusher.flushes == 0
        else:
            assert modes == ["PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL"]
            assert statements.index(modes[0]) < commit < statements.index(modes[1])
            assert flusher.pending or flusher.flushes == 1  # its thread may have run already

    def test_upload_writers_take_turns_through_the_lock_file(
        self, app: Flask, auth: dict[str, str]
    ) -> None:
        answers: list[int] = []
        upload = threading.Thread(
            target=lambda: answers.append(post(app.test_client(), auth, valid_payload())[0])
        )
        lock = os.open(f"{engine(app).url.database}-writer.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker's turn
            upload.start()
            upload.join(0.5)
            assert upload.is_alive() and count(app, aggregates) == 0  # it waits its turn
        finally:
            os.close(lock)
        upload.join()
        assert answers == [201] and count(app, aggregates) == 1


class TestPostgreSQL(StoreContract):
    """The real server; this session's own database, emptied before each test."""

    COMMIT_MODE_QUERY, DURABLE = "SHOW synchronous_commit", "on"

    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
