"""Consent: nothing collected before a grant, an audit row for every change, revoke deletes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgepersona.sdk import EdgePersona, InvalidPurposeError, ManualClock

from ..conftest import T0


def count(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "edgepersona.db") as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def track_everything(sdk: EdgePersona, ts: float) -> list[bool]:
    return [
        sdk.track_app("com.instagram.android", ts=ts),
        sdk.track_screen("home", ts=ts, duration_s=3),
        sdk.track_event("view", ts=ts),
        sdk.record_location(52.52, 13.40, 8.0, ts=ts),
    ]


def test_all_purposes_off_until_granted(fresh_sdk: EdgePersona) -> None:
    assert fresh_sdk.consent.status() == {
        "personalization": False,
        "location": False,
        "sync": False,
    }


def test_nothing_is_stored_without_consent(fresh_sdk: EdgePersona, data_dir: Path) -> None:
    assert track_everything(fresh_sdk, T0) == [False] * 4
    fresh_sdk.close()
    for table in (
        "app_usage",
        "screens",
        "events",
        "locations",
        "rollup_hourly",
        "rollup_daily",
        "daily_counts",
    ):
        assert count(data_dir, table) == 0, table


def test_drops_are_counted_in_memory_only(fresh_sdk: EdgePersona) -> None:
    track_everything(fresh_sdk, T0)
    track_everything(fresh_sdk, T0 + 1)
    assert fresh_sdk.stats()["dropped"] == {
        "app.no_consent": 2,
        "screen.no_consent": 2,
        "event.no_consent": 2,
        "location.no_consent": 2,
    }


def test_each_purpose_gates_its_own_signals(fresh_sdk: EdgePersona) -> None:
    fresh_sdk.consent.grant("location")
    assert track_everything(fresh_sdk, T0) == [False, False, False, True]
    fresh_sdk.consent.grant("personalization")
    assert track_everything(fresh_sdk, T0 + 10) == [True, True, True, True]


def test_every_change_is_audited_with_time_and_policy(
    fresh_sdk: EdgePersona, clock: ManualClock
) -> None:
    fresh_sdk.consent.grant("sync", policy_version="2026-03")
    clock.advance(60)
    fresh_sdk.consent.revoke("sync", source="settings-screen")
    audit = fresh_sdk.consent.audit()
    assert audit == [
        {
            "ts": T0,
            "purpose": "sync",
            "action": "grant",
            "policy_version": "2026-03",
            "source": "app",
        },
        {
            "ts": T0 + 60,
            "purpose": "sync",
            "action": "revoke",
            "policy_version": "1",
            "source": "settings-screen",
        },
    ]


def test_revoking_location_deletes_stored_and_buffered_fixes(
    sdk: EdgePersona, data_dir: Path
) -> None:
    sdk.record_location(52.52, 13.40, ts=T0)
    sdk.flush()
    sdk.record_location(52.53, 13.41, ts=T0 + 60)  # still in the buffer
    sdk.track_event("view", ts=T0)
    sdk.consent.revoke("location")
    sdk.flush()
    assert count(data_dir, "locations") == 0
    exported = sdk.export()
    assert all(r["kind"] != "location" for r in exported["rollups"]["hourly"])
    assert len(exported["signals"]["event"]) == 1  # other purposes untouched
    assert sdk.record_location(52.52, 13.40, ts=T0 + 120) is False


def test_revoking_personalization_deletes_behaviour_and_the_open_row(
    sdk: EdgePersona, data_dir: Path, clock: ManualClock
) -> None:
    sdk.track_app("com.whatsapp", ts=T0)
    sdk.track_app("com.spotify.music", ts=T0 + 30)  # closes whatsapp, stays open
    sdk.track_event("purchase", 9.0, ts=T0)
    sdk.consent.revoke("personalization")
    clock.advance(600)
    sdk.close()
    for table in ("app_usage", "screens", "events"):
        assert count(data_dir, table) == 0, table


def test_consent_survives_a_restart(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        sdk.consent.grant("location")
    with EdgePersona.open(data_dir, "app", clock=clock) as sdk:
        assert sdk.consent.status("location") is True
        assert sdk.consent.status("sync") is False
        assert len(sdk.consent.audit()) == 1


@pytest.mark.parametrize("purpose", ["marketing", "", None, "Location", 3])
def test_unknown_purpose_is_a_clear_error(fresh_sdk: EdgePersona, purpose: object) -> None:
    with pytest.raises(InvalidPurposeError, match="accepted: personalization, location, sync"):
        fresh_sdk.consent.grant(purpose)  # type: ignore[arg-type]
    if purpose is not None:  # status() without a purpose lists them all
        with pytest.raises(InvalidPurposeError):
            fresh_sdk.consent.status(purpose)  # type: ignore[arg-type]
