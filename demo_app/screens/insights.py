"""Insights: who the device thinks you are, the places it knows, this week's features, and
exactly what the last sync sent."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.screenmanager import Screen

from .. import views

__all__ = ["InsightsScreen"]

_GLYPHS = {"home": "⌂", "work": "▣", "other": "●"}


class InsightsScreen(Screen):
    persona_id = StringProperty("")
    persona_note = StringProperty("")
    rejected = StringProperty("")  # the last persona the user said is not them
    places_text = StringProperty("")
    upload = StringProperty("")
    sync_on = BooleanProperty(False)

    def refresh(self) -> None:
        app = App.get_running_app()
        session = app.session
        app.heading = "Insights"
        estimate = session.persona()
        if estimate is None:
            self.ids.personas.show(())
            self.persona_id, self.persona_note = "", "No model is usable right now."
        else:
            self.ids.personas.show(views.persona_bars(estimate))
            self.persona_id = estimate.id
            self.rejected = estimate.rejected[-1] if estimate.rejected else ""
            self.persona_note = (
                f"Model v{estimate.model_version}, worked out on this phone from the last 28 days."
            )
        places = session.places()
        self.ids.map.show(places)
        farther = session.place_count() - len(places)
        self.places_text = "\n".join(
            f"[font=DejaVuSans]{_GLYPHS.get(p.label, '●')}[/font]  {p.label.capitalize()}: "
            f"{p.visits} visits, {p.hours:.0f} h"
            for p in places[:6]
        ) + (f"\n{farther} more places farther away." if farther > 0 else "")
        self.ids.features.show(session.features())
        self.sync_on = bool(session.sync_status()["enabled"])
        self.upload = views.upload_text(session.last_upload(), session.zone)

    def not_me(self) -> None:
        App.get_running_app().reject_persona(self.persona_id)

    def undo_not_me(self) -> None:
        App.get_running_app().reject_persona(None)
