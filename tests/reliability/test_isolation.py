"""Isolation between devices, admin endpoints closed to devices, and secrets kept out of logs.

Two real SDK devices, A and B, register and upload through the live backend. Then A, with its
own valid token, calls every operation of ``/openapi.json`` pointing at B every way a client
could (B's device id in the query, the body and a header; B's exact upload replayed; B's
token's hash as a credential), and finally erases itself: B's rows are byte for byte what they
were and B's token still works. Every admin operation refuses A's token. Throughout, every log
record of the process (the app's loggers, werkzeug's access log) and the devices' own sync
logs are searched for the tokens, the admin key and the signing key: none appears. The same
search runs over gunicorn's access and debug-level error log, with the service run as an
operator would run it.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.keys import generate_keypair
from edgepersona.sdk import EdgePersona, ManualClock

from ..backend.gunicorn_service import backend_env, free_port, running
from ..sync.conftest import ADMIN_KEY, Backend, DeviceNetwork, OpenDevice, syncing_device
from ..sync.test_model_updates import release
from .conftest import Figures

Rows = dict[str, list[tuple[Any, ...]]]


def rows_of(backend: Backend, device_id: str) -> Rows:
    """Everything the server holds for one device, table by table."""
    queries = {
        "devices": "SELECT * FROM devices WHERE id = :d",
        "aggregates": "SELECT * FROM aggregates WHERE device_id = :d ORDER BY id",
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


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """The backend under gunicorn as an operator would run it, with its access log and a
    debug-level error log in one file; its URL, the log and the secrets it was given."""
    database = f"sqlite:///{tmp_path / 'gunicorn.db'}"
    private = tmp_path / "server-key.pem"
    generate_keypair(private, tmp_path / "server-key.pub.json")
    admin_key = "gunicorn-admin-key-" + "7" * 24
    env = backend_env(
        {
            "EDGEPERSONA_DATABASE_URL": database,
            "EDGEPERSONA_ADMIN_API_KEY": admin_key,
            "EDGEPERSONA_SIGNING_KEY_PATH": str(private),
        }
    )
    app = create_app({"DATABASE_URL": database})
    with app.app_context():
        init_db()
    engine(app).dispose()
    port = free_port()
    log = tmp_path / "gunicorn.log"
    command = [
        *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--access-logfile", str(log), "--error-logfile", str(log), "--log-level", "debug"),
        *("--capture-output", "--no-control-socket", "edgepersona.backend:create_app()"),
    ]
    with running(command, env, tmp_path / "gunicorn.out", f"http://127.0.0.1:{port}"):
        pem = [line for line in private.read_text().splitlines() if "-----" not in line]
        yield f"http://127.0.0.1:{port}", log, [admin_key, *pem]


@pytest.mark.slow
def test_gunicorn_logs_hold_no_token_admin_key_or_signing_key(
    gunicorn: tuple[str, Path, list[str]], tmp_path: Path, figures: Figures
) -> None:
    url, log, secrets = gunicorn
    admin = {"Authorization": f"Bearer {secrets[0]}"}
    # A real device syncs one week against the server's real clock.
    now = time.time()
    clock = ManualClock(now - 8 * 86400)
    with EdgePersona.open(tmp_path / "g", "com.example.shop", clock=clock, backend_url=url) as sdk:
        for purpose in ("personalization", "sync"):
            sdk.consent.grant(purpose)
        start = clock.time()
        for day in range(6):
            clock.set(start + day * 86400)
            sdk.track_app("com.whatsapp")
        clock.set(now)
        assert sdk.sync().status == "synced"
    with sqlite3.connect(tmp_path / "g" / "edgepersona.db") as conn:
        (token,) = conn.execute("SELECT value FROM settings WHERE key = 'sync.token'").fetchone()
    device = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        answers = [
            client.get("/v1/admin/models", headers=device),  # 403
            client.get("/v1/admin/models", headers={"Authorization": f"Bearer {token}x"}),
            client.post("/v1/aggregates", headers=device, content=b"{not json"),  # 415
            client.post(
                "/v1/aggregates", headers=device, json={"week": token}
            ),  # 422, the token in a bad field
            client.get("/v1/models/7/bundle", headers=device),  # 404
            client.post("/v1/admin/models/7/promote", headers=admin, json={"percent": 5}),
            client.get("/v1/admin/models", headers=admin),
            client.get("/v1/models/current", headers={"Authorization": secrets[0]}),
            client.delete("/v1/devices/me", headers=device),
            client.delete("/v1/devices/me", headers=device),  # 401: gone
        ]
    assert all(answer.status_code < 500 for answer in answers)
    logged = log.read_text()
    assert "/v1/aggregates" in logged and "DEBUG" in logged.upper(), "nothing was logged"
    leaks = [secret[:6] + "..." for secret in [token, *secrets] if secret in logged]
    figures.add("isolation", "gunicorn_log_lines_searched", len(logged.splitlines()))
    figures.add("isolation", "secrets_found_in_logs", len(leaks))
    assert leaks == []
