"""Playbooks: rules in order with fallbacks; a malformed playbook is refused whole."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgepersona.sdk import ModelError
from edgepersona.sdk._playbook import Playbook

REPO = Path(__file__).resolve().parents[2]
DEFAULT = json.loads((REPO / "edge_models" / "playbook_default.json").read_text())
PERSONAS = ["commuter", "homebody_streamer", "night_owl_gamer", "weekend_explorer", "deal_hunter"]


def context(**moment: object) -> dict:
    base = {
        "place": "unknown",
        "time_of_day": "midday",
        "is_weekend": False,
        "moving": False,
        "weekday": 2,
    }
    return {"moment": {**base, **moment}, "persona": {"id": "commuter", "p": {}}, "features": {}}


@pytest.fixture
def playbook() -> Playbook:
    return Playbook.from_dict(DEFAULT, PERSONAS)


def test_first_matching_rule_wins(playbook: Playbook) -> None:
    variant, layout, because = playbook.variant("home", context(moving=True, time_of_day="morning"))
    assert variant == "commute"
    assert layout["cards"][0] == "traffic"
    assert "on the move" in because
    assert playbook.variant("home", context(place="work"))[0] == "work_focus"


def test_fallbacks_default_then_catch_all_surface(playbook: Playbook) -> None:
    assert playbook.variant("home", context())[0] == "standard"
    assert playbook.variant("checkout", context(time_of_day="late"))[0] == "dark"
    assert playbook.variant("checkout", context())[0] == "standard"
    bare = Playbook.from_dict({"format": "edgepersona-playbook/1"}, [])
    assert bare.variant("home", context())[0] == "default"


def test_offer_eligibility(playbook: Playbook) -> None:
    assert playbook.eligible("lunch_deal", context(time_of_day="midday"))[0] is True
    assert playbook.eligible("lunch_deal", context(time_of_day="late"))[0] is False
    assert playbook.eligible("unknown_offer", context())[0] is True


def broken(path: str, value: object) -> dict:
    data = copy.deepcopy(DEFAULT)
    target = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(keys[-1])] = value
    else:
        target[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"format": "other"}, "format"),
        (broken("surfaces.home.rules.0.when", "moment.place =="), "condition"),
        (broken("surfaces.home.rules.0.when", "moment.plaice == 'home'"), "moment.place"),
        (broken("surfaces.home.rules.0.variant", "nonexistent"), "no layout"),
        (broken("priors.commuter.coffee_to_go", [0, 1]), "positive"),
        (broken("priors.commuter.coffee_to_go", "many"), "alpha, beta"),
        (broken("priors.alien", {}), "alien"),
        (broken("exploration.habit_shift_threshold", -1), "positive"),
        (broken("offers.lunch_deal.when", 3), "condition string"),
        (broken("surfaces.home", []), "object"),
    ],
)
def test_malformed_playbooks_are_refused_with_the_reason(data: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Playbook.from_dict(data, PERSONAS)
