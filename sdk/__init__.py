"""EdgePersona SDK: on-device signals, consent, persona and moment context.

Everything an app needs is importable from here; modules starting with ``_`` are internal.
"""

from ._api import EdgePersona
from ._categories import CATEGORIES
from ._consent import PURPOSES
from ._location import PRESETS, SamplingPolicy
from ._replay import ReplayReport, replay
from ._store import Settings
from ._sync import SyncResult, SyncSettings
from ._types import Decision, LocalTime, Moment, PersonaEstimate
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
from .features import MICROCONVERSIONS

__all__ = [
    "CATEGORIES",
    "MICROCONVERSIONS",
    "PRESETS",
    "PURPOSES",
    "Clock",
    "ConditionError",
    "Decision",
    "EdgePersona",
    "EdgePersonaError",
    "InvalidPurposeError",
    "InvalidSignalError",
    "LocalTime",
    "LocationUnavailableError",
    "ManualClock",
    "ModelError",
    "Moment",
    "PersonaEstimate",
    "ReplayReport",
    "SamplingPolicy",
    "Settings",
    "StoreClosedError",
    "StoreError",
    "SyncResult",
    "SyncSettings",
    "SystemClock",
    "TraceError",
    "replay",
]
