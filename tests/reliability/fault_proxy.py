"""A small fault-injecting HTTP proxy of our own, on 127.0.0.1, between a device and a backend.

It speaks just enough HTTP/1.1 to see request boundaries: it reads one request per client
connection (head and ``Content-Length`` body), answers with ``Connection: close`` so that the
client opens a new connection for its next request, and decides per request what happens,
by asking its ``choose(method, path)`` function for a fault:

``pass``          forward to the backend, relay its answer
``drop``          close the client's connection without forwarding (the server never knew)
``reset``         send a TCP RST instead of an answer, without forwarding
``lost``          forward (the server handles it), then close without answering
``lost_reset``    forward, then RST
``slow``          forward, then hold the answer until the client gives up (its timeout)
``partial``       forward, then relay the head and half the body, and close
``429``           answer 429 with ``Retry-After`` without forwarding
``500``/``502``/``503``  answer that status without forwarding

``hold()`` closes a gate for tests of the app-facing calls: until ``release()`` every request
waits in the proxy (``waiting`` is set once one does), so a test can call the SDK while a
sync is stuck on the network and see that nothing it calls waits for it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable

__all__ = ["FAULTS", "FaultProxy"]

FAULTS = ("drop", "reset", "lost", "lost_reset", "slow", "partial", "429", "500", "502", "503")
MAX_HEAD = 64 * 1024
SLOW_LIMIT_S = 30.0  # a held answer is dropped after this, if the client never gives up
RETRY_AFTER_S = 90

Choose = Callable[[str, str], str]


class FaultProxy:
    """Listens on ``127.0.0.1``; ``url`` is what a device uses as its backend URL."""

    def __init__(self, upstream: tuple[str, int], choose: Choose) -> None:
        self.upstream = upstream
        self.choose = choose
        self.injected: Counter[str] = Counter()
        self.arrived = 0  # requests read from clients, counted before the gate
        self.requests = 0  # requests past the gate, each given a fault or "pass"
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # a request is waiting at the closed gate
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        self.gate.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(SLOW_LIMIT_S)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = _read_request(client)
            if request is None:
                return
            method, path, raw = request
            with self._lock:
                self.arrived += 1
            if not self.gate.is_set():
                self.waiting.set()
                self.gate.wait(SLOW_LIMIT_S)
            with self._lock:
                self.requests += 1
                fault = self.choose(method, path)
                if fault != "pass":
                    self.injected[fault] += 1
            self._apply(fault, client, raw)

    def hold(self) -> None:
        """Requests from now on wait in the proxy until ``release()``."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def _apply(self, fault: str, client: socket.socket, raw: bytes) -> None:
        if fault in ("drop", "reset"):
            _close(client, reset=fault == "reset")
            return
        if fault == "429":
            client.sendall(_answer(429, f"Retry-After: {RETRY_AFTER_S}\r\n"))
            return
        if fault in ("500", "502", "503"):
            client.sendall(_answer(int(fault)))
            return
        answer = self._forward(raw)
        if fault in ("lost", "lost_reset"):
            _close(client, reset=fault == "lost_reset")
        elif fault == "slow":
            # Hold the answer until the client hangs up (its timeout fired), then drop it.
            select.select([client], [], [], SLOW_LIMIT_S)
        elif fault == "partial":
            head, _, body = answer.partition(b"\r\n\r\n")
            client.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
        else:
            client.sendall(answer)

    def _forward(self, raw: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=SLOW_LIMIT_S) as upstream:
            upstream.sendall(raw)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return _close_after(b"".join(chunks))


def _read_request(client: socket.socket) -> tuple[str, str, bytes] | None:
    """One request, rewritten to ask the backend to close after answering; None on EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk or len(data) > MAX_HEAD:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        if name.strip().lower() != "connection":
            kept.append(line)
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            return None
        body += chunk
    kept.append("Connection: close")
    return method, path, "\r\n".join(kept).encode("latin-1") + b"\r\n\r\n" + body


def _close_after(answer: bytes) -> bytes:
    """The backend's answer with ``Connection: close``, so the client reconnects next time."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + body


def _answer(status: int, extra_headers: str = "") -> bytes:
    body = b'{"error": {"code": "injected", "message": "injected by the fault proxy"}}'
    return (
        f"HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\n{extra_headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _close(client: socket.socket, *, reset: bool) -> None:
    if reset:  # SO_LINGER with a zero timeout: close() sends RST instead of FIN
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
