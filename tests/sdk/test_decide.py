"""decide(), persona(), feedback() and corrections through the public API, on real history."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from edgepersona.edge_models.personas import PERSONAS
from edgepersona.edge_models.population import population, write_trace
from edgepersona.sdk import EdgePersona, InvalidSignalError, ManualClock, replay

from ..conftest import T0

OFFERS = ["coffee_to_go", "lunch_deal", "streaming_trial", "game_bundle", "flash_sale"]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """One replayed device per persona, from a seed the default bundle never saw."""
    devices = {}
    for device in population(40, seed=424242):
        if device.persona_id in devices:
            continue
        folder = tmp_path_factory.mktemp(device.persona_id)
        write_trace(device, folder / "trace.csv", start=date(2026, 1, 5), weeks=2)
        report = replay(folder / "trace.csv", folder / "device", tz=device.tz)
        devices[device.persona_id] = (folder / "device", report.end)
    return devices


def open_device(held_out: dict, persona: str, seed: int = 1) -> EdgePersona:
    folder, end = held_out[persona]
    return EdgePersona.open(folder, "app", clock=ManualClock(end), seed=seed)


def test_personas_of_held_out_devices_are_recognised(held_out: dict) -> None:
    found = {}
    for persona in held_out:
        with open_device(held_out, persona) as sdk:
            estimate = sdk.persona()
            assert estimate is not None
            assert abs(sum(estimate.probabilities.values()) - 1) < 1e-6
            found[persona] = estimate.id
    assert sum(found[p] == p for p in found) >= len(PERSONAS) - 1, found


def test_without_personalization_consent_the_default_is_returned(fresh_sdk: EdgePersona) -> None:
    decision = fresh_sdk.decide("home", OFFERS)
    assert decision.personalized is False
    assert decision.offers == tuple(OFFERS)
    assert decision.variant == "standard"
    assert "personalization is off" in decision.reasons[0]
    assert decision.persona is None


def test_a_personalized_decision_explains_itself(held_out: dict) -> None:
    with open_device(held_out, "night_owl_gamer") as sdk:
        decision = sdk.decide("home", OFFERS)
        assert decision.personalized is True
        assert decision.persona == sdk.persona().id
        assert decision.model_version == 1
        assert set(decision.offers) <= set(OFFERS)
        assert 0 < decision.propensity <= 1
        assert decision.reasons[0].startswith("You look most like")
        assert any(r.startswith("Layout") for r in decision.reasons)
        logged = sdk.export()["decisions"][-1]
        assert logged["decision_id"] == decision.id
        assert logged["shown"] == decision.offers[0]
        assert logged["propensity"] == decision.propensity


def test_ineligible_offers_are_left_out_with_a_reason(held_out: dict) -> None:
    with open_device(held_out, "commuter") as sdk:
        decision = sdk.decide("home", OFFERS)
        hour = decision.moment.time_of_day
        if hour != "midday":
            assert "lunch_deal" not in decision.offers
            assert any("lunch_deal" in r for r in decision.reasons)


def test_same_seed_and_store_same_decisions(held_out: dict, tmp_path: Path) -> None:
    folder, end = held_out["deal_hunter"]
    orders = []
    for copy in ("a", "b"):
        shutil.copytree(folder, tmp_path / copy)
        with EdgePersona.open(tmp_path / copy, "app", clock=ManualClock(end), seed=7) as sdk:
            orders.append([sdk.decide("home", OFFERS).offers for _ in range(20)])
    assert orders[0] == orders[1]
    assert len(set(orders[0])) > 1  # the rankings are drawn, so the seed is what fixes them


def test_feedback_is_recorded_for_sync_and_features(held_out: dict) -> None:
    with open_device(held_out, "deal_hunter") as sdk:
        decision = sdk.decide("home", OFFERS)
        assert sdk.feedback(decision, decision.offers[0], "accepted") is True
        with pytest.raises(InvalidSignalError, match="outcome"):
            sdk.feedback(decision, decision.offers[0], "loved")
        with pytest.raises(InvalidSignalError, match="offer_id"):
            sdk.feedback(decision, "not_offered", "accepted")
        exported = sdk.export()
        assert exported["feedback"][-1]["outcome"] == "accepted"
        names = [e["name"] for e in exported["signals"]["event"][-2:]]
        assert names == ["offer_shown", "offer_accepted"]


def test_this_persona_is_not_me(held_out: dict) -> None:
    folder, end = held_out["homebody_streamer"]
    with open_device(held_out, "homebody_streamer") as sdk:
        first = sdk.persona()
        sdk.reject_persona(first.id)
        second = sdk.persona()
        assert second.id != first.id
        assert second.probabilities[first.id] == 0
        assert sdk.decide("home", OFFERS).persona == second.id
        with pytest.raises(InvalidSignalError, match="accepted"):
            sdk.reject_persona("martian")
    with EdgePersona.open(folder, "app", clock=ManualClock(end)) as sdk:  # kept in the store
        assert sdk.persona().id == second.id
        assert [c["kind"] for c in sdk.export()["corrections"]] == ["not_me"]
        sdk.reject_persona(None)
        assert sdk.persona().id == first.id


def test_setting_work_changes_the_moment_and_the_layout(data_dir: Path, clock: ManualClock) -> None:
    with EdgePersona.open(data_dir, "app", clock=clock, tz="UTC", seed=3) as sdk:
        sdk.consent.grant("personalization")
        sdk.consent.grant("location")
        sdk.correct_place("work", 48.8917, 2.2375)
        for _ in range(12):  # an hour at that spot, a fix every 5 minutes
            sdk.record_location(48.8917, 2.2375, 10.0, ts=clock.time())
            clock.advance(300)
        sdk.flush()
        moment = sdk.context()
        assert (moment.place, moment.moving) == ("work", False)
        assert moment.dwell_s >= 3000
        assert sdk.decide("home", OFFERS).variant == "work_focus"
        assert [p["label"] for p in sdk.places()] == ["work"]


def test_bad_decide_arguments(sdk: EdgePersona) -> None:
    with pytest.raises(InvalidSignalError, match="surface"):
        sdk.decide("", OFFERS)
    with pytest.raises(InvalidSignalError, match="offers"):
        sdk.decide("home", "coffee")  # type: ignore[arg-type]
    with pytest.raises(InvalidSignalError, match="offers"):
        sdk.decide("home", [f"o{i}" for i in range(101)])
    assert sdk.decide("home", []).offers == ()
    assert T0 > 0


def test_a_habit_shift_switches_to_exploration(data_dir: Path) -> None:
    clock = ManualClock(T0)
    with EdgePersona.open(data_dir, "app", clock=clock, tz="UTC", seed=5) as sdk:
        sdk.consent.grant("personalization")
        for day in range(28):
            morning = T0 + day * 86400  # 08:00 UTC
            if day < 21:  # three weeks of morning news...
                sdk.track_app("com.bbc.news", ts=morning, duration_s=1800)
            else:  # ...then a week of late-night games
                sdk.track_app(
                    "com.supercell.clashofclans", ts=morning + 15 * 3600, duration_s=3 * 3600
                )
            clock.set(morning + 20 * 3600)
        sdk.flush()
        decision = sdk.decide("home", ["flash_sale", "game_bundle"])
    exploring = [r for r in decision.reasons if r.startswith("Exploring")]
    assert exploring, decision.reasons
    assert "app_" in exploring[0] or "tod_" in exploring[0]
