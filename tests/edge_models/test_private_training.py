"""Retraining from private uploads: the estimates are unbiased, the model moves only as far as
the data can tell, and persona ids survive."""

from __future__ import annotations

import numpy as np
import pytest

from edgepersona.edge_models.private_training import (
    PrivateSums,
    estimate_personas,
    retrain_private,
    synthetic_vectors,
)
from edgepersona.edge_models.training import Persona
from edgepersona.sdk._bundle import default_bundle
from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import PERSONA_SHARE, noised_features, randomized_response

LOW = np.array([f.low for f in FEATURES])
RANGE = np.array([f.high - f.low for f in FEATURES])


def shipped_personas() -> list[Persona]:
    manifest = default_bundle().manifest
    return [
        Persona(p["id"], p["name"], tuple(p["traits"]), tuple(p["centroid"]))
        for p in manifest["personas"]
    ]


def uploads(
    centroids: np.ndarray, ids: list[str], n_each: int, epsilon: float, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
    """Noised uploads of devices spread around ``centroids``, with their private labels."""
    rng = np.random.default_rng(seed)
    spreads = np.full((len(ids), len(FEATURES)), 0.05) * RANGE
    truth = synthetic_vectors(centroids, spreads, n_each, rng)
    true_ids = np.repeat(ids, n_each)
    noised = np.array([noised_features(x, epsilon, rng) for x in truth])
    labels: list[str | None] = [
        randomized_response(t, ids, PERSONA_SHARE * epsilon, rng) for t in true_ids
    ]
    return noised, np.full(len(noised), epsilon), labels, truth


def test_with_many_uploads_the_estimate_finds_a_planted_move() -> None:
    previous = shipped_personas()[:2]
    ids = [p.id for p in previous]
    prior = np.array([p.centroid for p in previous])
    moved = prior.copy()
    moved[0, 0] = min(prior[0, 0] + 0.3, 1.0)  # persona 0 now uses apps more at night
    features, eps, labels, truth = uploads(moved, ids, 20_000, 10.0, seed=1)
    estimates = estimate_personas(features, eps, labels, previous, drift_scale=1.0)
    first = estimates[0]
    assert first.estimate is not None and first.standard_error is not None
    true_mean = truth[:20_000].mean(axis=0)
    assert abs(first.estimate[0] - true_mean[0]) < 4 * first.standard_error
    assert first.weight > 0.9 and first.centroid[0] > prior[0, 0] + 0.2
    assert [e.share for e in estimates] == pytest.approx([0.5, 0.5], abs=0.03)


def test_with_few_noisy_uploads_the_model_stays_where_it_was() -> None:
    previous = shipped_personas()
    ids = [p.id for p in previous]
    prior = np.array([p.centroid for p in previous])
    far = np.clip(prior + 0.4 * RANGE, LOW, LOW + RANGE)
    features, eps, labels, _ = uploads(far, ids, 60, 1.0, seed=2)
    estimates = estimate_personas(features, eps, labels, previous)
    for estimate, persona in zip(estimates, previous, strict=True):
        assert estimate.weight < 0.01
        assert np.allclose(estimate.centroid, persona.centroid, atol=0.01 * RANGE.max())


def test_uploads_without_a_label_are_left_out() -> None:
    previous = shipped_personas()
    features = np.zeros((10, len(FEATURES)))
    estimates = estimate_personas(features, np.ones(10), [None] * 10, previous)
    assert all(e.weight == 0 and e.estimate is None for e in estimates)


def test_retraining_keeps_persona_ids_and_a_model_that_separates_them() -> None:
    previous = shipped_personas()
    ids = [p.id for p in previous]
    prior = np.array([p.centroid for p in previous])
    features, eps, labels, _ = uploads(prior, ids, 50, 1.0, seed=3)
    spreads = {pid: 0.05 * RANGE for pid in ids}
    estimates = estimate_personas(features, eps, labels, previous)
    trained, synthetic = retrain_private(estimates, previous, spreads)
    assert sorted(p.id for p in trained.personas) == sorted(ids)
    assert trained.agreement > 0.9
    # the new model puts each persona's own centroid in that persona
    predicted = trained.pipeline.predict(prior)
    assert [trained.personas[i].id for i in predicted] == ids
    assert len(synthetic) == 400 * len(ids) and len(estimates) == len(ids)


def test_sums_added_in_chunks_give_the_same_estimates_as_all_at_once() -> None:
    previous = shipped_personas()
    ids = [p.id for p in previous]
    features, eps, labels, _ = uploads(np.array([p.centroid for p in previous]), ids, 30, 2.0, 4)
    chunked = PrivateSums(ids)
    for start in range(0, len(features), 7):
        chunked.add(features[start : start + 7], eps[start : start + 7], labels[start : start + 7])
    for a, b in zip(
        chunked.estimates(previous), estimate_personas(features, eps, labels, previous), strict=True
    ):
        assert a.persona_id == b.persona_id and a.weight == pytest.approx(b.weight)
        np.testing.assert_allclose(a.centroid, b.centroid, rtol=1e-9, atol=1e-9)
    assert chunked.labelled == len(features)
