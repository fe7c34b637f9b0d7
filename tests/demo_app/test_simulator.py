"""The simulated phone feeds a persona's synthetic life through the SDK's public calls."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from edgepersona.demo_app.simulator import HISTORY_DAYS, SimulatedPhone, first_day_for
from edgepersona.sdk import EdgePersona

TODAY = date(2026, 3, 18)  # the simulated days are 2-17 March 2026


def open_phone(tmp_path: Path, persona: str) -> tuple[SimulatedPhone, EdgePersona]:
    phone = SimulatedPhone(persona, first_day_for(TODAY))
    sdk = EdgePersona.open(tmp_path / persona, "test", clock=phone.clock, tz=phone.tz, seed=1)
    sdk.consent.grant("personalization")
    sdk.consent.grant("location")
    return phone, sdk


def test_first_day_is_the_monday_two_weeks_before_this_week() -> None:
    assert first_day_for(date(2026, 3, 18)) == date(2026, 3, 2)
    assert first_day_for(date(2026, 3, 16)) == date(2026, 3, 2)
    assert first_day_for(date(2026, 3, 2)).weekday() == 0


def test_catch_up_plays_two_weeks_then_today_starts_at_six(tmp_path: Path) -> None:
    phone, sdk = open_phone(tmp_path, "commuter")
    fed = phone.catch_up(sdk)
    assert fed > 3000
    assert phone.now() == datetime(2026, 3, 17, 6, 0, tzinfo=phone.zone)
    assert (phone.now().date() - phone.first_day).days == HISTORY_DAYS
    days = sorted(sdk.daily_counts(days=30))
    assert (days[0], days[-1], len(days)) == ("2026-03-02", "2026-03-17", HISTORY_DAYS + 1)
    assert phone.catch_up(sdk) == 0  # once past it, nothing more
    estimate = sdk.persona()
    assert estimate is not None and estimate.id == "commuter"
    sdk.close()


def test_skip_to_plays_until_the_next_hour(tmp_path: Path) -> None:
    phone, sdk = open_phone(tmp_path, "commuter")
    phone.catch_up(sdk)
    assert phone.skip_to(sdk, 12) > 0
    assert phone.now().hour == 12 and phone.now().day == 17
    assert sdk.context().place == "work"  # this commuter is at the office at noon
    phone.skip_to(sdk, 8)  # 8:00 has passed today: tomorrow's
    assert (phone.now().day, phone.now().hour) == (18, 8)
    sdk.close()


def test_a_resumed_phone_feeds_only_what_came_after(tmp_path: Path) -> None:
    phone, sdk = open_phone(tmp_path, "deal_hunter")
    phone.catch_up(sdk)
    phone.advance(sdk, 3 * 3600)
    at = sdk.local_time().ts
    sdk.close()
    again = SimulatedPhone("deal_hunter", phone.first_day)
    again.resume(at)
    reopened = EdgePersona.open(tmp_path / "deal_hunter", "test", clock=again.clock, tz=again.tz)
    assert again.play_until(reopened, at) == 0  # nothing up to where it stopped is fed again
    assert again.advance(reopened, 3600) > 0
    assert SimulatedPhone("deal_hunter", phone.first_day).play_until(reopened, at) > 3000
    reopened.close()
