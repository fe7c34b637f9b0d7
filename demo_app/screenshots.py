"""A tour of every screen, saved as PNGs: ``edgepersona app --screenshots docs/screenshots``.

It plays a simulated commuter's Tuesday on a fixed calendar with seeded randomness, so the
same code draws the same screens; the images in ``docs/screenshots`` are made by it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from .app import EdgePersonaApp
from .driver import Driver
from .settings import AppSettings

__all__ = ["SHOTS", "take_screenshots"]

TOUR_TODAY = date(2026, 3, 18)  # the simulated days are 2-17 March 2026
TOUR_SEED = 11


def _screen(driver: Driver, name: str) -> Any:
    return driver.app.root.ids.screens.get_screen(name)


def _consent(driver: Driver) -> None:
    screen = _screen(driver, "consent")
    driver.tap(screen.ids.purposes.children[-1].ids.switch)  # personalisation on, as a user might


def _home_morning(driver: Driver) -> None:
    driver.tap(_screen(driver, "consent").ids.allow_all)
    driver.app.skip_to(8)
    driver.tap(_screen(driver, "home").ids.why)
    driver.app.message = ""


def _offers(driver: Driver) -> None:
    driver.app.navigate("offers")
    driver.tap(_screen(driver, "offers").ids.offers.children[-1].ids.accept)
    driver.app.message = ""


def _insights(driver: Driver) -> None:
    driver.app.navigate("insights")


def _insights_features(driver: Driver) -> None:
    screen = _screen(driver, "insights")
    scroller, card = screen.children[0], screen.ids.features.parent
    content = scroller.children[0]
    # The card's title at the top of the view (scroll_to would show the card's end).
    above = content.top - card.top
    scroller.scroll_y = max(0.0, 1 - above / (content.height - scroller.height))


def _privacy(driver: Driver) -> None:
    driver.app.navigate("privacy")


def _settings(driver: Driver) -> None:
    driver.app.navigate("settings")


def _home_evening(driver: Driver) -> None:
    driver.app.skip_to(19)
    driver.app.navigate("home")
    driver.app.message = ""


def _night_owl(driver: Driver) -> None:
    driver.app.simulate_persona("night_owl_gamer")
    driver.app.skip_to(22)
    driver.app.navigate("home")
    driver.app.message = ""


SHOTS: tuple[tuple[str, Callable[[Driver], None]], ...] = (
    ("consent", _consent),
    ("home-morning", _home_morning),
    ("offers", _offers),
    ("insights", _insights),
    ("insights-features", _insights_features),
    ("privacy", _privacy),
    ("settings", _settings),
    ("home-evening", _home_evening),
    ("home-night-owl", _night_owl),
)


def take_screenshots(out_dir: Path, settings: AppSettings | None = None) -> list[Path]:
    """Play the tour in a fresh data directory; the PNGs written, in tour order."""
    saved = []
    with tempfile.TemporaryDirectory(prefix="edgepersona-tour-") as data:
        app = EdgePersonaApp(
            data_dir=Path(data),
            timers=False,
            today=TOUR_TODAY,
            seed=TOUR_SEED,
            settings=settings or AppSettings(signals="simulated", persona="commuter"),
        )
        driver = Driver(app)
        try:
            for name, step in SHOTS:
                step(driver)
                saved.append(driver.screenshot(out_dir / f"{name}.png"))
        finally:
            driver.close()
    return saved
