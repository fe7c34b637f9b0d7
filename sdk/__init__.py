"""EdgePersona SDK: on-device signals, consent, persona and moment context.

Everything an app needs is importable from here; modules starting with ``_`` are internal.
"""

from ._api import MICROCONVERSIONS, EdgePersona
from ._categories import CATEGORIES
from ._consent import PURPOSES
from ._location import PRESETS, SamplingPolicy
from ._replay import ReplayReport, replay
from ._store import StoreSettings
from ._types import LocalTime
from .clock import Clock, ManualClock, SystemClock
from .errors import (
    ConditionError,
    EdgePersonaError,
    InvalidPurposeError,
    InvalidSignalError,
    LocationUnavailableError,
    ModelError,
    StoreClosedError,
    StoreError,
    TraceError,
)

__all__ = [
    "CATEGORIES",
    "MICROCONVERSIONS",
    "PRESETS",
    "PURPOSES",
    "Clock",
    "ConditionError",
    "EdgePersona",
    "EdgePersonaError",
    "InvalidPurposeError",
    "InvalidSignalError",
    "LocalTime",
    "LocationUnavailableError",
    "ManualClock",
    "ModelError",
    "ReplayReport",
    "SamplingPolicy",
    "StoreClosedError",
    "StoreError",
    "StoreSettings",
    "SystemClock",
    "TraceError",
    "replay",
]
