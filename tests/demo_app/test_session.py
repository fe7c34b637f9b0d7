"""The app's model without a window: consent first, phones, switching, erase, settings."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import httpx
import pytest

from edgepersona.demo_app.session import Session
from edgepersona.demo_app.settings import AppSettings, load_settings
from edgepersona.sdk import InvalidSignalError

TODAY = date(2026, 3, 18)


class Recorder(httpx.BaseTransport):
    """Records every request the SDK tries to send, and answers none of them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise httpx.ConnectError("no network in this test", request=request)


def new_session(data_dir: Path, **kwargs: object) -> Session:
    return Session(data_dir, today=TODAY, seed=3, **kwargs)  # type: ignore[arg-type]


def test_nothing_is_on_disk_before_the_consent_choice(tmp_path: Path) -> None:
    session = new_session(tmp_path / "app")
    assert session.needs_consent and session.sdk is None
    assert not (tmp_path / "app").exists()
    session.choose({"personalization": True})
    assert not session.needs_consent
    assert session.consent() == {"personalization": True, "location": False, "sync": False}
    assert [line.split("  ", 1)[1] for line in session.audit()] == [
        "sync turned off (consent screen)",
        "location turned off (consent screen)",
        "personalization allowed (consent screen)",
    ]
    # The simulated phone offered two weeks of fixes; without "location" none was kept.
    assert session.places() == ()
    assert session.sdk is not None and session.sdk.stats()["dropped"]["location.no_consent"] > 1000
    session.close()


def test_a_restart_continues_the_same_phone_where_it_was(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    session.choose({"personalization": True, "location": True})
    session.skip_to(19)
    evening = session.moment_text()
    session.close()
    again = new_session(tmp_path)
    assert not again.needs_consent
    assert again.moment_text() == evening
    assert again.decide("home").variant == "evening_home"
    again.close()


def test_switching_persona_opens_another_phone_with_the_same_choices(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    session.choose({"personalization": True, "location": True, "sync": False})
    session.switch(persona="deal_hunter")
    assert session.settings.persona == "deal_hunter"
    assert session.consent() == {"personalization": True, "location": True, "sync": False}
    assert all("carried over from the previous phone" in line for line in session.audit())
    estimate = session.persona()
    assert estimate is not None and estimate.id == "deal_hunter"
    assert sorted(p.name for p in (tmp_path / "phones").iterdir()) == [
        "simulated-commuter",
        "simulated-deal_hunter",
    ]
    session.close()


def test_erase_everything_leaves_no_database(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    session.choose({"personalization": True, "location": True})
    session.switch(persona="night_owl_gamer")
    message = session.erase_everything()
    assert message == "Everything on this phone is erased. Nothing was ever sent to a server."
    assert session.needs_consent and session.sdk is None
    assert not (tmp_path / "phones").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["app-settings.json"]  # no personal data
    assert load_settings(tmp_path / "app-settings.json", AppSettings()).simulated == {}


def test_export_writes_everything_the_sdk_holds(tmp_path: Path) -> None:
    session = new_session(tmp_path / "app")
    session.choose({"personalization": True, "location": True})
    path = session.export(tmp_path / "exports")
    document = json.loads(path.read_text())
    assert document["app_id"] == "com.edgepersona.demo"
    assert len(document["consent_audit"]) == 3
    assert document["places"] and document["signals"]["app"]
    session.close()


def test_a_bad_backend_url_keeps_the_previous_one(tmp_path: Path) -> None:
    session = new_session(tmp_path, defaults=AppSettings(backend_url="http://127.0.0.1:9"))
    session.choose({"personalization": True})
    with pytest.raises(InvalidSignalError):
        session.set_backend("ftp://nowhere")
    assert session.settings.backend_url == "http://127.0.0.1:9"
    assert not session.needs_consent
    session.set_backend("")
    assert session.settings.backend_url == ""
    session.close()


def test_no_request_without_sync_consent_even_with_a_server(tmp_path: Path) -> None:
    network = Recorder()
    session = new_session(
        tmp_path, defaults=AppSettings(backend_url="http://sync.test"), transport=network
    )
    session.choose({"personalization": True, "location": True, "sync": False})
    session.skip_to(12)
    assert session.sync(force=True).status == "no_consent"
    session.erase_everything()
    assert network.requests == []


def test_the_simulation_plays_at_the_chosen_speed(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    session.choose({"personalization": True, "location": True})
    start = session.now()
    assert session.settings.speed == "10 min/s"
    assert session.advance(6.0) > 0  # six real seconds: an hour of the simulated day
    assert session.now() == start + 3600
    session.set_speed("1 h/s")
    session.advance(0.5)
    assert session.now() == start + 5400
    with pytest.raises(ValueError, match="unknown speed"):
        session.set_speed("warp")
    session.close()
