"""The persona probabilities and feature values as horizontal bars (look in ``kv/charts.kv``)."""

from __future__ import annotations

from collections.abc import Sequence

from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from ..views import FeatureView, PersonaBar

__all__ = ["BarRow", "FeatureChart", "PersonaChart"]


class BarRow(BoxLayout):
    """A label, a value and a bar filled to ``fraction``."""

    label = StringProperty("")
    value_text = StringProperty("")
    fraction = NumericProperty(0.0)
    colour = StringProperty("")  # "#RRGGBB"; empty: the theme's primary colour
    struck = BooleanProperty(False)  # a persona the user said is not them
    key = StringProperty("")  # the persona id or feature name the row shows


class PersonaChart(BoxLayout):
    """One row per persona, most likely first."""

    def show(self, bars: Sequence[PersonaBar]) -> None:
        self.clear_widgets()
        for bar in bars:
            self.add_widget(
                BarRow(
                    key=bar.id,
                    label=bar.name,
                    value_text="not me" if bar.rejected else f"{bar.probability:.0%}",
                    fraction=bar.probability,
                    colour=bar.colour,
                    struck=bar.rejected,
                )
            )


class FeatureChart(BoxLayout):
    """One row per feature, in schema order, scaled to each feature's documented range."""

    def show(self, features: Sequence[FeatureView]) -> None:
        self.clear_widgets()
        for feature in features:
            self.add_widget(
                BarRow(
                    key=feature.name,
                    label=feature.name.replace("_", " "),
                    value_text=f"{feature.value:.2f}",
                    fraction=feature.fraction,
                )
            )
