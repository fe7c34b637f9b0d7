"""What the screens show, from the SDK's answers: pure functions, no window."""

from __future__ import annotations

from typing import Any

import pytest

from edgepersona.demo_app import catalog, views
from edgepersona.sdk import Decision, Moment, PersonaEstimate
from edgepersona.sdk.features import FEATURES


def moment(**changes: Any) -> Moment:
    values: dict[str, Any] = {
        "ts": 0.0,
        "local_time": "2026-03-17T08:05:00+01:00",
        "hour": 8,
        "time_of_day": "morning",
        "weekday": 1,
        "is_weekend": False,
        "place": "moving",
        "place_id": None,
        "dwell_s": None,
        "moving": True,
        "recent_app_category": None,
    }
    return Moment(**{**values, **changes})


def decision(**changes: Any) -> Decision:
    values: dict[str, Any] = {
        "id": "d1",
        "surface": "home",
        "personalized": True,
        "persona": "commuter",
        "probabilities": {"commuter": 0.9, "deal_hunter": 0.1},
        "variant": "commute",
        "layout": {"cards": ["traffic", "offers", "brand_new_card"], "shortcuts": ["maps"]},
        "offers": ("transit_pass", "flash_sale", "coffee_to_go"),
        "reasons": (
            "You look most like 'Commuting professional' (90%)",
            "It is morning on a weekday and you are on the move",
            "Layout 'commute': you are on the move on a weekday",
            "Not offering 'lunch_deal' now: only when it is lunchtime",
            "Offers ranked by sampling; 'transit_pass' came first with probability 0.80",
        ),
        "model_version": 1,
        "propensity": 0.8,
        "moment": moment(),
    }
    return Decision(**{**values, **changes})


def test_home_view_follows_the_layout_and_keeps_unknown_cards() -> None:
    view = views.home_view(decision())
    assert [c.id for c in view.cards] == ["traffic", "offers", "brand_new_card"]
    assert view.cards[2].title == "Brand new card"  # a newer bundle's card still shows
    assert [s.label for s in view.shortcuts] == ["Maps"]
    assert [o.id for o in view.top_offers] == ["transit_pass", "flash_sale"]
    assert view.theme == "light" and view.greeting == "Good morning"
    assert view.reasons == (
        "You look most like 'Commuting professional' (90%)",
        "It is morning on a weekday and you are on the move",
        "Commute layout: you are on the move on a weekday",
    )


def test_home_view_without_personalization_says_all_and_uses_default_cards() -> None:
    plain = decision(personalized=False, layout={"theme": "dark"}, reasons=("Not personalised",))
    view = views.home_view(plain)
    assert [c.id for c in view.cards] == ["for_you", "offers"]
    assert view.theme == "dark" and view.reasons == ("Not personalised",)


def test_offer_ids_become_titles_in_reasons() -> None:
    assert views.hidden_offers(decision()) == (
        "Not offering Lunch deal now: only when it is lunchtime",
    )
    assert views.readable("'unknown_offer' and 'flash_sale'") == "'unknown_offer' and Flash sale"


def test_offer_items_are_ranked_in_decision_order() -> None:
    items = views.offer_items(decision())
    assert [(i.offer.id, i.rank) for i in items] == [
        ("transit_pass", 1),
        ("flash_sale", 2),
        ("coffee_to_go", 3),
    ]


@pytest.mark.parametrize(
    ("place", "moving", "text"),
    [
        ("moving", True, "Tue 17 Mar · 08:05 · on the move"),
        ("home", False, "Tue 17 Mar · 08:05 · at home"),
        ("unknown", False, "Tue 17 Mar · 08:05"),
    ],
)
def test_moment_text(place: str, moving: bool, text: str) -> None:
    assert views.moment_text("2026-03-17T08:05:00+01:00", place, moving) == text


def test_persona_bars_most_likely_first_with_rejections() -> None:
    estimate = PersonaEstimate(
        "deal_hunter",
        "Deal hunter",
        {"commuter": 0.0, "deal_hunter": 0.7, "new_one": 0.3},
        (),
        2,
        ("commuter",),
    )
    bars = views.persona_bars(estimate)
    assert [(b.id, b.name, b.rejected) for b in bars] == [
        ("deal_hunter", "Deal hunter", False),
        ("new_one", "New one", False),
        ("commuter", "Commuting professional", True),
    ]
    assert bars[0].colour == catalog.PERSONA_COLOURS["deal_hunter"]


def place(pid: int, label: str, lat: float, lon: float, visits: int) -> dict[str, Any]:
    return {"id": pid, "label": label, "lat": lat, "lon": lon, "visit_count": visits,
            "dwell_s": 3600.0 * visits}  # fmt: skip


def test_places_are_drawn_around_home_without_far_trips() -> None:
    places = [
        place(3, "other", 48.8600, 2.3500, 2),
        place(1, "home", 48.8500, 2.3500, 20),
        place(2, "work", 48.8590, 2.3500, 15),  # 1 km north of home
        place(4, "other", 49.2000, 2.3500, 1),  # a trip 39 km away
    ]
    shown = views.place_views(places)
    assert [(p.id, p.label) for p in shown] == [(1, "home"), (2, "work"), (3, "other")]
    assert shown[0].x_m == 0 and shown[0].y_m == 0
    assert shown[1].y_m == pytest.approx(1002, abs=1) and shown[1].x_m == pytest.approx(0)
    assert shown[1].hours == 15
    assert views.place_views([]) == ()


def test_feature_views_scale_each_value_to_its_range() -> None:
    values = {f.name: f.high for f in FEATURES}
    shown = views.feature_views(values)
    assert [f.name for f in shown] == [f.name for f in FEATURES]
    assert all(f.fraction == 1.0 for f in shown)


def test_audit_lines_newest_first() -> None:
    rows = [
        {"ts": 0.0, "purpose": "sync", "action": "revoke", "source": "consent screen"},
        {"ts": 60.0, "purpose": "sync", "action": "grant", "source": "privacy centre"},
    ]
    from datetime import timezone

    assert views.audit_lines(rows, timezone.utc) == (
        "01 Jan 00:01  sync allowed (privacy centre)",
        "01 Jan 00:00  sync turned off (consent screen)",
    )


def test_sync_and_model_texts_say_why_sync_is_off() -> None:
    status = {"pending": 1, "last_sync_at": None, "epsilon": {"spent": 0.5, "budget": 1.0}}
    assert "no server" in views.sync_text(status, True, "", None)
    assert "not allowed" in views.sync_text(status, False, "http://x", None)
    assert "Waiting to send: 1" in views.sync_text(status, True, "http://x", None)
    model = {"version": 3, "source": "downloaded", "shadow": None, "history": [
        {"version": 4, "event": "rejected", "reason": "signature does not verify", "at": 0.0},
        {"version": 3, "event": "adopted", "reason": None, "at": 0.0},
    ]}  # fmt: skip
    assert views.model_text(model) == "Model in use: v3, downloaded."
    from datetime import timezone

    assert views.model_history(model, timezone.utc).splitlines() == [
        "v4 rejected 01 Jan 00:00: signature does not verify",
        "v3 adopted 01 Jan 00:00",
    ]
