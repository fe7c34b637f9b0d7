"""Settings: the signal source and simulation, the sync service, and the model in use."""

from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.screenmanager import Screen

from .. import views
from ..catalog import PERSONA_COLOURS, persona_name
from ..settings import SPEEDS
from ..widgets.common import Segment

__all__ = ["SettingsScreen"]

_SOURCES = {"simulated": "Simulated day", "device": "This device"}


class SettingsScreen(Screen):
    simulated = BooleanProperty(True)
    sync_text = StringProperty("")
    sync_result = StringProperty("")
    model_text = StringProperty("")
    history_text = StringProperty("")
    notice = StringProperty("")

    def refresh(self) -> None:
        app = App.get_running_app()
        session = app.session
        settings = session.settings
        app.heading = "Settings"
        self.simulated = session.simulated
        self.notice = session.notice
        self._choices(self.ids.sources, _SOURCES, settings.signals, app.switch_phone_to)
        self._choices(self.ids.speeds, {s: s for s in SPEEDS}, settings.speed, app.set_speed)
        personas = {p: persona_name(p) for p in PERSONA_COLOURS}
        self._choices(self.ids.personas, personas, settings.persona, app.simulate_persona)
        if not self.ids.backend.focus:  # never overwrite what the user is typing
            self.ids.backend.text = settings.backend_url
        allowed = session.consent()["sync"]
        status = session.sync_status()
        self.sync_text = views.sync_text(status, allowed, settings.backend_url, session.zone)
        self.sync_result = session.last_sync.message if session.last_sync else ""
        model = session.model_status()
        self.model_text = views.model_text(model)
        self.history_text = views.model_history(model, session.zone)

    @staticmethod
    def _choices(box: Any, labels: dict[str, str], chosen: str, choose: Any) -> None:
        """Fill a segmented control; pressing a segment calls ``choose(value)``."""
        box.clear_widgets()
        for value, label in labels.items():
            segment = Segment(text=label, value=value, selected=value == chosen)
            segment.bind(on_release=lambda s: choose(s.value))
            box.add_widget(segment)

    def segment(self, box_id: str, value: str) -> Segment:
        """The segment showing ``value`` in the control ``box_id`` (for tests and tours)."""
        return next(s for s in self.ids[box_id].children if s.value == value)
