"""Signals through the public API: durations from consecutive rows, duplicates, local time."""

from __future__ import annotations

import pytest

from edgepersona.sdk import EdgePersona, ManualClock, Settings

from ..conftest import T0


def app_rows(sdk: EdgePersona) -> list[tuple[str, float | None]]:
    return [(r["app"], r["duration_s"]) for r in sdk.export()["signals"]["app"]]


def test_durations_come_from_the_next_foreground_row(sdk: EdgePersona) -> None:
    sdk.track_app("com.whatsapp", ts=T0)
    sdk.track_app("com.spotify.music", ts=T0 + 90)
    sdk.track_app("com.whatsapp", ts=T0 + 100)
    assert app_rows(sdk) == [("com.whatsapp", 90.0), ("com.spotify.music", 10.0)]


def test_durations_are_capped(data_dir, clock: ManualClock) -> None:
    settings = Settings(foreground_cap_s=600)
    with EdgePersona.open(data_dir, "app", clock=clock, settings=settings) as sdk:
        sdk.consent.grant("personalization")
        sdk.track_app("com.netflix.mediaclient", ts=T0)
        sdk.track_app("com.whatsapp", ts=T0 + 5 * 3600)
        assert app_rows(sdk) == [("com.netflix.mediaclient", 600.0)]


def test_explicit_duration_closes_the_row_at_once(sdk: EdgePersona) -> None:
    sdk.track_app("com.whatsapp", ts=T0, duration_s=42)
    assert app_rows(sdk) == [("com.whatsapp", 42.0)]


def test_out_of_order_successor_gives_no_duration(sdk: EdgePersona) -> None:
    sdk.track_app("com.whatsapp", ts=T0 + 100)
    sdk.track_app("com.spotify.music", ts=T0)
    sdk.track_app("com.reddit.frontpage", ts=T0 + 200)
    assert app_rows(sdk) == [("com.whatsapp", None), ("com.spotify.music", 200.0)]


def test_apps_and_screens_are_separate_streams(sdk: EdgePersona) -> None:
    sdk.track_app("com.whatsapp", ts=T0)
    sdk.track_screen("home", ts=T0 + 5)
    sdk.track_screen("cart", ts=T0 + 25)
    sdk.track_app("com.spotify.music", ts=T0 + 60)
    exported = sdk.export()["signals"]
    assert [(r["name"], r["duration_s"]) for r in exported["screen"]] == [("home", 20.0)]
    assert app_rows(sdk) == [("com.whatsapp", 60.0)]


def test_repeated_rows_are_dropped_as_duplicates(sdk: EdgePersona) -> None:
    assert sdk.track_app("com.whatsapp", ts=T0) is True
    assert sdk.track_app("com.whatsapp", ts=T0) is False
    assert sdk.track_event("purchase", 5.0, ts=T0) is True
    assert sdk.track_event("purchase", 5.0, ts=T0) is False
    assert sdk.track_event("purchase", 6.0, ts=T0) is True
    assert sdk.record_location(1.0, 2.0, ts=T0) is True
    assert sdk.record_location(1.0, 2.0, ts=T0) is False
    assert sdk.stats()["dropped"] == {
        "app.duplicate": 1,
        "event.duplicate": 1,
        "location.duplicate": 1,
    }


def test_category_is_resolved_or_given(sdk: EdgePersona) -> None:
    sdk.track_app("com.spotify.music", ts=T0, duration_s=1)
    sdk.track_app("org.example.unknown", ts=T0 + 1, duration_s=1)
    sdk.track_app("org.example.unknown", ts=T0 + 2, duration_s=1, category="shopping")
    assert [r["category"] for r in sdk.export()["signals"]["app"]] == [
        "music_video",
        "other",
        "shopping",
    ]


def test_host_app_extends_the_resolver(data_dir, clock: ManualClock) -> None:
    with EdgePersona.open(
        data_dir, "app", clock=clock, app_categories={"org.example": "news"}
    ) as sdk:
        sdk.consent.grant("personalization")
        sdk.track_app("org.example.daily", ts=T0, duration_s=1)
        assert sdk.export()["signals"]["app"][0]["category"] == "news"


def test_default_timestamp_is_the_injected_clock(sdk: EdgePersona, clock: ManualClock) -> None:
    clock.advance(1234)
    sdk.track_event("view")
    assert sdk.export()["signals"]["event"][0]["ts"] == T0 + 1234


@pytest.mark.parametrize(
    ("tz", "hour", "weekday", "weekend"),
    [
        ("UTC", 8, 0, False),
        ("Asia/Kolkata", 13, 0, False),
        ("Pacific/Auckland", 21, 0, False),
        ("America/Los_Angeles", 0, 0, False),
        ("Pacific/Honolulu", 22, 6, True),
        ("-03:00", 5, 0, False),
    ],
)
def test_local_time_in_the_zone_given(
    sdk: EdgePersona, tz: str, hour: int, weekday: int, weekend: bool
) -> None:
    local = sdk.local_time(T0, tz=tz)
    assert (local.hour, local.weekday, local.is_weekend) == (hour, weekday, weekend)


def test_local_time_follows_daylight_saving(sdk: EdgePersona) -> None:
    # Europe/Paris moves to summer time on 2026-03-29 at 01:00 UTC.
    before = sdk.local_time(1_774_745_000.0, tz="Europe/Paris")
    after = sdk.local_time(1_774_746_000.0, tz="Europe/Paris")
    assert (before.utc_offset_s, after.utc_offset_s) == (3600, 7200)
