"""Home: cards, shortcuts and theme chosen by decide(), changing with the moment and persona."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edgepersona.demo_app.widgets import Segment

from .ui import go, jump, screen, start


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    started = start_app()
    start(started)
    return started


def shortcut_labels(home: Any) -> list[str]:
    return [s.text for s in reversed(home.ids.shortcuts.children)]


def test_a_weekday_morning_shows_the_commute(driver: Any, shot: Any) -> None:
    jump(driver, 8)
    home = screen(driver, "home")
    assert driver.app.moment.startswith("Tue 17 Mar · 08:00")
    assert home.card_ids() == ["traffic", "podcasts", "news", "offers"]
    assert shortcut_labels(home) == ["Maps", "Tickets"]
    assert driver.app.heading == "Good morning" and driver.app.theme.name == "light"
    assert home.persona_text == "Commuting professional · 100%"
    shot(driver)


def test_why_am_i_seeing_this(driver: Any, shot: Any) -> None:
    home = screen(driver, "home")
    assert home.ids.reasons.text == ""
    driver.tap(home.ids.why)
    lines = home.ids.reasons.text.splitlines()
    assert lines[0].startswith("•  You look most like 'Commuting professional'")
    assert lines[1] == "•  It is morning on a weekday and you are at home"
    assert lines[2] == "•  Commute layout: weekday mornings are for getting to work"
    shot(driver)
    driver.tap(home.ids.why)
    assert home.ids.reasons.text == ""


def test_the_evening_at_home_is_dark_and_about_watching(driver: Any, shot: Any) -> None:
    jump(driver, 19)
    home = screen(driver, "home")
    assert "19:00 · at home" in driver.app.moment
    assert home.card_ids() == ["watch_tonight", "music", "food_delivery", "offers"]
    assert shortcut_labels(home) == ["TV", "Delivery"]
    assert driver.app.heading == "Good evening" and driver.app.theme.name == "dark"
    shot(driver)


def test_switching_the_simulated_persona_changes_the_cards(driver: Any, shot: Any) -> None:
    jump(driver, 8)  # Wednesday
    commuter = screen(driver, "home").card_ids()
    settings = go(driver, "settings")
    driver.tap(driver.find(Segment, root=settings.ids.personas, value="deal_hunter"))
    assert driver.app.message == "Now simulating: Deal hunter."
    home = go(driver, "home")
    assert home.persona_text == "Deal hunter · 100%"
    assert home.card_ids() == ["offers", "price_drops", "cart", "for_you"]
    assert home.card_ids() != commuter == ["traffic", "podcasts", "news", "offers"]
    assert shortcut_labels(home) == ["Cart", "Orders"]
    shot(driver)


def test_this_device_uses_real_signals_and_says_there_is_no_gps(driver: Any, shot: Any) -> None:
    settings = go(driver, "settings")
    driver.tap(driver.find(Segment, root=settings.ids.sources, value="device"))
    session = driver.app.session
    assert not session.simulated and session.phone is None
    assert not driver.app.simulated  # no simulation controls in the top bar
    assert session.consent() == {"personalization": True, "location": True, "sync": True}
    assert settings.notice == "This device has no GPS the app can use: no places will be found."
    assert settings.ids.personas.height == 0
    home = go(driver, "home")
    assert home.card_ids()  # decided from this device's (empty) history
    shot(driver)
