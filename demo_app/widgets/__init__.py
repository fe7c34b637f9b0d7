"""Reusable widgets: cards, buttons, switches, the charts and the map of places.

Importing this package defines the widget classes, which Kivy registers for the kv rules.
"""

from .charts import BarRow, FeatureChart, PersonaChart
from .common import (
    Caption,
    CardBox,
    Chip,
    FilledButton,
    IconBubble,
    IconButton,
    NavButton,
    PillSwitch,
    Segment,
    TextButton,
    Title,
    WrappedLabel,
)
from .placemap import PlaceMap
from .shell import ConfirmDialog, Root

__all__ = [
    "BarRow",
    "CardBox",
    "Caption",
    "Chip",
    "ConfirmDialog",
    "FeatureChart",
    "FilledButton",
    "IconBubble",
    "IconButton",
    "NavButton",
    "PersonaChart",
    "PillSwitch",
    "PlaceMap",
    "Root",
    "Segment",
    "TextButton",
    "Title",
    "WrappedLabel",
]
