"""The real backend on 127.0.0.1 and a device network that counts bytes, for bench/sync.py.

The backend is ``create_app`` on a SQLite file in werkzeug's threaded server (as the sync
tests serve it), with a model v2 published and promoted to 100%, so a device's first sync
registers, uploads and downloads v2, and every later week polls and gets a 304.

Bytes are exact: the request line and headers are serialised by h11, the HTTP/1.1 library
httpcore writes to the socket with, from the very headers httpx hands it. Responses are
counted as parsed (status line, headers, body). TCP/IP and TLS overhead are not included.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx
from werkzeug.serving import make_server

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.sdk import ManualClock
from edgepersona.sdk._bundle import FILES


@dataclass(frozen=True)
class Exchange:
    """One request as it left the device and the answer as it came back, in bytes."""

    method: str
    path: str
    status: int
    sent_head: int  # request line + headers + blank line
    sent_body: int
    received_head: int  # status line + headers + blank line
    received_body: int
    seconds: float  # from handing the request to the transport to the answer's last byte

    @property
    def sent(self) -> int:
        return self.sent_head + self.sent_body

    @property
    def received(self) -> int:
        return self.received_head + self.received_body

    @property
    def kind(self) -> str:
        return f"{self.method} {self.path} {self.status}"


@dataclass
class CountingTransport(httpx.BaseTransport):
    """Real HTTP through ``httpx.HTTPTransport``; each exchange is appended to ``log``."""

    log: list[Exchange] = field(default_factory=list)
    real: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        sent_head, sent_body = request_wire_bytes(
            request.method, request.url, request.headers, body
        )
        started = time.perf_counter_ns()
        response = self.real.handle_request(request)
        response.read()
        seconds = (time.perf_counter_ns() - started) / 1e9
        reason = response.extensions.get("reason_phrase", b"")
        status_line = len(b"HTTP/1.1 %d " % response.status_code) + len(reason) + 2
        headers = sum(len(name) + 2 + len(value) + 2 for name, value in response.headers.raw)
        path = _route(request.url.path)
        self.log.append(
            Exchange(
                request.method,
                path,
                response.status_code,
                sent_head,
                sent_body,
                status_line + headers + 2,
                len(response.content),
                seconds,
            )
        )
        return response

    def close(self) -> None:
        self.real.close()


def request_wire_bytes(
    method: str, url: httpx.URL, headers: httpx.Headers, body: bytes
) -> tuple[int, int]:
    """``(head, body)`` bytes that httpcore's h11 connection writes for this request."""
    conn = h11.Connection(h11.CLIENT)
    head = conn.send(h11.Request(method=method, target=url.raw_path, headers=headers.raw))
    framed = conn.send(h11.Data(data=body)) if body else b""
    framed += conn.send(h11.EndOfMessage()) or b""
    return len(head or b""), len(framed)


def socket_check(body: bytes) -> dict[str, object]:
    """Check the counting against the bytes a raw socket receives for one upload-like POST
    (same headers as the SDK's, ``body`` as its body): the two counts must be equal."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[int] = []

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn:
            parser, total = h11.Connection(h11.SERVER), 0
            event = parser.next_event()
            while not isinstance(event, h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    data = conn.recv(65536)
                    total += len(data)
                    parser.receive_data(data)
                event = parser.next_event()
            received.append(total)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    transport = CountingTransport()
    headers = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    headers["Content-Type"] = "application/json"
    port = listener.getsockname()[1]
    with listener, httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport) as c:
        c.post("/v1/aggregates", content=body, headers=headers)
        thread.join(10)
    counted = transport.log[0].sent
    return {"counted": counted, "socket_received": received[0], "equal": counted == received[0]}


def _route(path: str) -> str:
    return "/v1/models/{version}/bundle" if path.endswith("/bundle") else path


@dataclass
class Loopback:
    url: str
    public_key: bytes
    clock: ManualClock


@contextmanager
def loopback_backend(tmp: Path, clock: ManualClock) -> Iterator[Loopback]:
    """The real backend on 127.0.0.1 (SQLite in ``tmp``), with model v2 published at 100%."""
    private, public = tmp / "registry.pem", tmp / "registry.pub.json"
    generate_keypair(private, public)
    admin_key = secrets.token_hex(16)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp / 'backend.db'}",
            "CLOCK": clock,
            "ADMIN_API_KEY": admin_key,
            "SIGNING_KEY_PATH": str(private),
            "RATE_LIMIT_UPLOADS_PER_HOUR": 1_000_000,
            "K_ANONYMITY_FLOOR": 50,
        }
    )
    with app.app_context():
        init_db()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        _release_v2(url, admin_key)
        yield Loopback(url, load_public_key(public), clock)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        engine(app).dispose()


def _release_v2(url: str, admin_key: str) -> None:
    """Publish the shipped bundle again as version 2 and roll it out to every device."""
    files = {name: (DEFAULT_BUNDLE_DIR / name).read_bytes() for name in FILES}
    playbook = json.dumps(json.loads(files["playbook.json"]), indent=2).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["version"] = 2
    manifest["sha256"]["playbook.json"] = hashlib.sha256(playbook).hexdigest()
    files |= {"playbook.json": playbook, "manifest.json": json.dumps(manifest).encode()}
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        published = client.post("/v1/admin/models", files={n: (n, d) for n, d in files.items()})
        published.raise_for_status()
        client.post("/v1/admin/models/2/promote", json={"percent": 100}).raise_for_status()
