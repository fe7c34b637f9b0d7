"""The app's two palettes; the theme a decision's layout asks for ("light" or "dark") wins."""

from __future__ import annotations

from kivy.event import EventDispatcher
from kivy.properties import ColorProperty, StringProperty
from kivy.utils import get_color_from_hex

__all__ = ["PALETTES", "Theme"]

PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "bg": "#F4F5FA",
        "surface": "#FFFFFF",
        "surface_alt": "#ECEEF6",
        "primary": "#4F46E5",
        "primary_soft": "#E0E4FF",
        "primary_text": "#FFFFFF",
        "text": "#1B1D28",
        "muted": "#5F6476",
        "divider": "#E1E3ED",
        "accent": "#EA580C",
        "good": "#15803D",
        "bad": "#DC2626",
    },
    "dark": {
        "bg": "#0F1117",
        "surface": "#1A1D27",
        "surface_alt": "#252937",
        "primary": "#A5B4FC",
        "primary_soft": "#2D3257",
        "primary_text": "#111327",
        "text": "#E8EAF2",
        "muted": "#9CA2B6",
        "divider": "#2B2F3D",
        "accent": "#FDBA74",
        "good": "#4ADE80",
        "bad": "#F87171",
    },
}


class Theme(EventDispatcher):
    """Colours the kv rules bind to (``app.theme.surface``...), switched as a whole."""

    name = StringProperty("light")
    bg = ColorProperty()
    surface = ColorProperty()
    surface_alt = ColorProperty()
    primary = ColorProperty()
    primary_soft = ColorProperty()
    primary_text = ColorProperty()
    text = ColorProperty()
    muted = ColorProperty()
    divider = ColorProperty()
    accent = ColorProperty()
    good = ColorProperty()
    bad = ColorProperty()

    def __init__(self) -> None:
        super().__init__()
        self.use("light")

    def use(self, name: str) -> None:
        """Switch palettes; an unknown name (from a newer playbook) keeps the light one."""
        name = name if name in PALETTES else "light"
        for key, value in PALETTES[name].items():
            setattr(self, key, get_color_from_hex(value))
        self.name = name
