"""The frame around the screens: top bar, bottom navigation, snackbar, confirmation dialog."""

from __future__ import annotations

from collections.abc import Callable

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.modalview import ModalView

__all__ = ["ConfirmDialog", "Root"]


class Root(BoxLayout):
    """Top bar, the screens and the bottom navigation; ``chrome`` is off on the consent screen."""

    chrome = BooleanProperty(True)


class ConfirmDialog(ModalView):
    """Asks before something that cannot be undone; ``then`` runs on "yes"."""

    heading = StringProperty("")
    text = StringProperty("")
    confirm_text = StringProperty("Confirm")

    def __init__(
        self, heading: str, text: str, confirm_text: str, then: Callable[[], None]
    ) -> None:
        super().__init__(heading=heading, text=text, confirm_text=confirm_text)
        self._then = then

    def confirm(self) -> None:
        self.dismiss(animation=False)
        self._then()
