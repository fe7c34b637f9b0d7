"""The real backend for the app's sync tests, reached in-process, with its clock on the phone's.

The backend is the real Flask app on a SQLite file, reached through httpx's WSGI transport,
wrapped to record every request the phone makes. Its clock follows the simulated phone's,
so the weeks agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from flask import Flask

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db

ADMIN_KEY = "demo-app-tests-admin-key-0123456789"


class Network(httpx.BaseTransport):
    """The phone's network: every request recorded, then handled by the real backend."""

    def __init__(self, backend: Flask) -> None:
        self.sent: list[str] = []
        self._backend = httpx.WSGITransport(app=backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        return self._backend.handle_request(request)


class PhoneClock:
    """The backend's clock: the simulated phone's, once the app has started."""

    def __init__(self) -> None:
        self.app: Any = None

    def time(self) -> float:
        return float(self.app.session.now())


@contextmanager
def backend(folder: Path, clock: PhoneClock, **config: Any) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{folder / 'backend.db'}",
            "CLOCK": clock,
            "ADMIN_API_KEY": ADMIN_KEY,
            **config,
        }
    )
    with app.app_context():
        init_db()
    yield app
    engine(app).dispose()
