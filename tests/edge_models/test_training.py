"""Training: personas recovered from a synthetic population, ids stable across retrains,
the distilled ONNX model identical on both on-device engines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepersona.edge_models.bundle import fleet_vectors, prototypes
from edgepersona.edge_models.personas import PERSONAS
from edgepersona.edge_models.population import population
from edgepersona.edge_models.training import (
    MAX_MODEL_BYTES,
    agreement_with_truth,
    export_onnx,
    train,
)
from edgepersona.sdk._inference import PersonaModel
from edgepersona.sdk.features import FEATURE_NAMES, SCHEMA_VERSION

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
