"""Location through the public API: consent first, fixes stored and counted per day."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepersona.sdk import EdgePersona, LocationUnavailableError, ManualClock

from .test_location import FakeGps


def test_no_gps_before_location_consent(fresh_sdk: EdgePersona) -> None:
    gps = FakeGps()
    assert fresh_sdk.start_location("responsive", source=gps) is False
    assert gps.calls == []
    assert fresh_sdk.stats()["dropped"] == {"location.no_consent": 1}


def test_fixes_are_stored_and_reported_per_day(sdk: EdgePersona, clock: ManualClock) -> None:
    gps = FakeGps()
    assert sdk.start_location("continuous", daily_budget=3, source=gps) is True
    assert gps.calls[0][0] == "start"
    for i in range(5):
        clock.advance(10)
        gps.deliver(lat=48.85 + i * 0.001, lon=2.35, accuracy=10.0, speed=1.0)
    status = sdk.location_status()
    assert status["today"]["requested"] == 5
    assert status["today"]["stored"] == 3
    assert status["today"]["dropped"]["budget"] == 2
    assert len(sdk.export()["signals"]["location"]) == 3
    (day,) = sdk.daily_counts().values()
    assert day["location.requested"] == 5
    assert day["location.stored"] == 3
    assert day["location.dropped.budget"] == 2
    assert day["rows.location"] == 3


def test_revoking_location_stops_the_gps(sdk: EdgePersona, clock: ManualClock) -> None:
    gps = FakeGps()
    sdk.start_location("responsive", source=gps)
    sdk.consent.revoke("location")
    assert gps.calls[-1] == ("stop",)
    clock.advance(60)
    gps.deliver(lat=48.85, lon=2.35)  # a late callback from the platform
    assert sdk.export()["signals"]["location"] == []


def test_policy_off_stops(sdk: EdgePersona) -> None:
    gps = FakeGps()
    sdk.start_location("responsive", source=gps)
    assert sdk.start_location("off") is False
    assert gps.calls[-1] == ("stop",)
    assert sdk.location_status()["mode"] == "stopped"


def test_desktop_without_gps_is_a_clear_error(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        sdk.consent.grant("location")
        with pytest.raises(LocationUnavailableError, match="record_location"):
            sdk.start_location("responsive")
