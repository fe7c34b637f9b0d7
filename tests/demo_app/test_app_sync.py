"""Sync from the app: nothing leaves without consent and a server; what was sent is shown.

The backend is the real Flask app on a SQLite file, reached in-process through httpx's WSGI
transport, wrapped to record every request the phone makes. Its clock follows the simulated
phone's, so the weeks agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from edgepersona.backend import create_app
from edgepersona.backend.db import engine, init_db
from edgepersona.demo_app.settings import AppSettings

from .ui import go, screen, start

BACKEND = "http://sync.test"


class Network(httpx.BaseTransport):
    """The phone's network: every request recorded, then handled by the real backend."""

    def __init__(self, backend: Flask) -> None:
        self.sent: list[str] = []
        self._backend = httpx.WSGITransport(app=backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        return self._backend.handle_request(request)


class PhoneClock:
    """The backend's clock: the simulated phone's (Kivy's app holds it once started)."""

    def __init__(self) -> None:
        self.app: Any = None

    def time(self) -> float:
        return float(self.app.session.now())


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, PhoneClock]]:
    clock = PhoneClock()
    folder = tmp_path_factory.mktemp("backend")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{folder / 'backend.db'}",
            "CLOCK": clock,
            "ADMIN_API_KEY": None,
        }
    )
    with app.app_context():
        init_db()
    yield app, clock
    engine(app).dispose()


@pytest.fixture(scope="module")
def network(backend: tuple[Flask, PhoneClock]) -> Network:
    return Network(backend[0])


@pytest.fixture(scope="module")
def driver(
    start_app: Callable[..., Any], network: Network, backend: tuple[Flask, PhoneClock]
) -> Any:
    started = start_app(transport=network, settings=AppSettings(backend_url=BACKEND))
    backend[1].app = started.app
    return started


def sync_now(driver: Any) -> Any:
    settings = go(driver, "settings")
    driver.tap(settings.ids.sync_now)
    driver.until(lambda: not driver.app.busy)
    driver.frames()
    return settings


def test_declining_sync_means_no_request_leaves(driver: Any, network: Network, shot: Any) -> None:
    start(driver, personalization=True, location=True)
    settings = go(driver, "settings")
    assert settings.ids.backend.text == BACKEND
    assert settings.sync_text.startswith("Sync is off: not allowed in the Privacy centre")
    settings = sync_now(driver)
    assert driver.app.session.last_sync.status == "no_consent"
    assert settings.sync_result == driver.app.session.last_sync.message
    assert network.sent == []
    shot(driver)


def test_allowing_sync_sends_the_week_and_insights_shows_it(
    driver: Any, network: Network, shot: Any
) -> None:
    privacy = go(driver, "privacy")
    row = next(r for r in privacy.ids.purposes.children if r.purpose == "sync")
    driver.tap(row.ids.switch)
    assert driver.app.session.consent()["sync"]
    settings = sync_now(driver)
    result = driver.app.session.last_sync
    assert result.status == "synced" and result.sent >= 1, result
    assert "POST /v1/devices" in network.sent and "POST /v1/aggregates" in network.sent
    assert settings.sync_text.startswith("Last sync: 17 Mar")
    shot(driver)
    insights = go(driver, "insights")
    upload = driver.app.session.last_upload()
    header, payload = insights.ids.upload.text.split("\n", 1)
    assert header.startswith("Sent 17 Mar") and header.endswith(f"{upload['bytes']} bytes:")
    assert json.loads(payload) == upload["payload"]
    assert "lat" not in payload and "com." not in payload  # no places, no app ids
    insights.children[0].scroll_to(insights.ids.upload, padding=0, animate=False)
    shot(driver)


def test_removing_the_server_turns_sync_off(driver: Any, network: Network) -> None:
    settings = go(driver, "settings")
    settings.ids.backend.text = ""
    driver.tap(settings.ids.save_backend)
    before = len(network.sent)
    settings = sync_now(driver)
    assert driver.app.session.last_sync.status == "no_backend"
    assert screen(driver, "settings").sync_text.startswith("Sync is off: no server")
    assert len(network.sent) == before
