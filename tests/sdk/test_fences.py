"""Fences fire once per entry into their condition; bad conditions are refused up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgepersona.sdk import ConditionError, EdgePersona, ManualClock, ModelError, Moment

WORK = (48.8917, 2.2375)
HOME = (48.8566, 2.3522)


def stay(sdk: EdgePersona, clock: ManualClock, point: tuple[float, float], minutes: int) -> None:
    for _ in range(minutes // 5):
        sdk.record_location(*point, 10.0, ts=clock.time())
        clock.advance(300)
    sdk.flush()


def test_a_fence_fires_once_per_entry(sdk: EdgePersona, clock: ManualClock) -> None:
    sdk.correct_place("work", *WORK)
    entered: list[Moment] = []
    sdk.on("moment.place == 'work'", entered.append)
    stay(sdk, clock, WORK, 60)
    stay(sdk, clock, WORK, 30)
    assert len(entered) == 1
    assert entered[0].place == "work"
    stay(sdk, clock, HOME, 60)
    stay(sdk, clock, WORK, 60)
    assert len(entered) == 2


def test_a_cancelled_fence_is_silent_and_a_failing_one_is_contained(
    sdk: EdgePersona, clock: ManualClock
) -> None:
    sdk.correct_place("work", *WORK)
    calls: list[Moment] = []

    def broken(_: Moment) -> None:
        raise RuntimeError("app bug")

    sdk.on("moment.place == 'work'", broken)
    fence = sdk.on("moment.place == 'work'", calls.append)
    fence.cancel()
    stay(sdk, clock, WORK, 60)  # the broken callback must not break tracking
    assert calls == []
    assert sdk.context().place == "work"


def test_conditions_are_checked_when_registered(sdk: EdgePersona) -> None:
    with pytest.raises(ConditionError, match=r"moment\.place"):
        sdk.on("moment.plaec == 'work'", print)
    with pytest.raises(ConditionError):
        sdk.on("moment.place ==", print)
    with pytest.raises(TypeError):
        sdk.on("moment.moving", "not callable")  # type: ignore[arg-type]


def test_a_bad_bundle_leaves_the_last_good_one_in_use(sdk: EdgePersona, tmp_path: Path) -> None:
    before = sdk.decide("home", ["flash_sale"])
    bad = tmp_path / "bundle"
    shutil.copytree(Path(__file__).resolve().parents[2] / "sdk" / "default_bundle", bad)
    (bad / "playbook.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"playbook\.json"):
        sdk.use_bundle(bad)
    after = sdk.decide("home", ["flash_sale"])
    assert after.personalized and after.model_version == before.model_version
