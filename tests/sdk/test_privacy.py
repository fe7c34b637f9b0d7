"""The local DP mechanism: the sensitivity argument holds, the noise has its documented scale,
randomized response keeps the label at its documented rate, and fleet means converge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import (
    FEATURE_SENSITIVITY,
    OUTCOME_CAP,
    clip_features,
    feature_band,
    feature_noise_scale,
    keep_probability,
    noised_features,
    noised_outcomes,
    outcome_noise_scale,
    randomized_response,
)

N = len(FEATURES)
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
vectors = st.lists(anything, min_size=N, max_size=N)


def test_schema_v1_sensitivity_is_three_share_groups_plus_ten_features() -> None:
    assert FEATURE_SENSITIVITY == 16.0


@given(vectors, vectors)
def test_any_two_clipped_vectors_differ_by_at_most_the_sensitivity(a: list, b: list) -> None:
    x, y = clip_features(a), clip_features(b)
    assert ((x >= 0) & (x <= 1)).all()
    assert np.abs(x - y).sum() <= FEATURE_SENSITIVITY + 1e-9


def test_clipping_renormalises_a_share_group_that_sums_over_one() -> None:
    values = [0.9] * N
    clipped = clip_features(values)
    tod = [i for i, f in enumerate(FEATURES) if f.name.startswith("tod_")]
    assert clipped[tod].sum() == pytest.approx(1.0)
    assert clipped[FEATURES.index(next(f for f in FEATURES if f.name == "weekend_share"))] == 0.9


def test_clip_refuses_a_vector_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="31 feature values"):
        clip_features([0.0] * (N - 1))


def test_feature_noise_has_the_documented_laplace_scale() -> None:
    rng = np.random.default_rng(1)
    epsilon = 2.0
    true = [f.low + 0.5 * (f.high - f.low) for f in FEATURES]
    draws = np.array([noised_features(true, epsilon, rng) for _ in range(4000)])
    ranges = np.array([f.high - f.low for f in FEATURES])
    scaled_noise = (draws - np.array(true)) / ranges
    # Laplace(b) has standard deviation sqrt(2) b
    expected = math.sqrt(2) * feature_noise_scale(epsilon)
    assert scaled_noise.std() == pytest.approx(expected, rel=0.05)
    assert abs(scaled_noise.mean()) < 0.1 * expected
    bands = feature_band(epsilon)
    assert all(low <= v <= high for row in draws for v, (low, high) in zip(row, bands, strict=True))


def test_fleet_mean_error_shrinks_as_the_fleet_grows() -> None:
    rng = np.random.default_rng(2)
    true = np.array([f.low + 0.3 * (f.high - f.low) for f in FEATURES])
    ranges = np.array([f.high - f.low for f in FEATURES])

    def error(n: int) -> float:
        uploads = np.array([noised_features(true, 1.0, rng) for _ in range(n)])
        return float(np.abs((uploads.mean(axis=0) - true) / ranges).mean())

    small, large = error(100), error(2500)
    assert large < small / 3  # ~1/sqrt(25) = 1/5 in expectation


def test_randomized_response_keeps_the_label_at_the_documented_rate() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d", "e"]
    reports = [randomized_response("c", labels, 1.0, rng) for _ in range(20000)]
    kept = reports.count("c") / len(reports)
    assert kept == pytest.approx(keep_probability(1.0, 5), abs=0.015)
    others = {label: reports.count(label) for label in labels if label != "c"}
    assert max(others.values()) - min(others.values()) < 0.03 * len(reports)


def test_randomized_response_refuses_an_unknown_label() -> None:
    with pytest.raises(ValueError, match="not one of"):
        randomized_response("x", ["a", "b"], 1.0, np.random.default_rng(0))


def test_outcomes_cover_every_offer_and_cap_the_contribution() -> None:
    rng = np.random.default_rng(4)
    offers = ["o1", "o2", "o3"]
    draws = [
        noised_outcomes({"o1": (50.0, 0.0), "unknown": (9.0, 9.0)}, offers, 1.0, rng)
        for _ in range(6000)
    ]
    assert all(list(d) == offers for d in draws)
    mean_o1_accepted = np.mean([d["o1"][0] for d in draws])
    mean_o2_accepted = np.mean([d["o2"][0] for d in draws])
    # 50 acceptances are scaled down to the cap; unknown offers are never sent
    standard_error = math.sqrt(2) * outcome_noise_scale(1.0) / math.sqrt(len(draws))
    assert mean_o1_accepted == pytest.approx(OUTCOME_CAP, abs=4 * standard_error)
    assert mean_o2_accepted == pytest.approx(0.0, abs=4 * standard_error)
