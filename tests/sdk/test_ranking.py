"""Thompson-sampling offer ranking and the habit-shift detector."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk._ranking import HabitShift, Ranked, _mixed_prior, habit_shift, thompson_rank

OFFERS = ("coffee", "lunch", "cinema")


def rank(
    priors: Any, persona_probs: Any, seed: int = 0, offers: Any = OFFERS, **options: Any
) -> Ranked:
    return thompson_rank(offers, priors, persona_probs, np.random.default_rng(seed), **options)


def test_a_seeded_generator_gives_the_same_ranking() -> None:
    priors = {"commuter": {"coffee": (3.0, 5.0), "lunch": (2.0, 2.0)}}
    first = rank(priors, {"commuter": 0.6, "homebody": 0.4}, seed=7)
    assert first == rank(priors, {"commuter": 0.6, "homebody": 0.4}, seed=7)
    outcomes = {rank(priors, {"commuter": 1.0}, seed=seed).order for seed in range(30)}
    assert len(outcomes) > 1  # and different seeds do explore


def test_a_much_better_offer_is_ranked_first_with_propensity_near_one() -> None:
    priors = {"commuter": {"coffee": (10.0, 90.0), "lunch": (90.0, 10.0), "cinema": (10.0, 90.0)}}
    results = [rank(priors, {"commuter": 1.0}, seed=seed) for seed in range(100)]
    assert sum(result.order[0] == "lunch" for result in results) >= 99
    assert min(result.propensity for result in results if result.order[0] == "lunch") > 0.97


@pytest.mark.parametrize("prior", [(1.0, 1.0), (30.0, 70.0)])
def test_equal_priors_give_uniform_top_offers_and_propensities(prior: tuple[float, float]) -> None:
    priors = {"commuter": dict.fromkeys(OFFERS, prior)}
    results = [rank(priors, {"commuter": 1.0}, seed=seed) for seed in range(600)]
    tops = [result.order[0] for result in results]
    for offer in OFFERS:  # 200 expected each; 5 standard deviations is about +-58
        assert 140 < tops.count(offer) < 260
    mean_propensity = np.mean([result.propensity for result in results])
    assert abs(mean_propensity - 1 / 3) < 0.01  # each estimate has sd ~0.03 over 256 draws


def test_persona_mixing_moves_the_ranking() -> None:
    priors = {
        "commuter": {"coffee": (80.0, 20.0), "cinema": (20.0, 80.0)},
        "homebody": {"coffee": (20.0, 80.0), "cinema": (80.0, 20.0)},
    }

    def share_coffee_first(probs: dict[str, float]) -> float:
        results = [rank(priors, probs, seed, offers=("coffee", "cinema")) for seed in range(200)]
        return sum(result.order[0] == "coffee" for result in results) / len(results)

    assert share_coffee_first({"commuter": 0.9, "homebody": 0.1}) > 0.8
    assert share_coffee_first({"commuter": 0.1, "homebody": 0.9}) < 0.2
    assert 0.3 < share_coffee_first({"commuter": 0.5, "homebody": 0.5}) < 0.7


def test_probabilities_are_normalised_and_zero_weights_ignored() -> None:
    priors = {"a": {"coffee": (5.0, 1.0)}, "b": {"lunch": (5.0, 1.0)}, "c": {"coffee": (-1.0, 1.0)}}
    assert rank(priors, {"a": 2.0, "b": 2.0, "c": 0.0}) == rank(priors, {"a": 0.5, "b": 0.5})


def test_missing_priors_and_personas_fall_back_to_the_default_prior() -> None:
    flat = rank({}, {"commuter": 1.0}, seed=3, default_prior=(2.0, 5.0))
    assert flat == rank({"commuter": {}}, {"other": 1.0}, seed=3, default_prior=(2.0, 5.0))
    assert flat == rank({"x": {"coffee": (9.0, 1.0)}}, {}, seed=3, default_prior=(2.0, 5.0))
    assert flat == rank({}, {"commuter": 0.0}, seed=3, default_prior=(2.0, 5.0))


def test_moment_matching_keeps_one_persona_exact_and_widens_on_disagreement() -> None:
    default = (1.0, 1.0)
    alpha, beta = _mixed_prior(["o"], {"p": {"o": (3.0, 7.0)}}, {"p": 1.0}, default)
    assert alpha[0] == pytest.approx(3.0) and beta[0] == pytest.approx(7.0)

    agree = {"p": {"o": (30.0, 70.0)}, "q": {"o": (30.0, 70.0)}}
    disagree = {"p": {"o": (5.0, 95.0)}, "q": {"o": (55.0, 45.0)}}
    for priors in (agree, disagree):
        alpha, beta = _mixed_prior(["o"], priors, {"p": 0.5, "q": 0.5}, default)
        assert alpha[0] / (alpha[0] + beta[0]) == pytest.approx(0.3)
        concentration = alpha[0] + beta[0]
        assert concentration == pytest.approx(100.0) if priors is agree else concentration < 10

    # A data-rich persona does not drown a data-poor one with the same weight.
    lopsided = {"p": {"o": (1000.0, 9000.0)}, "q": {"o": (5.0, 5.0)}}
    alpha, beta = _mixed_prior(["o"], lopsided, {"p": 0.5, "q": 0.5}, default)
    assert alpha[0] / (alpha[0] + beta[0]) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "prior",
    [(1e-300, 1e-300), (1e-300, 1e300), (1e300, 1e-300), (1e300, 1e300), (1e308, 1e308)],
)
def test_extreme_priors_still_rank(prior: tuple[float, float]) -> None:
    priors = {"a": {"coffee": prior}, "b": {"coffee": (1e308, 1e-300)}}
    result = rank(priors, {"a": 1e308, "b": 1e-300})
    assert sorted(result.order) == sorted(OFFERS)
    assert all(0.0 <= score <= 1.0 for score in result.scores.values())
    assert 0.0 < result.propensity <= 1.0


def test_no_offers_rank_to_nothing() -> None:
    assert rank({}, {"a": 1.0}, offers=()) == Ranked((), {}, 1.0)


@pytest.mark.parametrize(
    ("priors", "probs", "options", "message"),
    [
        ({"a": {"coffee": (0.0, 1.0)}}, {"a": 1.0}, {}, r"priors\['a'\]\['coffee'\] must be an"),
        ({"a": {"lunch": (1.0, -2.0)}}, {"a": 1.0}, {}, r"\['lunch'\] .* got \(1.0, -2.0\)"),
        ({"a": {"coffee": (math.nan, 1.0)}}, {"a": 1.0}, {}, r"finite numbers above 0, got \(nan"),
        ({"a": {"coffee": (1.0, math.inf)}}, {"a": 1.0}, {}, r"finite numbers above 0"),
        ({"a": {"coffee": ("1", 1.0)}}, {"a": 1.0}, {}, r"got \('1', 1.0\)"),
        ({"a": {"coffee": (True, 1.0)}}, {"a": 1.0}, {}, r"got \(True, 1.0\)"),
        ({"a": {"coffee": (1.0, 2.0, 3.0)}}, {"a": 1.0}, {}, r"must be an \(alpha, beta\) pair"),
        ({"a": {"coffee": 2.0}}, {"a": 1.0}, {}, r"must be an \(alpha, beta\) pair.*got 2.0"),
        ({}, {"a": -0.1}, {}, r"persona_probs\['a'\] must be a finite number, 0 or more"),
        ({}, {"a": math.nan}, {}, r"persona_probs\['a'\] must be a finite number"),
        ({}, {"a": None}, {}, r"persona_probs\['a'\] must be .* got None"),
        ({}, {}, {"default_prior": (1.0, 0.0)}, r"default_prior must be an \(alpha, beta\) pair"),
        ({}, {}, {"draws": 0}, r"draws must be at least 1"),
        ({}, {}, {"offers": ("a", "b", "a")}, r"offer ids must be unique"),
    ],
)
def test_invalid_inputs_are_refused_clearly(
    priors: Any, probs: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rank(priors, probs, **options)


PRIOR = st.tuples(st.floats(1e-3, 1e4, allow_nan=False), st.floats(1e-3, 1e4, allow_nan=False))
PERSONAS = ["a", "b", "c"]


@given(
    offers=st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=8),
    priors=st.dictionaries(
        st.sampled_from(PERSONAS), st.dictionaries(st.text(min_size=1, max_size=5), PRIOR)
    ),
    probs=st.dictionaries(st.sampled_from(PERSONAS), st.floats(0, 1)),
    seed=st.integers(0, 2**32),
    draws=st.integers(1, 300),
)
def test_ranking_properties(
    offers: list[str], priors: Any, probs: dict[str, float], seed: int, draws: int
) -> None:
    for persona in priors:  # let the generated priors cover some of the offers
        priors[persona].update({offer: (2.0, 3.0) for offer in offers[: len(offers) // 2]})
    result = rank(priors, probs, seed, offers=offers, draws=draws)
    assert sorted(result.order) == sorted(offers)
    assert set(result.scores) == set(offers)
    assert all(0.0 <= score <= 1.0 for score in result.scores.values())
    scores = [result.scores[offer] for offer in result.order]
    assert scores == sorted(scores, reverse=True)
    assert 1 / draws <= result.propensity <= 1.0


# --- habit shift -----------------------------------------------------------------------

NAMES = ["commute_share", "gym_evenings", "night_screen", "weekend_share"]
WEEK = [0.4, 0.2, 0.1, 0.3]


def test_identical_weeks_are_not_a_shift() -> None:
    assert habit_shift(WEEK, [WEEK] * 4, NAMES) == HabitShift(0.0, False, ())


def test_a_large_change_in_one_feature_is_a_shift_led_by_that_feature() -> None:
    baseline = [[0.40, 0.20, 0.10, 0.30], [0.42, 0.22, 0.09, 0.31], [0.38, 0.21, 0.11, 0.29]]
    result = habit_shift([0.05, 0.21, 0.10, 0.30], baseline, NAMES)
    assert result.shifted
    assert result.top_changes[0][0] == "commute_share"
    assert result.top_changes[0][1] < -3
    assert result.score == pytest.approx(abs(result.top_changes[0][1]))
    assert len(result.top_changes) <= 3


def test_too_few_weeks_are_not_compared() -> None:
    assert habit_shift([0.9, 0.9, 0.9, 0.9], [WEEK], NAMES) == HabitShift(0.0, False, ())
    assert habit_shift([0.9, 0.9, 0.9, 0.9], [], NAMES) == HabitShift(0.0, False, ())
    assert habit_shift([0.9, 0.9, 0.9, 0.9], [WEEK], NAMES, min_weeks=1).shifted


def test_min_std_keeps_a_never_varying_habit_from_exploding() -> None:
    result = habit_shift([0.41, 0.2, 0.1, 0.3], [WEEK] * 5, NAMES)
    assert result.score == pytest.approx(0.5)
    assert not result.shifted
    assert result.top_changes == (("commute_share", pytest.approx(0.5)),)


@pytest.mark.parametrize(
    ("current", "baseline", "options", "message"),
    [
        ([0.1, 0.2], [WEEK, WEEK], {}, "current has 2 values but there are 4 names"),
        (WEEK, [WEEK, [0.1, 0.2]], {}, "equal-length rows"),
        (WEEK, [WEEK, [0.1, 0.2, 0.3]], {}, "equal-length rows"),
        (WEEK, [[*WEEK, 0.0]] * 2, {}, "every baseline week needs 4 values"),
        ([math.nan, 0.2, 0.1, 0.3], [WEEK, WEEK], {}, "current holds a NaN"),
        (WEEK, [WEEK, [math.inf, 0.2, 0.1, 0.3]], {}, "baseline holds a NaN or infinite"),
        (WEEK, [WEEK, ["x", 0.2, 0.1, 0.3]], {}, "baseline must hold numbers"),
        (WEEK, [WEEK, WEEK], {"min_std": 0.0}, "min_std must be above 0"),
        (WEEK, [WEEK, WEEK], {"min_weeks": 0}, "min_weeks at least 1"),
    ],
)
def test_habit_shift_refuses_bad_input(
    current: Any, baseline: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        habit_shift(current, baseline, NAMES, **options)


FEATURE = st.floats(0.0, 1.0)


@given(
    current=st.lists(FEATURE, min_size=4, max_size=4),
    baseline=st.lists(st.lists(FEATURE, min_size=4, max_size=4), max_size=8),
    threshold=st.floats(0.5, 10.0),
)
def test_habit_shift_properties(
    current: list[float], baseline: list[list[float]], threshold: float
) -> None:
    result = habit_shift(current, baseline, NAMES, threshold=threshold)
    assert result.shifted == (len(baseline) >= 2 and result.score >= threshold)
    assert len(result.top_changes) <= 3
    sizes = [abs(z) for _, z in result.top_changes]
    assert sizes == sorted(sizes, reverse=True)
    assert result.score == (sizes[0] if sizes else 0.0)
    unchanged = habit_shift(current, [current] * len(baseline), NAMES)
    assert unchanged.score == pytest.approx(0.0, abs=1e-9)
    assert not unchanged.shifted
