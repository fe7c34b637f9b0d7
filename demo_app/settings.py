"""The app's own settings (not the SDK's data): backend, signal source, the simulation.

Kept as one small JSON file in the app's data directory. A file that cannot be read gives the
defaults: settings are conveniences, never a reason for the app not to start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["SIGNAL_SOURCES", "SPEEDS", "AppSettings", "load_settings", "save_settings"]

SIGNAL_SOURCES = ("simulated", "device")
# Simulated seconds per real second, with the label the Settings screen shows.
SPEEDS: dict[str, float] = {"1 min/s": 60.0, "10 min/s": 600.0, "1 h/s": 3600.0}


@dataclass(frozen=True)
class AppSettings:
    """What the user chose in Settings; ``simulated`` remembers where each simulated phone is."""

    backend_url: str = ""
    public_key: str = ""  # the backend's Ed25519 key (base64) that model bundles are signed with
    signals: str = "simulated"
    persona: str = "commuter"
    speed: str = "10 min/s"
    simulated: dict[str, dict[str, Any]] = field(default_factory=dict)  # persona -> progress

    def with_changes(self, **changes: Any) -> AppSettings:
        return replace(self, **changes)


def load_settings(path: Path, defaults: AppSettings) -> AppSettings:
    """The settings in ``path``, or ``defaults`` for a missing, unreadable or odd file."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return defaults
    if not isinstance(stored, dict):
        return defaults
    known = {key: value for key, value in stored.items() if key in asdict(defaults)}
    settings = replace(defaults, **known)
    if settings.signals not in SIGNAL_SOURCES or settings.speed not in SPEEDS:
        return defaults
    return settings


def save_settings(path: Path, settings: AppSettings) -> None:
    """Write atomically (a temporary file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(settings), indent=1, sort_keys=True), "utf-8")
    temporary.replace(path)
