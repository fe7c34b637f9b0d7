"""First run: what each purpose means, in plain words; nothing is collected before a choice."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from ..catalog import PURPOSES

__all__ = ["ConsentScreen", "PurposeRow"]


class PurposeRow(BoxLayout):
    """A purpose, what it uses, what it never does, and its switch (off until turned on)."""

    purpose = StringProperty("")
    icon = StringProperty("")
    heading = StringProperty("")
    uses = StringProperty("")
    never = StringProperty("")


class ConsentScreen(Screen):
    def refresh(self) -> None:
        rows = self.ids.purposes
        rows.clear_widgets()
        for purpose in PURPOSES:
            rows.add_widget(
                PurposeRow(
                    purpose=purpose.id,
                    icon=purpose.icon,
                    heading=purpose.title,
                    uses=purpose.uses,
                    never=purpose.never,
                )
            )

    def choices(self) -> dict[str, bool]:
        return {row.purpose: row.ids.switch.active for row in self.ids.purposes.children}

    def allow_all(self) -> None:
        App.get_running_app().consent_chosen(dict.fromkeys(self.choices(), True))

    def save_choice(self) -> None:
        App.get_running_app().consent_chosen(self.choices())
