"""Training: personas recovered from a synthetic population, ids stable across retrains,
the distilled ONNX model identical on both on-device engines, and large inputs trained from
bounded samples that still recover the clusters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepersona.edge_models.bundle import fleet_vectors, prototypes
from edgepersona.edge_models.personas import PERSONAS
from edgepersona.edge_models.population import population
from edgepersona.edge_models.training import (
    MAX_MODEL_BYTES,
    Persona,
    Reservoir,
    agreement_with_truth,
    export_onnx,
    train,
)
from edgepersona.sdk._inference import PersonaModel
from edgepersona.sdk.features import FEATURE_NAMES, FEATURES, SCHEMA_VERSION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleets() -> tuple[tuple[np.ndarray, list[str]], tuple[np.ndarray, list[str]]]:
    first = population(100, seed=101)
    second = population(100, seed=202)
    return (
        (fleet_vectors(first, 2), [d.persona_id for d in first]),
        (fleet_vectors(second, 2), [d.persona_id for d in second]),
    )


def test_personas_are_recovered_from_the_population(fleets) -> None:
    (vectors, truth), _ = fleets
    trained = train(vectors, k=len(PERSONAS), previous=prototypes(vectors, truth), seed=1)
    ari = agreement_with_truth(trained.labels, truth)
    print(f"adjusted Rand index vs true personas: {ari:.3f}")
    assert ari >= 0.8
    assert trained.agreement >= 0.9
    ids = [trained.personas[label].id for label in trained.labels]
    assert np.mean([i == t for i, t in zip(ids, truth, strict=True)]) >= 0.9


def test_persona_ids_are_stable_across_two_retrains(fleets) -> None:
    (first, truth), (second, second_truth) = fleets
    one = train(first, k=5, previous=prototypes(first, truth), seed=1)
    two = train(second, k=5, previous=one.personas, seed=2)
    three = train(np.vstack([first, second]), k=5, previous=two.personas, seed=3)
    assert (
        {p.id for p in one.personas}
        == {p.id for p in two.personas}
        == {p.id for p in three.personas}
    )
    # Stable means each id still holds the same people, not just the same set of names.
    majority = {
        two.personas[label].id
        for label in set(two.labels)
        for members in [
            [t for t, lab in zip(second_truth, two.labels, strict=True) if lab == label]
        ]
        if max(set(members), key=members.count) == two.personas[label].id
    }
    assert len(majority) >= 4
    assert {p.id: p.name for p in one.personas} == {p.id: p.name for p in three.personas}


def test_without_a_previous_model_names_come_from_traits(fleets) -> None:
    (vectors, _), _ = fleets
    trained = train(vectors, k=5, seed=4)
    assert len({p.id for p in trained.personas}) == 5
    assert all(p.traits and p.name for p in trained.personas)


def test_export_runs_identically_on_both_engines(fleets) -> None:
    (vectors, truth), _ = fleets
    trained = train(vectors, k=5, previous=prototypes(vectors, truth), seed=1)
    model = export_onnx(trained, version=7)
    assert len(model) <= MAX_MODEL_BYTES
    ort = PersonaModel.from_bytes(model, engine="onnxruntime")
    numpy_engine = PersonaModel.from_bytes(model, engine="numpy")
    x = vectors.astype(np.float32)
    np.testing.assert_allclose(ort.predict_proba(x), numpy_engine.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(ort.predict_proba(x), trained.pipeline.predict_proba(x), atol=1e-4)
    assert ort.metadata["schema_version"] == str(SCHEMA_VERSION)
    assert json.loads(ort.metadata["features"]) == list(FEATURE_NAMES)
    assert [p["id"] for p in json.loads(ort.metadata["personas"])] == [
        p.id for p in trained.personas
    ]


def test_too_few_devices_or_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        train(np.zeros((10, len(FEATURE_NAMES))), k=5)
    with pytest.raises(ValueError, match="schema"):
        train(np.zeros((100, 3)), k=5)


def planted(sizes: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors around ``len(sizes)`` random centres (noise 3% of each feature's range), in a
    shuffled order; the centres and each vector's true cluster."""
    rng = np.random.default_rng(seed)
    low = np.array([f.low for f in FEATURES])
    width = np.array([f.high - f.low for f in FEATURES])
    centres = low + rng.random((len(sizes), len(FEATURES))) * width
    truth = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    vectors = centres[truth] + rng.normal(0.0, 0.03, (len(truth), len(FEATURES))) * width
    return vectors.astype(np.float32), centres, truth


