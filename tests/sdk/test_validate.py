"""Validators: every bad argument raises InvalidSignalError naming the field; good ones pass."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk import EdgePersona, InvalidSignalError
from edgepersona.sdk import _validate as check

from ..conftest import T0

finite = st.floats(allow_nan=False, allow_infinity=False)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers()),
    st.floats(),
    st.integers(),
)


@given(finite)
def test_latitude_accepts_exactly_the_valid_range(lat: float) -> None:
    if -90 <= lat <= 90:
        assert check.latitude(lat) == lat
    else:
        with pytest.raises(InvalidSignalError, match=r"lat: .*outside -90\.\.90"):
            check.latitude(lat)


@given(finite)
def test_longitude_accepts_exactly_the_valid_range(lon: float) -> None:
    if -180 <= lon <= 180:
        assert check.longitude(lon) == lon
    else:
        with pytest.raises(InvalidSignalError, match="lon"):
            check.longitude(lon)


@given(anything)
def test_non_numbers_are_rejected_with_their_type(raw: object) -> None:
    valid = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
    if valid and -90 <= raw <= 90:  # type: ignore[operator]
        assert check.latitude(raw) == raw
    else:
        with pytest.raises(InvalidSignalError) as info:
            check.latitude(raw)
        assert info.value.field == "lat"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "48.8", None])
def test_nan_infinity_bool_and_strings_are_not_coordinates(bad: object) -> None:
    with pytest.raises(InvalidSignalError, match="lat"):
        check.latitude(bad)


@given(st.floats(min_value=-1e13, max_value=1e13))
def test_timestamps_between_2000_and_a_day_ahead(ts: float) -> None:
    if check.EARLIEST_TS <= ts <= T0 + 86400:
        assert check.timestamp(ts, T0) == ts
    else:
        with pytest.raises(InvalidSignalError, match="ts"):
            check.timestamp(ts, T0)


def test_millisecond_timestamps_get_a_hint() -> None:
    with pytest.raises(InvalidSignalError, match="milliseconds"):
        check.timestamp(T0 * 1000, T0)


@given(finite)
def test_accuracy_speed_duration_ranges(x: float) -> None:
    for fn, low_ok, high in (
        (check.accuracy, False, 50_000),
        (check.speed, True, 350),
        (check.duration, True, 86_400),
    ):
        inside = (x >= 0 if low_ok else x > 0) and x <= high
        if inside:
            assert fn(x) == x
        else:
            with pytest.raises(InvalidSignalError):
                fn(x)


@given(st.text(max_size=80))
def test_names_accept_short_plain_text_only(raw: str) -> None:
    ok = 0 < len(raw) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.:/- ") for c in raw)
    if ok:
        assert check.name("name", raw) == raw
    else:
        with pytest.raises(InvalidSignalError, match="name"):
            check.name("name", raw)


@given(st.text(max_size=300))
def test_app_ids_are_package_like(raw: str) -> None:
    ok = 0 < len(raw) <= 255 and all(c.isascii() and (c.isalnum() or c in "_.-") for c in raw)
    if ok:
        assert check.app_id(raw) == raw
    else:
        with pytest.raises(InvalidSignalError, match="app"):
            check.app_id(raw)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.record_location(91, 0, ts=T0), "lat"),
        (lambda s: s.record_location(0, float("nan"), ts=T0), "lon"),
        (lambda s: s.record_location(0, 0, accuracy_m=1e9, ts=T0), "accuracy_m"),
        (lambda s: s.record_location(0, 0, speed_mps=-1, ts=T0), "speed_mps"),
        (lambda s: s.record_location(0, 0, ts=T0 + 3 * 86400), "ts"),
        (lambda s: s.track_app("", ts=T0), "app"),
        (lambda s: s.track_app("com.x", category="cars", ts=T0), "category"),
        (lambda s: s.track_app("com.x", duration_s=-5, ts=T0), "duration_s"),
        (lambda s: s.track_screen("x" * 65, ts=T0), "name"),
        (lambda s: s.track_event("view", value="12", ts=T0), "value"),
        (lambda s: s.track_event("view", ts=T0, tz="Mars/Olympus"), "tz"),
        (lambda s: s.track_event(None, ts=T0), "name"),
        (lambda s: s.local_time(T0, tz="+25:00"), "tz"),
    ],
)
def test_public_api_rejects_bad_input_and_stores_nothing(
    sdk: EdgePersona, call, field: str
) -> None:
    with pytest.raises(InvalidSignalError) as info:
        call(sdk)
    assert info.value.field == field
    assert "accepted" in str(info.value) or "expected" in str(info.value)
    exported = sdk.export()["signals"]
    assert all(not rows for rows in exported.values())


def test_invalid_signal_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="lat"):
        check.latitude(100)
