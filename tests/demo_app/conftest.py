"""The demo app's tests run the real app in a real window on a virtual X display (Xvfb).

Kivy reads its settings from the environment once, when it is first imported, so they are
set here, before any test module of this folder imports it: its home (config, logs) in a
temporary folder, never the user's; no parsing of pytest's arguments; its log kept out of
stderr. The window itself is made once per run (Kivy has one per process); each test module
starts its own app in it, with a fresh data directory, and closes it at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

KIVY_HOME = Path(tempfile.mkdtemp(prefix="edgepersona-kivy-home-"))
os.environ.update(
    KIVY_HOME=str(KIVY_HOME),
    KIVY_NO_ARGS="1",
    KIVY_LOG_MODE="MIXED",
    KIVY_NO_CONSOLELOG="1",
    KIVY_NO_FILELOG="1",
    KIVY_METRICS_DENSITY="1",
)

WINDOW = (400, 800)
TODAY = date(2026, 3, 18)  # the simulated phone lives 2-17 March 2026; "today" is Tuesday 17
SEED = 5


@pytest.fixture(scope="session")
def window() -> Iterator[Any]:
    """Kivy's window, 400x800, on a private Xvfb display."""
    from edgepersona.demo_app.headless import virtual_display

    with virtual_display(*WINDOW) as display:
        os.environ["DISPLAY"] = display
        from kivy.config import Config

        Config.set("graphics", "width", str(WINDOW[0]))
        Config.set("graphics", "height", str(WINDOW[1]))
        Config.set("graphics", "maxfps", "0")  # frames as fast as the test asks for them
        from kivy.core.window import Window

        yield Window
        Window.close()
    shutil.rmtree(KIVY_HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def start_app(
    window: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    """Start the app (a ``Driver`` on it) with a fresh data directory; closed after the module."""
    from edgepersona.demo_app.app import EdgePersonaApp
    from edgepersona.demo_app.driver import Driver

    drivers: list[Driver] = []

    def start(**kwargs: Any) -> Driver:
        options: dict[str, Any] = {
            "data_dir": tmp_path_factory.mktemp("app-data"),
            "export_dir": tmp_path_factory.mktemp("exports"),
            "timers": False,
            "today": TODAY,
            "seed": SEED,
            **kwargs,
        }
        driver = Driver(EdgePersonaApp(**options))
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any], Path]:
    """Save the window as ``<test name>.png`` in tmp_path, and in $EDGEPERSONA_ARTIFACTS."""

    def save(driver: Any) -> Path:
        path = driver.screenshot(tmp_path / f"{request.node.name}.png")
        assert path.stat().st_size > 10_000, "the screenshot is empty"
        artifacts = os.environ.get("EDGEPERSONA_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artifacts) / path.name)
        return path

    return save
