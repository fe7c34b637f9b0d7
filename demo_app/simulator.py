"""A simulated phone for desktops: a synthetic persona's life, fed to the SDK in fast time.

The rows come from ``edgepersona.edge_models.population`` (the seeded generator the default
model was trained on) and go through the SDK's public calls, exactly as a host app's own
location and usage code would make them. The phone's clock (a ``ManualClock`` given to the
SDK) follows the simulation: the app moves it with Kivy's clock in a real run, tests move it
themselves, so nothing here waits or reads the wall clock.

A new phone starts at midnight of its first day, catches up two weeks of history at once
(so the persona has behaviour to go on), then plays from 06:00 on a weekday.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from edgepersona.edge_models.population import Device, trace_rows
from edgepersona.sdk import EdgePersona, ManualClock

__all__ = ["HISTORY_DAYS", "SIMULATED_ZONE", "SimulatedPhone", "first_day_for"]

HISTORY_DAYS = 15  # two weeks and a Monday, caught up at once; "today" is a Tuesday
PLAYED_WEEKS = 8  # after that the simulated phone has nothing more to say
DAY_STARTS_AT = time(6, 0)
SIMULATED_ZONE = "Europe/Paris"  # one of the generator's cities
DEVICE_SEED = 7


def first_day_for(today: date) -> date:
    """The Monday two weeks before ``today``'s week, so the played days are about now."""
    return today - timedelta(days=today.weekday() + 14)


class SimulatedPhone:
    """The phone of one synthetic persona, fed to an SDK as its clock is moved forward."""

    def __init__(
        self,
        persona_id: str,
        first_day: date,
        *,
        tz: str = SIMULATED_ZONE,
        seed: int = DEVICE_SEED,
    ) -> None:
        self.persona_id = persona_id
        self.tz = tz
        self.zone = ZoneInfo(tz)
        self.first_day = first_day
        self.clock = ManualClock(self._local(first_day, time(0)))
        self.today_starts_at = self._local(first_day + timedelta(days=HISTORY_DAYS), DAY_STARTS_AT)
        device = Device(f"simulated-{persona_id}", persona_id, tz, seed)
        self._rows: Iterator[dict[str, Any]] = trace_rows(
            device, start=first_day, weeks=PLAYED_WEEKS
        )
        self._next: tuple[float, dict[str, Any]] | None = self._pull()

    @property
    def finished(self) -> bool:
        """True when every simulated day has been played."""
        return self._next is None

    def now(self) -> datetime:
        """The simulated local time."""
        return datetime.fromtimestamp(self.clock.time(), self.zone)

    def catch_up(self, sdk: EdgePersona) -> int:
        """Feed the history up to 06:00 of "today" (a no-op once past it); rows fed."""
        return self.play_until(sdk, max(self.clock.time(), self.today_starts_at))

    def advance(self, sdk: EdgePersona, seconds: float) -> int:
        """Play ``seconds`` of simulated time; returns the rows fed."""
        return self.play_until(sdk, self.clock.time() + seconds)

    def skip_to(self, sdk: EdgePersona, hour: int) -> int:
        """Play until the next ``hour``:00 local (tomorrow's if that hour has passed today)."""
        now = self.now()
        target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        if target <= now:
            target = datetime.combine(now.date() + timedelta(days=1), time(hour), self.zone)
        return self.play_until(sdk, target.timestamp())

    def play_until(self, sdk: EdgePersona, until: float) -> int:
        """Feed every row up to ``until`` through the SDK's public calls, then commit."""
        fed = 0
        while self._next is not None and self._next[0] <= until:
            ts, row = self._next
            self.clock.set(ts)
            _feed(sdk, ts, row)
            fed += 1
            self._next = self._pull()
        self.clock.set(until)
        sdk.flush()  # the screens read committed state
        return fed

    def resume(self, at: float) -> None:
        """Continue a phone whose rows up to ``at`` are already in its database."""
        while self._next is not None and self._next[0] <= at:
            self._next = self._pull()
        self.clock.set(at)

    def _pull(self) -> tuple[float, dict[str, Any]] | None:
        row = next(self._rows, None)
        return None if row is None else (_timestamp(row["ts"]), row)

    def _local(self, day: date, at: time) -> float:
        return datetime.combine(day, at, self.zone).timestamp()


def _timestamp(value: Any) -> float:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else float(value)


def _feed(sdk: EdgePersona, ts: float, row: dict[str, Any]) -> None:
    get, tz, kind = row.get, row.get("tz"), row["kind"]
    if kind == "location":
        sdk.record_location(
            row["lat"], row["lon"], get("accuracy_m"), get("speed_mps"), ts=ts, tz=tz
        )
    elif kind == "app":
        sdk.track_app(row["app"], ts=ts, duration_s=get("duration_s"), tz=tz)
    elif kind == "screen":
        sdk.track_screen(row["name"], ts=ts, duration_s=get("duration_s"), tz=tz)
    else:
        sdk.track_event(row["name"], get("value"), ts=ts, tz=tz)
