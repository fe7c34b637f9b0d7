"""First start: the consent screen, and nothing collected or stored before a choice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgepersona.demo_app.catalog import PURPOSES

from .ui import screen


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    return start_app()


def test_first_start_shows_the_purposes_and_stores_nothing(driver: Any, shot: Any) -> None:
    app = driver.app
    assert app.root.ids.screens.current == "consent"
    assert not app.root.chrome  # no navigation around the choice
    consent = screen(driver, "consent")
    rows = list(reversed(consent.ids.purposes.children))
    assert [(r.heading, r.uses, r.never) for r in rows] == [
        (p.title, p.uses, p.never) for p in PURPOSES
    ]
    assert not any(r.ids.switch.active for r in rows)  # all off until turned on
    app.navigate("home")  # e.g. a notification opening the app: still the choice first
    assert app.root.ids.screens.current == "consent"
    assert list(Path(app.session.data_dir).iterdir()) == []  # not even a database
    shot(driver)


def test_choosing_personalisation_only(driver: Any, shot: Any) -> None:
    consent = screen(driver, "consent")
    personalise = next(r for r in consent.ids.purposes.children if r.purpose == "personalization")
    driver.tap(personalise.ids.switch)
    assert personalise.ids.switch.active
    driver.tap(consent.ids.save_choice)
    app, session = driver.app, driver.app.session
    assert app.root.ids.screens.current == "home" and app.root.chrome
    assert session.consent() == {"personalization": True, "location": False, "sync": False}
    # The simulated phone's GPS offered two weeks of fixes: none was kept.
    assert session.sdk.stats()["dropped"]["location.no_consent"] > 1000
    assert session.places() == ()
    assert "at home" not in app.moment  # the app cannot know where you are
    shot(driver)
