"""Insights: persona chart, the map of places, this week's features, the last upload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kivy.uix.label import Label

from edgepersona.sdk.features import FEATURES

from .ui import go, jump, start


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    started = start_app()
    start(started)
    jump(started, 12)
    return started


def scroll_to(insights: Any, widget: Any) -> None:
    insights.children[0].scroll_to(widget, padding=0, animate=False)


def test_the_persona_chart_shows_the_estimate(driver: Any, shot: Any) -> None:
    insights = go(driver, "insights")
    estimate = driver.app.session.persona()
    rows = list(reversed(insights.ids.personas.children))
    ranked = sorted(estimate.probabilities.items(), key=lambda kv: -kv[1])
    assert [(r.key, r.fraction) for r in rows] == ranked
    assert rows[0].label == "Commuting professional" and rows[0].value_text == "100%"
    assert insights.persona_note.startswith("Model v1, worked out on this phone")
    shot(driver)


def test_the_map_shows_the_places_the_device_knows(driver: Any, shot: Any) -> None:
    insights = go(driver, "insights")
    places = {p["label"]: p for p in driver.app.session.sdk.places() if p["label"] != "other"}
    labels = [w.text for w in insights.ids.map.children if isinstance(w, Label)]
    for label in ("home", "work"):
        glyph_free = labels_without_glyph(labels)
        assert f"{label.capitalize()} · {places[label]['visit_count']} visits" in glyph_free
    assert any(t.endswith(" km") or t.endswith(" m") for t in labels)  # the scale bar
    assert "Home: " in insights.places_text and "Work: " in insights.places_text
    scroll_to(insights, insights.ids.map.parent)
    shot(driver)


def labels_without_glyph(labels: list[str]) -> list[str]:
    return [t.split("[/font] ", 1)[-1] for t in labels]


def test_this_weeks_features_are_all_shown(driver: Any, shot: Any) -> None:
    insights = go(driver, "insights")
    values = driver.app.session.sdk.features()
    rows = list(reversed(insights.ids.features.children))
    assert [r.key for r in rows] == [f.name for f in FEATURES]
    assert [r.value_text for r in rows] == [f"{values[f.name]:.2f}" for f in FEATURES]
    scroll_to(insights, insights.ids.features.parent)
    shot(driver)


def test_with_sync_off_nothing_was_sent(driver: Any, shot: Any) -> None:
    insights = go(driver, "insights")
    assert insights.upload == "" and insights.ids.upload.text == ""
    assert not insights.sync_on
    scroll_to(insights, insights.ids.upload)
    shot(driver)


def test_this_is_not_me_and_undo(driver: Any, shot: Any) -> None:
    insights = go(driver, "insights")
    driver.tap(insights.ids.not_me)
    rows = list(reversed(insights.ids.personas.children))
    struck = [r for r in rows if r.struck]
    assert [r.key for r in struck] == ["commuter"] and struck[0].value_text == "not me"
    assert rows[0].key != "commuter"
    assert driver.app.session.persona().rejected == ("commuter",)
    scroll_to(insights, insights.ids.personas)
    shot(driver)
    driver.tap(insights.ids.undo)
    assert driver.app.session.persona().id == "commuter"
