"""Every exception the SDK raises on purpose, in one tree.

::

    EdgePersonaError             base: catch it to catch anything the SDK raises on purpose
    ├── InvalidSignalError       a track_*/record_location argument was wrong (a ValueError)
    ├── InvalidPurposeError      consent named a purpose that does not exist (a ValueError)
    ├── LocationUnavailableError this platform has no GPS through plyer
    ├── StoreError               the on-device database cannot be opened, migrated or written
    │   └── StoreClosedError     the instance was closed or erased
    ├── TraceError               a trace file cannot be read at all (bad rows are reported)
    ├── ModelError               a persona model or bundle is malformed or cannot run
    └── ConditionError           a playbook or fence condition is not valid (a ValueError)

Messages say what was wrong and what is accepted, so an app developer can fix the call
without reading the source.
"""

from __future__ import annotations

__all__ = [
    "EdgePersonaError",
    "InvalidPurposeError",
    "InvalidSignalError",
    "LocationUnavailableError",
    "ConditionError",
    "ModelError",
    "StoreClosedError",
    "StoreError",
    "TraceError",
]


class EdgePersonaError(Exception):
    """Base of every exception the SDK raises on purpose."""


class InvalidSignalError(EdgePersonaError, ValueError):
    """A signal argument was rejected; nothing of the call was stored.

    ``field`` names the offending argument (``"lat"``, ``"ts"``, ``"name"``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class InvalidPurposeError(EdgePersonaError, ValueError):
    """A consent call named a purpose the SDK does not know."""


class LocationUnavailableError(EdgePersonaError):
    """Location cannot be collected here (no plyer, or no GPS on this platform)."""


class StoreError(EdgePersonaError):
    """The on-device database cannot be opened, migrated or written."""


class StoreClosedError(StoreError):
    """The instance was closed or erased; open a new one with ``EdgePersona.open``."""


class TraceError(EdgePersonaError):
    """A trace file cannot be read at all (missing, unreadable, no header)."""


class ModelError(EdgePersonaError):
    """A persona model or bundle is malformed, unsupported or gives insane outputs."""


class ConditionError(EdgePersonaError, ValueError):
    """A condition expression (playbook rule or fence) cannot be parsed or evaluated.

    ``position`` is the character offset of the problem in the expression, when known.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at character {position})")
        self.position = position
