"""Sync from the app: nothing leaves without consent and a server; what was sent is shown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edgepersona.demo_app.settings import AppSettings

from .net import Network, PhoneClock, backend
from .ui import go, screen, start

SERVER = "http://sync.test"


@pytest.fixture(scope="module")
def phone_clock() -> PhoneClock:
    return PhoneClock()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, phone_clock: PhoneClock) -> Iterator[Network]:
    with backend(tmp_path_factory.mktemp("backend"), phone_clock) as app:
        yield Network(app)


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any], network: Network, phone_clock: PhoneClock) -> Any:
    started = start_app(transport=network, settings=AppSettings(backend_url=SERVER))
    phone_clock.app = started.app
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
    assert settings.ids.backend.text == SERVER
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


def test_removing_the_server_turns_sync_off(driver: Any, network: Network, shot: Any) -> None:
    settings = go(driver, "settings")
    settings.ids.backend.text = ""
    driver.tap(settings.ids.save_backend)
    before = len(network.sent)
    settings = sync_now(driver)
    assert driver.app.session.last_sync.status == "no_backend"
    assert screen(driver, "settings").sync_text.startswith("Sync is off: no server")
    assert len(network.sent) == before
    shot(driver)
