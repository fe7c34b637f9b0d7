"""Per-day activity sums over the feature window, kept in memory and updated per commit.

Features must not re-read weeks of rollups on every ``decide()``: the store hands each
committed batch's hourly sums here, and the window total is a sum over at most
``window_days`` small per-day records. At open, the window is loaded once from the rollups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from .features import MICROCONVERSIONS, TIME_OF_DAY, Activity, time_of_day

_TOD_INDEX = {name: i for i, (name, _, _) in enumerate(TIME_OF_DAY)}
_COUNTED_EVENTS = frozenset(MICROCONVERSIONS)
HourlyRow = tuple[str, str, str, float, float, float]  # hour, kind, key, n, seconds, value


@dataclass
class _Day:
    weekend: bool
    tod_seconds: list[float] = field(default_factory=lambda: [0.0] * len(TIME_OF_DAY))
    category_seconds: dict[str, float] = field(default_factory=dict)
    sessions: int = 0
    session_seconds: float = 0.0
    events: dict[str, float] = field(default_factory=dict)


class ActivityWindow:
    """Thread-safe: the writer adds, the app's thread reads."""

    def __init__(self, window_days: int = 28) -> None:
        self.window_days = window_days
        self._days: dict[str, _Day] = {}
        self._lock = threading.Lock()

    def add(self, rows: Iterable[HourlyRow]) -> None:
        with self._lock:
            for hour, kind, key, n, seconds, _value in rows:
                day = self._days.get(hour[:10])
                if day is None:
                    weekend = date.fromisoformat(hour[:10]).weekday() >= 5
                    day = self._days[hour[:10]] = _Day(weekend)
                if kind == "app":
                    day.tod_seconds[_TOD_INDEX[time_of_day(int(hour[11:13]))]] += seconds
                    day.category_seconds[key] = day.category_seconds.get(key, 0.0) + seconds
                elif kind == "session":
                    day.sessions += int(n)
                    day.session_seconds += seconds
                elif kind == "event" and key in _COUNTED_EVENTS:
                    day.events[key] = day.events.get(key, 0.0) + n
            if len(self._days) > self.window_days * 3:
                for old in sorted(self._days)[: len(self._days) - self.window_days * 2]:
                    del self._days[old]

    def activity(self, today: str, days: int | None = None, skip_days: int = 0) -> Activity:
        """Sums over ``days`` (default: the window) local days ending ``skip_days`` before
        ``today`` (YYYY-MM-DD)."""
        last_day = date.fromisoformat(today) - timedelta(days=skip_days)
        first = (last_day - timedelta(days=(days or self.window_days) - 1)).isoformat()
        today = last_day.isoformat()
        total = Activity()
        with self._lock:
            for key, day in self._days.items():
                if not first <= key <= today:
                    continue
                total.days += 1
                app_seconds = 0.0
                for i, seconds in enumerate(day.tod_seconds):
                    total.tod_seconds[i] += seconds
                for category, seconds in day.category_seconds.items():
                    total.category_seconds[category] = (
                        total.category_seconds.get(category, 0.0) + seconds
                    )
                    app_seconds += seconds
                if day.weekend:
                    total.weekend_seconds += app_seconds
                total.sessions += day.sessions
                total.session_seconds += day.session_seconds
                for name, n in day.events.items():
                    total.events[name] = total.events.get(name, 0.0) + n
        return total

    def clear(self) -> None:
        with self._lock:
            self._days.clear()
