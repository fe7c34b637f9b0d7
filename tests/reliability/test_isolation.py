"""Isolation between devices, admin endpoints closed to devices, and secrets kept out of logs.

Two real SDK devices, A and B, register and upload through the live backend. Then A, with its
own valid token, calls every operation of ``/openapi.json`` pointing at B every way a client
could (B's device id in the query, the body and a header; B's exact upload replayed; B's
token's hash as a credential), and finally erases itself: B's rows are byte for byte what they
were and B's token still works. Every admin operation refuses A's token. Throughout, every log
record of the process (the app's loggers, werkzeug's access log) and the devices' own sync
logs are searched for the tokens, the admin key and the signing key: none appears.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from edgepersona.backend.db import engine
from edgepersona.sdk import ManualClock

from ..sync.conftest import ADMIN_KEY, Backend, DeviceNetwork, OpenDevice, syncing_device
from ..sync.test_model_updates import release
from .conftest import Figures

Rows = dict[str, list[tuple[Any, ...]]]


def rows_of(backend: Backend, device_id: str) -> Rows:
    """Everything the server holds for one device, table by table."""
    queries = {
        "devices": "SELECT * FROM devices WHERE id = :d",
        "aggregates": "SELECT * FROM aggregates WHERE device_id = :d ORDER BY id",
        "outcomes": "SELECT o.* FROM outcomes o JOIN aggregates a ON a.id = o.aggregate_id "
        "WHERE a.device_id = :d ORDER BY o.aggregate_id, o.persona, o.offer",
    }
    with engine(backend.app).connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(sql), {"d": device_id})]
            for table, sql in queries.items()
        }


def operations(client: httpx.Client) -> list[tuple[str, str, bool]]:
    """(method, path with {version} filled, admin?) for every operation the server documents."""
    spec = client.get("/openapi.json").json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            schemes = {name for entry in operation.get("security", []) for name in entry}
            found.append((method.upper(), path.replace("{version}", "2"), "adminKey" in schemes))
    return found


@pytest.fixture
def two_devices(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> dict[str, dict[str, Any]]:
    """A and B registered, each with one upload stored; their ids, tokens and upload bodies."""
    release(backend, 2)  # so that the model endpoints answer A with something
    devices = {}
    for name in ("a", "b"):
        start = len(network.sent)
        sdk = syncing_device(open_device, clock, name=name)
        assert sdk.sync().status == "synced"
        sent = network.sent[start:]
        upload = next(s for s in sent if s.url.endswith("/v1/aggregates"))
        devices[name] = {
            "sdk": sdk,
            "id": sdk.sync_status()["device_id"],
            "token": upload.headers["authorization"].removeprefix("Bearer "),
            "upload": upload.body,
        }
    return devices


def test_a_device_token_can_neither_read_change_nor_erase_another_devices_data(
    two_devices: dict[str, dict[str, Any]],
    backend: Backend,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    figures: Figures,
) -> None:
    caplog.set_level(logging.DEBUG)
    a, b = two_devices["a"], two_devices["b"]
    before = rows_of(backend, b["id"])
    assert before["aggregates"], "B has nothing stored: the test would prove nothing"
    as_a = {"Authorization": f"Bearer {a['token']}"}
    pointing_at_b = {"device_id": b["id"], "device": b["id"], "id": b["id"]}
    attempts = admin_refusals = 0
    with backend.client() as client:
        answers: list[str] = []
        for method, path, admin in operations(client):
            if path == "/v1/devices/me":
                continue  # A erases itself last
            for headers, body in (
                ({**as_a, "X-Device-Id": b["id"]}, pointing_at_b),
                (as_a, None),
            ):
                response = client.request(
                    method, path, params=pointing_at_b, headers=headers, json=body
                )
                attempts += 1
                answers.append(response.text)
                assert response.status_code < 500, (method, path, response.text)
                if admin:
                    assert response.status_code == 403, (method, path, response.status_code)
                    admin_refusals += 1
        # A replays B's exact upload (B's upload_id, B's week) with its own token.
        replay = client.post(
            "/v1/aggregates",
            content=b["upload"],
            headers={**as_a, "Content-Type": "application/json"},
        )
        assert replay.status_code in (200, 201, 429)
        # B's token's hash (what the server stores) is no credential.
        digest = hashlib.sha256(b["token"].encode()).hexdigest()
        for credential in (digest, b["id"], b["token"][:-1]):
            stolen = client.get(
                "/v1/models/current", headers={"Authorization": f"Bearer {credential}"}
            )
            assert stolen.status_code == 401
            attempts += 1
        # Nothing A was answered names B.
        assert not any(b["id"] in answer or b["token"] in answer for answer in answers)
        # A erases itself: B keeps everything, and B's token still works.
        assert client.delete("/v1/devices/me", headers=as_a).status_code == 204
        attempts += 1
        assert client.get("/v1/models/current", headers=as_a).status_code == 401
        as_b = {"Authorization": f"Bearer {b['token']}"}
        assert client.get("/v1/models/current", headers=as_b).status_code in (200, 204, 304)
    assert rows_of(backend, b["id"]) == before
    assert rows_of(backend, a["id"]) == {k: [] for k in before}
    figures.add("isolation", "cross_device_attempts", attempts)
    figures.add("isolation", "admin_calls_refused_to_a_device", admin_refusals)
    check_no_secret_logged(caplog, backend, tmp_path, [a["token"], b["token"]], figures)


def check_no_secret_logged(
    caplog: pytest.LogCaptureFixture,
    backend: Backend,
    tmp_path: Path,
    tokens: list[str],
    figures: Figures,
) -> None:
    pem = (tmp_path / "registry.pem").read_text().splitlines()
    secrets = [*tokens, ADMIN_KEY, *(line for line in pem if "-----" not in line and line)]
    records = [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records]
    assert any("werkzeug" in line and "/v1/aggregates" in line for line in records), (
        "no access log was captured: the check would prove nothing"
    )
    logged = "\n".join(records)
    for data_dir in (tmp_path / "a", tmp_path / "b"):
        with sqlite3.connect(data_dir / "edgepersona.db") as conn:
            logged += "\n".join(str(row) for row in conn.execute("SELECT * FROM sync_log"))
    with engine(backend.app).connect() as conn:
        stored = "\n".join(str(tuple(row)) for row in conn.execute(text("SELECT * FROM devices")))
    leaks = [secret[:6] + "..." for secret in secrets if secret in logged or secret in stored]
    figures.add("isolation", "log_records_searched", len(records))
    figures.add("isolation", "secrets_found_in_logs", len(leaks))
    assert leaks == []
