"""The feature schema: documented, computed by one pure function, bounded by its ranges."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk import EdgePersona, ManualClock
from edgepersona.sdk.features import (
    FEATURE_NAMES,
    FEATURES,
    Activity,
    StaySpan,
    feature_vector,
    schema_markdown,
)

from ..conftest import T0

REPO = Path(__file__).resolve().parents[2]


def test_docs_match_the_schema() -> None:
    assert (REPO / "docs" / "features.md").read_text() == schema_markdown()


def test_names_are_unique_and_ranges_sane() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    assert all(f.low < f.high for f in FEATURES)


nonneg = st.floats(min_value=0, max_value=1e7)


@given(
    st.builds(
        Activity,
        days=st.integers(0, 60),
        tod_seconds=st.lists(nonneg, min_size=6, max_size=6),
        weekend_seconds=nonneg,
        category_seconds=st.dictionaries(st.sampled_from(["social", "games", "news"]), nonneg),
        sessions=st.integers(0, 10_000),
        session_seconds=nonneg,
        events=st.dictionaries(st.sampled_from(["view", "add_to_cart", "purchase"]), nonneg),
    ),
    st.lists(
        st.builds(
            StaySpan,
            start=st.floats(0, 1e6),
            end=st.floats(0, 1e6),
            lat=st.floats(-80, 80),
            lon=st.floats(-179, 179),
            place_id=st.integers(0, 5),
        ),
        max_size=20,
    ),
)
def test_every_value_stays_in_its_range(activity: Activity, stays: list[StaySpan]) -> None:
    vector = feature_vector(activity, sorted(stays), {0: "home", 1: "work"})
    assert len(vector) == len(FEATURES)
    for value, feature in zip(vector, FEATURES, strict=True):
        assert feature.low <= value <= feature.high, feature.name


def test_features_from_the_public_api(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock, tz="UTC") as sdk:
        sdk.consent.grant("personalization")
        # Monday 08:00 UTC: 30 minutes of games, then 10 of news after a 10-minute gap.
        sdk.track_app("com.supercell.clashofclans", ts=T0, duration_s=1800)
        sdk.track_app("com.bbc.news", ts=T0 + 2400, duration_s=600)
        for _ in range(4):
            sdk.track_event("view", ts=clock.time())
            clock.advance(1)
        sdk.track_event("add_to_cart", ts=clock.time())
        sdk.flush()
        features = sdk.features()
    assert features["tod_morning"] == 1.0
    assert features["app_games"] == 0.75
    assert features["app_news"] == 0.25
    assert features["weekend_share"] == 0.0
    assert features["view_to_cart"] == 1 / (4 + 3)  # one cart per four views, smoothed
    assert features["app_hours_per_day"] == 40 / 60
    # The 10-minute gap closed the first session (30 min); the second is still open.
    assert features["sessions_per_day"] == 1.0
    assert features["session_minutes"] == 30.0
