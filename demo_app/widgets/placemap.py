"""The places the device knows, drawn to scale around their centre: no map tiles, no network.

Each place is a dot with a halo sized by its visits; home and work carry a glyph and a label
with their visit counts. A grid and a scale bar give the distances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kivy.app import App
from kivy.graphics import Color, Ellipse, InstructionGroup, Line, RoundedRectangle
from kivy.metrics import dp
from kivy.properties import ListProperty, NumericProperty
from kivy.uix.label import Label
from kivy.uix.relativelayout import RelativeLayout

from ..theme import Theme
from ..views import PlaceView

__all__ = ["PlaceMap", "nice_step"]

_GLYPHS = {"home": "⌂", "work": "▣"}


def nice_step(span_m: float) -> float:
    """A round grid step (1, 2 or 5 times a power of ten metres) giving about four cells."""
    raw = max(span_m / 4, 1.0)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _distance(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


class PlaceMap(RelativeLayout):
    """Call ``show(places)``; it redraws when resized and when the theme changes."""

    places = ListProperty()
    metres_per_px = NumericProperty(1.0)  # the drawn scale

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        # Drawn under the labels (children) and after RelativeLayout's translation, which
        # sits in canvas.before; kv may add that after this constructor has run.
        self._drawing = InstructionGroup()
        self.canvas.insert(0, self._drawing)
        self.bind(size=self._redraw, places=self._redraw)
        App.get_running_app().theme.bind(name=self._redraw)

    def show(self, places: Sequence[PlaceView]) -> None:
        self.places = list(places)

    def _redraw(self, *_: object) -> None:
        theme: Theme = App.get_running_app().theme
        self._drawing.clear()
        self.clear_widgets()
        self._add(Color(*theme.surface_alt))
        self._add(RoundedRectangle(pos=(0, 0), size=self.size, radius=[dp(14)]))
        if not self.places:
            self._label(
                "No places yet: they appear after a few stays",
                theme.muted,
                self.center_x,
                self.height / 2,
                False,
            )
            return
        extent = max(max(abs(p.x_m), abs(p.y_m)) for p in self.places) or 200.0
        self.metres_per_px = extent / max(min(self.width, self.height) / 2 - dp(36), dp(10))
        step = nice_step(2 * extent)
        self._grid(step, theme)
        for place in sorted(self.places, key=lambda p: p.label != "other"):
            self._place(place, theme)
        self._scale_bar(step, theme)

    def _xy(self, place: PlaceView) -> tuple[float, float]:
        return (
            self.width / 2 + place.x_m / self.metres_per_px,
            self.height / 2 + place.y_m / self.metres_per_px,
        )

    def _grid(self, step: float, theme: Theme) -> None:
        cx, cy, pixels = self.width / 2, self.height / 2, step / self.metres_per_px
        count = int(max(self.width, self.height) / 2 / pixels) + 1
        self._add(Color(*theme.divider))
        for i in range(-count, count + 1):
            self._add(
                Line(points=[cx + i * pixels, 0, cx + i * pixels, self.height], width=dp(0.7))
            )
            self._add(Line(points=[0, cy + i * pixels, self.width, cy + i * pixels], width=dp(0.7)))

    def _place(self, place: PlaceView, theme: Theme) -> None:
        x, y = self._xy(place)
        colour = {"home": theme.primary, "work": theme.accent}.get(place.label, theme.muted)
        halo = min(dp(5) + dp(2.2) * math.sqrt(place.visits), dp(18))
        self._add(Color(*colour[:3], 0.22))
        self._add(Ellipse(pos=(x - halo, y - halo), size=(2 * halo, 2 * halo)))
        self._add(Color(*colour))
        self._add(Ellipse(pos=(x - dp(4.5), y - dp(4.5)), size=(dp(9), dp(9))))
        if place.label in _GLYPHS:
            glyph = f"[font=DejaVuSans]{_GLYPHS[place.label]}[/font]"
            text = f"{glyph} {place.label.capitalize()} · {place.visits} visits"
            self._label(text, colour, x, y + halo + dp(2), True)

    def _scale_bar(self, step: float, theme: Theme) -> None:
        pixels, x, y = step / self.metres_per_px, dp(14), dp(14)
        self._add(Color(*theme.text))
        self._add(
            Line(points=[x, y + dp(5), x, y, x + pixels, y, x + pixels, y + dp(5)], width=dp(1.2))
        )
        self._label(_distance(step), theme.text, x + pixels / 2, y + dp(4), False)

    def _add(self, instruction: object) -> None:
        self._drawing.add(instruction)

    def _label(self, text: str, colour: list[float], x: float, bottom: float, bold: bool) -> None:
        label = Label(
            text=text,
            markup=True,
            bold=bold,
            font_size="12sp",
            color=colour,
            size_hint=(None, None),
        )
        label.texture_update()
        label.size = label.texture_size
        left = min(max(x - label.width / 2, dp(4)), self.width - label.width - dp(4))
        label.pos = (left, min(bottom, self.height - label.height - dp(4)))
        self.add_widget(label)
