"""Privacy centre: a switch per purpose, the consent log, export to a file, erase everything."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from ..catalog import PURPOSES

__all__ = ["PrivacyScreen", "PurposeSwitch"]

# What turning a purpose off deletes, said before it happens.
_DELETES = {
    "personalization": "your app usage, screens, events and offer answers",
    "location": "your location history and the places found from it",
    "sync": "nothing on this phone; weekly summaries stop being sent",
}


class PurposeSwitch(BoxLayout):
    purpose = StringProperty("")
    icon = StringProperty("")
    heading = StringProperty("")
    uses = StringProperty("")
    active = BooleanProperty(False)


class PrivacyScreen(Screen):
    audit = StringProperty("")
    exported = StringProperty("")

    def refresh(self) -> None:
        app = App.get_running_app()
        app.heading = "Privacy centre"
        status = app.session.consent()
        rows = self.ids.purposes
        rows.clear_widgets()
        for purpose in PURPOSES:
            rows.add_widget(
                PurposeSwitch(
                    purpose=purpose.id,
                    icon=purpose.icon,
                    heading=purpose.title,
                    uses=purpose.uses,
                    active=status[purpose.id],
                )
            )
        self.audit = "\n".join(app.session.audit())

    def switched(self, row: PurposeSwitch, on: bool) -> None:
        """A switch was flipped: turning on is immediate, turning off asks first."""
        app = App.get_running_app()
        if on:
            app.set_purpose(row.purpose, True)
            return
        row.ids.switch.active = True  # stays on unless confirmed
        app.confirm(
            f"Turn off “{row.heading}”?",
            f"This deletes {_DELETES.get(row.purpose, 'what it collected')}. It cannot be undone.",
            "Turn off",
            lambda: app.set_purpose(row.purpose, False),
        )

    def export(self) -> None:
        self.exported = App.get_running_app().export()

    def erase(self) -> None:
        app = App.get_running_app()
        app.confirm(
            "Erase everything?",
            "Deletes everything this app learnt on this phone: signals, places, persona, "
            "offer answers and the consent log, and asks the server to delete your summaries. "
            "Files you exported are yours and stay.",
            "Erase",
            app.erase_everything,
        )
