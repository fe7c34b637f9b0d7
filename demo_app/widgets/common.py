"""Small building blocks; their look is in ``kv/widgets.kv``."""

from __future__ import annotations

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

__all__ = [
    "CardBox",
    "Caption",
    "Chip",
    "FilledButton",
    "IconBubble",
    "IconButton",
    "NavButton",
    "PillSwitch",
    "Segment",
    "TextButton",
    "Title",
    "WrappedLabel",
]


class CardBox(BoxLayout):
    """A rounded surface holding a vertical stack."""


class WrappedLabel(Label):
    """Text that wraps to the width and is as tall as its lines."""


class Title(WrappedLabel):
    pass


class Caption(WrappedLabel):
    pass


class IconBubble(Label):
    """A glyph on a round tinted background."""


class Chip(Label):
    pass


class FilledButton(ButtonBehavior, Label):
    pass


class TextButton(ButtonBehavior, Label):
    pass


class IconButton(ButtonBehavior, Label):
    pass


class Segment(ButtonBehavior, Label):
    """One choice of a segmented control; the screen sets ``selected``."""

    value = StringProperty("")
    selected = BooleanProperty(False)


class NavButton(ButtonBehavior, BoxLayout):
    icon = StringProperty("")
    text = StringProperty("")
    target = StringProperty("")
    selected = BooleanProperty(False)


class PillSwitch(ButtonBehavior, Widget):
    """An on/off switch. It flips on press, so ``on_release`` handlers see the new value."""

    active = BooleanProperty(False)

    def on_press(self) -> None:
        self.active = not self.active