def test_large_inputs_are_clustered_and_distilled_from_bounded_samples() -> None:
    sizes = (400, 600, 800, 1000, 1200)
    vectors, centres, truth = planted(sizes, seed=11)
    previous = tuple(
        Persona(f"p{i}", f"Persona {i}", (), tuple(map(float, c))) for i, c in enumerate(centres)
    )
    trained = train(
        vectors, k=5, previous=previous, seed=3, max_cluster_rows=500, max_distil_rows=800
    )
    assert (trained.clustered_rows, trained.distilled_rows) == (500, 600)
    # Every vector is labelled, not only the sample, and each planted cluster keeps its id.
    assert len(trained.labels) == len(vectors)
    ids = np.array([p.id for p in trained.personas])[trained.labels]
    np.testing.assert_array_equal(ids, [f"p{t}" for t in truth])
    assert trained.cluster_sizes == tuple(sizes[int(p.id[1:])] for p in trained.personas)
    np.testing.assert_array_equal(trained.assign(vectors), trained.labels)
    assert trained.agreement >= 0.99


def test_small_inputs_use_every_vector() -> None:
    vectors, _, truth = planted((40, 60, 80), seed=12)
    trained = train(vectors, k=3, seed=3, max_cluster_rows=180, max_distil_rows=180)
    assert (trained.clustered_rows, trained.distilled_rows) == (180, 180)
    assert agreement_with_truth(trained.labels, list(truth)) == 1.0
    np.testing.assert_array_equal(trained.assign(vectors), trained.labels)


def sampled(rows: np.ndarray, size: int, chunk: int, seed: int = 0) -> Reservoir:
    reservoir = Reservoir(size, rows.shape[1], seed)
    for start in range(0, len(rows), chunk):
        reservoir.add(rows[start : start + chunk])
    return reservoir


def test_the_reservoir_sample_does_not_depend_on_the_chunks() -> None:
    rows = np.arange(1000 * 3, dtype=np.float32).reshape(1000, 3)
    whole = sampled(rows, 100, chunk=1000)
    assert whole.seen == 1000 and len(whole.rows) == 100
    for chunk in (1, 7, 99, 100, 101, 333):
        np.testing.assert_array_equal(sampled(rows, 100, chunk).rows, whole.rows)
    first = whole.rows[:, 0]
    assert np.all(np.diff(first) > 0)  # in stream order, no row twice
    assert set(first) <= set(rows[:, 0])
    assert not np.array_equal(sampled(rows, 100, 1000, seed=1).rows, whole.rows)


def test_a_stream_within_the_size_is_the_sample() -> None:
    rows = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    np.testing.assert_array_equal(sampled(rows, 50, chunk=7).rows, rows)


def test_the_reservoir_sample_is_uniform() -> None:
    rows = np.arange(40, dtype=np.float32).reshape(40, 1)
    counts = np.zeros(40)
    runs = 2000
    for seed in range(runs):
        counts[sampled(rows, 10, chunk=15, seed=seed).rows[:, 0].astype(int)] += 1
    # Each row is kept with probability 10/40; 2000 runs put the frequency within +-0.05
    # of it with near certainty (5 standard deviations).
    np.testing.assert_allclose(counts / runs, 0.25, atol=0.05)
