"""Privacy centre: switches per purpose, the consent log, export, erase everything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .ui import go, start


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    started = start_app()
    start(started)
    return started


def switches(privacy: Any) -> dict[str, Any]:
    return {row.purpose: row for row in privacy.ids.purposes.children}


def test_the_switches_show_what_was_allowed(driver: Any, shot: Any) -> None:
    privacy = go(driver, "privacy")
    assert {p: row.ids.switch.active for p, row in switches(privacy).items()} == {
        "personalization": True,
        "location": True,
        "sync": True,
    }
    assert privacy.ids.audit.text.splitlines()[0].endswith("sync allowed (consent screen)")
    shot(driver)


def test_turning_location_off_asks_first_then_deletes_places(driver: Any, shot: Any) -> None:
    privacy = go(driver, "privacy")
    assert driver.app.session.places()
    driver.tap(switches(privacy)["location"].ids.switch)
    dialog = driver.app.dialog
    assert dialog is not None and dialog.heading == "Turn off “Use my location”?"
    assert "your location history and the places found from it" in dialog.text
    assert driver.app.session.consent()["location"]  # nothing happens before "Turn off"
    shot(driver)
    driver.tap(dialog.ids.confirm)
    assert not driver.app.session.consent()["location"]
    assert driver.app.session.places() == ()
    assert not switches(privacy)["location"].ids.switch.active
    assert privacy.ids.audit.text.splitlines()[0].endswith("location turned off (privacy centre)")


def test_cancel_keeps_the_purpose(driver: Any, shot: Any) -> None:
    privacy = go(driver, "privacy")
    driver.tap(switches(privacy)["personalization"].ids.switch)
    driver.tap(driver.app.dialog.ids.cancel)
    assert driver.app.session.consent()["personalization"]
    assert switches(privacy)["personalization"].ids.switch.active
    shot(driver)


def test_export_saves_everything_to_a_file(driver: Any, shot: Any) -> None:
    privacy = go(driver, "privacy")
    driver.tap(privacy.ids.export)
    path = Path(privacy.exported)
    document = json.loads(path.read_text())
    assert document["format"] == "edgepersona-export/1"
    assert [a["action"] for a in document["consent_audit"]] == ["grant"] * 3 + ["revoke"]
    assert document["signals"]["location"] == []  # deleted with the location consent
    assert document["signals"]["app"]
    shot(driver)


def test_erase_everything_leaves_no_database(driver: Any, shot: Any) -> None:
    privacy = go(driver, "privacy")
    data_dir = Path(driver.app.session.data_dir)
    assert any(p.suffix == ".db" for p in data_dir.rglob("*"))
    driver.tap(privacy.ids.erase)
    driver.tap(driver.app.dialog.ids.confirm)
    assert driver.app.root.ids.screens.current == "consent"
    assert [p.name for p in data_dir.rglob("*")] == ["app-settings.json"]
    assert driver.app.message == (
        "Everything on this phone is erased. Nothing was ever sent to a server."
    )
    shot(driver)
