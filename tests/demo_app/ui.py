"""Small helpers for driving the app's screens the way a user does."""

from __future__ import annotations

from typing import Any

from edgepersona.demo_app.driver import Driver
from edgepersona.demo_app.widgets import NavButton, TextButton


def screen(driver: Driver, name: str) -> Any:
    return driver.app.root.ids.screens.get_screen(name)


def go(driver: Driver, name: str) -> Any:
    """Tap the bottom navigation's button for ``name``; the screen now shown."""
    driver.tap(driver.find(NavButton, target=name))
    assert driver.app.root.ids.screens.current == name
    return screen(driver, name)


def start(driver: Driver, **allowed: bool) -> None:
    """Answer the consent screen: "Allow all" without arguments, else these switches."""
    consent = screen(driver, "consent")
    if not allowed:
        driver.tap(consent.ids.allow_all)
    else:
        for row in consent.ids.purposes.children:
            if allowed.get(row.purpose, False):
                driver.tap(row.ids.switch)
        driver.tap(consent.ids.save_choice)
    assert driver.app.root.ids.screens.current == "home"


def jump(driver: Driver, hour: int) -> None:
    """Settings' "skip to" button for ``hour``:00, then back to the screen shown before."""
    before = driver.app.root.ids.screens.current
    settings = go(driver, "settings")
    driver.tap(driver.find(TextButton, root=settings.ids.jumps, text=f"{hour}:00"))
    go(driver, before)
