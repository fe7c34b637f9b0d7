"""``EdgePersonaApp``: the Kivy app. Screens call its methods; it calls the ``Session``.

It owns what crosses screens: navigation, the theme, the simulated clock's ticks (Kivy's
clock in a real run; tests move the simulation themselves), background sync, messages and
confirmation dialogs. Everything it shows comes from the session, so a new model bundle,
adopted by sync or loaded by hand, shows on the next refresh without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty
from kivy.utils import platform

from edgepersona.sdk import EdgePersonaError

from . import screens  # noqa: F401 (defines the screen classes the kv rules name)
from .catalog import persona_name
from .session import Session
from .settings import AppSettings
from .theme import Theme
from .widgets import ConfirmDialog, Root

__all__ = ["EdgePersonaApp"]

KV_FILES = (
    "widgets.kv",
    "charts.kv",
    "shell.kv",
    "consent.kv",
    "home.kv",
    "offers.kv",
    "insights.kv",
    "privacy.kv",
    "settings.kv",
)
TICK_S = 0.25  # how often the simulated clock moves in a real run
MAX_STEP_S = 1.0  # a tick after the app was busy or paused does not leap hours ahead
SYNC_EVERY_S = 60.0  # how often sync() is offered the chance to run (it decides if it is due)
MESSAGE_S = 4.0
PHONE_PLATFORMS = ("android", "ios")


class EdgePersonaApp(App):
    """The demo app.

    Args:
        data_dir: where the app keeps its data (default: Kivy's ``user_data_dir``).
        export_dir: where exports are written (default: ``data_dir/exports``).
        timers: run the simulation and periodic sync on Kivy's clock (tests pass False
            and move the simulation through the same methods the Settings screen uses).
        settings: the settings of a first start (default: real signals on a phone, a
            simulated day elsewhere); ``overrides`` replace stored ones (command line).
        today, transport, seed: passed to the ``Session`` (tests and screenshots).
    """

    heading = StringProperty("")
    moment = StringProperty("")
    message = StringProperty("")
    simulated = BooleanProperty(False)
    playing = BooleanProperty(True)
    busy = BooleanProperty(False)  # a sync is running in the background
    theme = ObjectProperty(None)

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        export_dir: Path | None = None,
        timers: bool = True,
        today: date | None = None,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
        settings: AppSettings | None = None,
        overrides: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.theme = Theme()
        self.title = "EdgePersona"
        self._data_dir = data_dir
        self._export_dir = export_dir
        self._timers = timers
        self._session_args: dict[str, Any] = {
            "today": today,
            "transport": transport,
            "seed": seed,
            "defaults": settings
            or AppSettings(signals="device" if platform in PHONE_PLATFORMS else "simulated"),
            "overrides": overrides,
        }
        self.session: Session
        self.dialog: ConfirmDialog | None = None
        self._moment_key: tuple[object, ...] | None = None
        self._clear_message = Clock.create_trigger(self._clear, MESSAGE_S)

    # -- lifecycle -------------------------------------------------------------------------

    def build(self) -> Root:
        folder = resources.files("edgepersona.demo_app") / "kv"
        for name in KV_FILES:
            # Rules load once per process: a second app in it (tests) must not add them twice.
            Builder.unload_file(name)
            Builder.load_string((folder / name).read_text(encoding="utf-8"), filename=name)
        data_dir = self._data_dir or Path(self.user_data_dir)
        self._export_dir = self._export_dir or data_dir / "exports"
        self.session = Session(data_dir, **self._session_args)
        return Root()

    def on_start(self) -> None:
        self.navigate("consent" if self.session.needs_consent else "home")
        if platform == "android":
            self._ask_location_permission()
        if self._timers:
            Clock.schedule_interval(self._tick, TICK_S)
            Clock.schedule_interval(lambda _: self._sync(force=False), SYNC_EVERY_S)

    def _ask_location_permission(self) -> None:
        """Android asks at run time; location starts once the user has answered."""
        from android.permissions import Permission, request_permissions

        request_permissions(
            [Permission.ACCESS_FINE_LOCATION, Permission.ACCESS_COARSE_LOCATION],
            lambda *_: Clock.schedule_once(lambda _: self.session.start_signals()),
        )

    def on_pause(self) -> bool:
        self.session.remember()
        return True

    def on_stop(self) -> None:
        self.session.close()

    # -- navigation and what every screen shares ---------------------------------------------

    def navigate(self, name: str) -> None:
        """Show a screen (the consent screen until the user has answered it) and refresh it."""
        if self.session.needs_consent:
            name = "consent"
        root = self.root
        root.chrome = name != "consent"
        root.ids.screens.current = name
        for button in root.ids.nav.children:
            button.selected = button.target == name
        if name != "consent":
            self.session.track_screen(name)  # the host app's own screens are signals too
        self._update_moment()
        root.ids.screens.get_screen(name).refresh()

    def refresh(self) -> None:
        self.navigate(self.root.ids.screens.current)

    def use_theme(self, name: str) -> None:
        if name != self.theme.name:
            self.theme.use(name)

    def notify(self, text: str) -> None:
        """A short message above the navigation bar (it fades after a few seconds of real
        time; without timers, as in tests, it stays until the next one)."""
        self.message = text
        if self._timers:
            self._clear_message()

    def confirm(self, heading: str, text: str, confirm_text: str, then: Callable[[], None]) -> None:
        self.dialog = ConfirmDialog(heading, text, confirm_text, then)
        self.dialog.open(animation=False)

    # -- consent and privacy -------------------------------------------------------------------

    def consent_chosen(self, allowed: dict[str, bool]) -> None:
        self.session.choose(allowed)
        self.navigate("home")

    def set_purpose(self, purpose: str, allowed: bool) -> None:
        self.session.set_purpose(purpose, allowed)
        self.notify(f"{purpose.capitalize()} {'allowed' if allowed else 'turned off'}.")
        self.refresh()

    def export(self) -> str:
        assert self._export_dir is not None  # set by build()
        path = self.session.export(self._export_dir)
        self.notify("Export saved.")
        return str(path)

    def erase_everything(self) -> None:
        self.notify(self.session.erase_everything())
        self.theme.use("light")
        self.navigate("consent")

    def reject_persona(self, persona_id: str | None) -> None:
        self.session.reject_persona(persona_id)
        self.refresh()

    # -- signals and the simulation ------------------------------------------------------------

    def toggle_play(self) -> None:
        self.playing = not self.playing

    def skip_to(self, hour: int) -> None:
        self.session.skip_to(hour)
        self.notify(f"Skipped to {hour}:00.")
        self._time_moved()

    def set_speed(self, label: str) -> None:
        self.session.set_speed(label)
        self.refresh()

    def simulate_persona(self, persona_id: str) -> None:
        self.session.switch(persona=persona_id)
        self.notify(f"Now simulating: {persona_name(persona_id)}.")
        self.refresh()

    def switch_phone_to(self, signals: str) -> None:
        self.session.switch(signals=signals)
        self.refresh()

    def _tick(self, dt: float) -> None:
        if self.playing and self.session.simulated and not self.session.needs_consent:
            self.session.advance(min(dt, MAX_STEP_S))
            self._time_moved()

    def _time_moved(self) -> None:
        """Refresh the screen when the moment or persona changed, not on every tick."""
        self._update_moment()
        key = self.session.moment_key()
        if key != self._moment_key:
            self._moment_key = key
            self.session.remember()
            self.refresh()

    def _update_moment(self) -> None:
        session = self.session
        self.simulated = session.simulated
        self.moment = "" if session.needs_consent else session.moment_text()

    # -- sync and models ---------------------------------------------------------------------

    def set_backend(self, url: str) -> None:
        try:
            self.session.set_backend(url)
        except EdgePersonaError as exc:
            self.notify(str(exc))
            return
        self.notify("Server saved." if url.strip() else "Sync server removed: sync is off.")
        self.refresh()

    def sync_now(self) -> None:
        self._sync(force=True)

    def use_bundle(self, path: str) -> None:
        try:
            version = self.session.use_bundle(Path(path.strip()))
        except EdgePersonaError as exc:
            self.notify(f"Bundle refused: {exc}")
            return
        self.notify(f"Model v{version} in use.")
        self.refresh()

    def _sync(self, force: bool) -> None:
        """Sync in a background thread; the result is shown on Kivy's thread."""
        if self.busy or self.session.needs_consent:
            return
        self.busy = True

        def work() -> None:
            try:
                result = self.session.sync(force)
                message = result.message
                news = result.sent > 0 or result.model.startswith("adopted")
            except (EdgePersonaError, RuntimeError) as exc:  # the phone was closed meanwhile
                message, news = f"Sync stopped: {exc}", False
            Clock.schedule_once(lambda _: self._synced(message, news, force))

        threading.Thread(target=work, name="edgepersona-sync", daemon=True).start()

    def _synced(self, message: str, news: bool, asked: bool) -> None:
        """Show what a sync did when the user asked for it or when it changed something
        (sent an upload, adopted a model); a quiet periodic "not due" shows nothing."""
        self.busy = False
        if asked or news:
            self.notify(message)
            self.refresh()

    def _clear(self, *_: object) -> None:
        self.message = ""
