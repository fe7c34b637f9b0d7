"""Undoing randomized response: exact on expected reports (by property), close on reports drawn
by the SDK's own mechanism, and strict about arguments that make the channel singular."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.backend.ldp import debiased_label_counts, debiased_means
from edgepersona.sdk.privacy import keep_probability, randomized_response


def channel(keep_p: float, k: int) -> np.ndarray:
    """``M[i, j] = P(report j | true i)``, written out independently of the module."""
    matrix = np.full((k, k), (1 - keep_p) / (k - 1))
    np.fill_diagonal(matrix, keep_p)
    return matrix


@st.composite
def fleets(draw: st.DrawFn) -> tuple[np.ndarray, float]:
    k = draw(st.integers(2, 8))
    counts = np.array(draw(st.lists(st.integers(0, 10_000), min_size=k, max_size=k)))
    keep_p = draw(st.floats(1 / k + 0.01, 1.0))
    return counts, keep_p


@given(fleets())
def test_counts_invert_the_expected_reports(fleet: tuple[np.ndarray, float]) -> None:
    true_counts, keep_p = fleet
    expected_reports = true_counts @ channel(keep_p, len(true_counts))
    estimate = debiased_label_counts(expected_reports, keep_p)
    np.testing.assert_allclose(estimate, true_counts, atol=1e-6 * max(1, true_counts.sum()))
    assert math.isclose(estimate.sum(), true_counts.sum(), abs_tol=1e-6 * max(1, estimate.sum()))


@given(fleets(), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_means_invert_the_expected_sums(fleet: tuple[np.ndarray, float], d: int, seed: int) -> None:
    true_counts, keep_p = fleet
    true_counts = true_counts + 1  # every label held by someone: every mean is defined
    true_means = np.random.default_rng(seed).normal(0, 10, size=(len(true_counts), d))
    m = channel(keep_p, len(true_counts))
    reported_sums = m.T @ (true_means * true_counts[:, None])
    means = debiased_means(reported_sums, true_counts @ m, keep_p)
    np.testing.assert_allclose(means, true_means, rtol=1e-6, atol=1e-6)


def test_keeping_every_label_changes_nothing() -> None:
    counts = np.array([3.0, 0.0, 5.0])
    sums = np.array([[3.0, 6.0], [0.0, 0.0], [10.0, 5.0]])
    np.testing.assert_array_equal(debiased_label_counts(counts, 1.0), counts)
    means = debiased_means(sums, counts, 1.0)
    np.testing.assert_array_equal(means[[0, 2]], [[1.0, 2.0], [2.0, 1.0]])
    assert np.isnan(means[1]).all()  # nobody holds label 1: its mean is not estimable


def test_reports_drawn_by_the_sdk_mechanism_are_debiased() -> None:
    """20,000 devices through ``randomized_response`` itself: the estimates land within four
    standard errors of the truth, where the raw reported shares are far off."""
    rng = np.random.default_rng(5)
    labels = ["a", "b", "c", "d"]
    epsilon = 2.0
    keep_p = keep_probability(epsilon, len(labels))
    truth = rng.choice(len(labels), size=20_000, p=[0.55, 0.25, 0.15, 0.05])
    centres = np.array([[0.0, 1.0], [2.0, 0.0], [4.0, 4.0], [-3.0, 2.0]])
    vectors = centres[truth] + rng.laplace(0.0, 0.5, size=(len(truth), 2))
    reported = np.array(
        [labels.index(randomized_response(labels[t], labels, epsilon, rng)) for t in truth]
    )
    reported_counts = np.bincount(reported, minlength=len(labels))
    reported_sums = np.stack([vectors[reported == j].sum(axis=0) for j in range(len(labels))])

    true_counts = np.bincount(truth, minlength=len(labels))
    other = (1 - keep_p) / (len(labels) - 1)
    report_share = reported_counts / len(truth)
    standard_error = np.sqrt(len(truth) * report_share * (1 - report_share)) / (keep_p - other)
    estimate = debiased_label_counts(reported_counts, keep_p)
    assert np.all(np.abs(estimate - true_counts) < 4 * standard_error)
    assert np.abs(reported_counts - true_counts).max() > 10 * standard_error.max()

    true_means = np.stack([vectors[truth == j].mean(axis=0) for j in range(len(labels))])
    naive_means = reported_sums / reported_counts[:, None]
    means = debiased_means(reported_sums, reported_counts, keep_p)
    assert np.abs(means - true_means).max() < 0.5
    assert np.abs(naive_means - true_means).max() > 2.0


@pytest.mark.parametrize(
    ("counts", "keep_p", "message"),
    [
        ([5.0], 0.9, "k >= 2"),
        ([[1.0, 2.0]], 0.9, "k >= 2"),
        ([1.0, -1.0], 0.9, "0 or more"),
        ([1.0, float("nan")], 0.9, "finite"),
        ([1.0, 2.0], 0.5, "above 1/k"),  # keep 1/k: every label equally likely, nothing to invert
        ([1.0, 2.0, 3.0], 0.2, "above 1/k"),
        ([1.0, 2.0], 1.01, "at most 1"),
        ([1.0, 2.0], float("nan"), "above 1/k"),
    ],
)
def test_arguments_that_cannot_be_inverted_are_refused(
    counts: list[float], keep_p: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        debiased_label_counts(counts, keep_p)


def test_sums_must_have_one_finite_row_per_label() -> None:
    with pytest.raises(ValueError, match=r"one row per label, shape \(2, d\)"):
        debiased_means([[1.0, 2.0]], [1.0, 1.0], 0.9)
    with pytest.raises(ValueError, match="finite"):
        debiased_means([[1.0], [math.inf]], [1.0, 1.0], 0.9)
