"""Sync fixtures: the real backend on a real HTTP server on 127.0.0.1, and the device's view of
the network as an httpx transport that records every request and can inject faults.

The backend runs in werkzeug's threaded WSGI server on a free loopback port, on a SQLite file
(or this run's PostgreSQL database), sharing the test's ``ManualClock`` so that weeks pass
without sleeping. Faults are injected in the device's transport, between it and the real
server: refused connections, timeouts, responses lost after the server handled the request,
status storms, tampered or endless bodies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import make_server

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.sdk import EdgePersona, ManualClock

from ..backend.conftest import postgres_server_url, postgres_url  # noqa: F401 (fixtures)

ADMIN_KEY = "sync-tests-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Sent:
    """One request as it left the device."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


Fault = Callable[[httpx.Request, Callable[[], httpx.Response]], httpx.Response]


@dataclass
class DeviceNetwork(httpx.BaseTransport):
    """The device's network: real HTTP, every request recorded, faults by path prefix.

    ``faults[prefix]`` is a list of functions taking the request and a ``forward()`` that
    sends it to the real server; each request whose path starts with ``prefix`` consumes
    the next one (when the list is empty, requests pass through).
    """

    sent: list[Sent] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    real: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append(Sent(request.method, str(request.url), dict(request.headers), body))

        def forward() -> httpx.Response:
            response = self.real.handle_request(request)
            response.read()
            return response

        for prefix, queue in self.faults.items():
            if request.url.path.startswith(prefix) and queue:
                return queue.pop(0)(request, forward)
        return forward()

    def paths(self) -> list[str]:
        return [f"{s.method} {httpx.URL(s.url).path}" for s in self.sent]


def refused(request: httpx.Request, forward: Callable[[], httpx.Response]) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def timed_out(request: httpx.Request, forward: Callable[[], httpx.Response]) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def lost_after_server(
    request: httpx.Request, forward: Callable[[], httpx.Response]
) -> httpx.Response:
    """The server handles the request, then the connection dies before the answer arrives."""
    forward()
    raise httpx.RemoteProtocolError("server disconnected", request=request)


def status(code: int, headers: dict[str, str] | None = None) -> Fault:
    def answer(request: httpx.Request, forward: Callable[[], httpx.Response]) -> httpx.Response:
        return httpx.Response(code, headers=headers, json={"error": {"code": "injected"}})

    return answer


def body(transform: Callable[[bytes], bytes]) -> Fault:
    """Pass the request to the server and change the body of its answer."""

    def answer(request: httpx.Request, forward: Callable[[], httpx.Response]) -> httpx.Response:
        real = forward()
        headers = {k: v for k, v in real.headers.items() if k.lower() != "content-length"}
        return httpx.Response(real.status_code, headers=headers, content=transform(real.content))

    return answer


@dataclass
class Backend:
    url: str
    app: Flask
    public_key: bytes
    clock: ManualClock

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def publish(self, files: dict[str, bytes]) -> dict[str, Any]:
        parts = {name: (name, data) for name, data in files.items()}
        with self.client() as client:
            response = client.post("/v1/admin/models", files=parts, headers=ADMIN)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def promote(self, version: int, percent: int = 100) -> None:
        with self.client() as client:
            response = client.post(
                f"/v1/admin/models/{version}/promote", json={"percent": percent}, headers=ADMIN
            )
        assert response.status_code == 200, response.text

    def count(self, table: str) -> int:
        from sqlalchemy import text

        with engine(self.app).connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def serve(app: Flask) -> tuple[str, Callable[[], None]]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(10)
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


@pytest.fixture
def backend_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'backend.db'}"


@pytest.fixture
def backend(tmp_path: Path, clock: ManualClock, backend_database_url: str) -> Iterator[Backend]:
    private, public = tmp_path / "registry.pem", tmp_path / "registry.pub.json"
    generate_keypair(private, public)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": backend_database_url,
            "CLOCK": clock,
            "ADMIN_API_KEY": ADMIN_KEY,
            "SIGNING_KEY_PATH": str(private),
            "RATE_LIMIT_UPLOADS_PER_HOUR": 1000,
            "K_ANONYMITY_FLOOR": 50,
        }
    )
    with app.app_context():
        init_db()
    url, stop = serve(app)
    try:
        yield Backend(url, app, load_public_key(public), clock)
    finally:
        stop()
        engine(app).dispose()


@pytest.fixture
def network() -> DeviceNetwork:
    return DeviceNetwork()


@pytest.fixture
def open_device(
    tmp_path: Path, clock: ManualClock, backend: Backend, network: DeviceNetwork
) -> Iterator[Callable[..., EdgePersona]]:
    """Open SDK instances wired to the live backend through the recording network."""
    opened: list[EdgePersona] = []

    def open_one(name: str = "device", **kwargs: Any) -> EdgePersona:
        options: dict[str, Any] = {
            "clock": clock,
            "tz": "UTC",
            "backend_url": backend.url,
            "public_key": backend.public_key,
            "transport": network,
            "seed": 7,
            **kwargs,
        }
        sdk = EdgePersona.open(tmp_path / name, "com.example.shop", **options)
        opened.append(sdk)
        return sdk

    yield open_one
    for sdk in opened:
        sdk.close()  # safe after close() and erase()


DAY = 86400.0
WEEK = 7 * DAY
OpenDevice = Callable[..., EdgePersona]


def live_a_week(sdk: EdgePersona, clock: ManualClock) -> None:
    """A few days of app use and offers answered, then the clock moves into the next week."""
    start = clock.time()
    for day in range(5):
        for hours, app in ((0, "com.spotify.music"), (4, "com.whatsapp"), (12, "com.netflix")):
            clock.set(start + day * DAY + hours * 3600)
            sdk.track_app(app)
    decision = sdk.decide("home", ["coffee_to_go", "flash_sale"])
    sdk.feedback(decision, decision.offers[0], "accepted")
    sdk.flush()
    clock.set(start + WEEK + 3600)  # Monday of the next week


def syncing_device(open_device: OpenDevice, clock: ManualClock, **kwargs: object) -> EdgePersona:
    sdk = open_device(**kwargs)
    for purpose in ("personalization", "sync"):
        sdk.consent.grant(purpose)
    live_a_week(sdk, clock)
    return sdk
