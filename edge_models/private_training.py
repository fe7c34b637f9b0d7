"""Retraining from locally private uploads: estimate what the noise allows, keep the rest.

Each upload's feature vector carries Laplace noise of a scale around 27 feature ranges at
epsilon 1 (``edgepersona.sdk.privacy``), and its persona label went through randomized
response. Clustering such vectors directly finds nothing but noise (k-means on them happily
"agrees with itself" and would ship a model that assigns users at random), so retraining
takes the statistically honest route instead:

1. **Estimate each persona's centroid** from the uploads, unbiased despite both noises: a
   report ``r`` of k-ary randomized response with keep probability ``p`` gives the unbiased
   one-hot estimate ``y = (e_r - q) / (p - q)`` of the true label (``q = (1 - p)/(k - 1)``),
   and since the feature noise is independent of it, ``sum(y_i * x) / sum(y_i)`` estimates
   persona ``i``'s mean vector. Its variance follows from the known noise scales.
2. **Shrink towards the current model** by that variance (a normal prior of scale
   ``DRIFT_SCALE`` ranges on how far a centroid moves between retrains): with few devices the
   estimate is too noisy to move anything and the model stays as it is; with many it moves
   where the fleet went. The weights are in the evaluation report.
3. **Rebuild the model** with the same training as the first model (``training.train``:
   k-means, stable ids, MLP distillation, gates) on synthetic vectors drawn around the new
   centroids with each persona's spread, kept in the manifest from the first training (the
   within-persona spread cannot be estimated under this much noise at any fleet size a
   single server sees).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import (
    FEATURE_SENSITIVITY,
    FEATURE_SHARE,
    PERSONA_SHARE,
    clip_features,
)

from .training import Persona, Trained, train

__all__ = [
    "DEFAULT_SPREAD",
    "DRIFT_SCALE",
    "SYNTHETIC_PER_PERSONA",
    "PersonaEstimate",
    "PrivateSums",
    "estimate_personas",
    "retrain_private",
    "synthetic_vectors",
]

DRIFT_SCALE = 0.05  # prior scale of a centroid's move between retrains, in feature ranges
DEFAULT_SPREAD = 0.1  # within-persona spread (ranges) when a manifest does not give one
SYNTHETIC_PER_PERSONA = 400
_LOW = np.array([f.low for f in FEATURES])
_RANGE = np.array([f.high - f.low for f in FEATURES])


@dataclass(frozen=True)
class PersonaEstimate:
    """What the uploads say about one persona, and how much of it is kept."""

    persona_id: str
    estimate: tuple[float, ...] | None  # unbiased mean vector (feature units); None: no data
    standard_error: float | None  # of each scaled feature of the estimate, in ranges
    weight: float  # 0 keeps the previous centroid, 1 takes the estimate
    centroid: tuple[float, ...]  # the new centroid (feature units)
    share: float | None  # estimated share of uploads holding this persona

    def as_report(self) -> dict[str, float | str | None]:
        """The figures a retrain report keeps (not the vectors)."""
        return {
            "persona": self.persona_id,
            "estimated_share": None if self.share is None else round(self.share, 4),
            "standard_error": None
            if self.standard_error is None
            else round(self.standard_error, 4),
            "weight": round(self.weight, 6),
        }


class PrivateSums:
    """Streaming sufficient statistics of the uploads for ``estimate``: memory is fixed
    (personas x features), whatever the number of uploads added."""

    def __init__(self, persona_ids: Sequence[str]) -> None:
        self.persona_ids = tuple(persona_ids)
        k = len(self.persona_ids)
        self._index = {pid: i for i, pid in enumerate(self.persona_ids)}
        self.sums = np.zeros((k, len(FEATURES)))  # sum of y_i * scaled vector
        self.counts = np.zeros(k)  # sum of y_i: unbiased count of uploads per persona
        self.variance = np.zeros(k)  # sum of y_i^2 * noise variance
        self.labelled = 0

    def add(self, features: np.ndarray, epsilons: np.ndarray, labels: Sequence[str | None]) -> None:
        """Add uploads: noised vectors (n x schema), their epsilons and reported personas."""
        k = len(self.persona_ids)
        rows = [i for i, label in enumerate(labels) if label in self._index]
        if k < 2 or not rows:
            return
        x = (np.asarray(features, dtype=np.float64)[rows] - _LOW) / _RANGE
        eps = np.asarray(epsilons, dtype=np.float64)[rows]
        p = np.exp(PERSONA_SHARE * eps) / (np.exp(PERSONA_SHARE * eps) + k - 1)
        q = (1 - p) / (k - 1)
        reported = np.zeros((len(rows), k))
        reported[np.arange(len(rows)), [self._index[str(labels[i])] for i in rows]] = 1.0
        y = (reported - q[:, None]) / (p - q)[:, None]  # unbiased one-hot estimates
        noise_var = 2.0 * (FEATURE_SENSITIVITY / (FEATURE_SHARE * eps)) ** 2
        self.sums += y.T @ x
        self.counts += y.sum(axis=0)
        self.variance += (y**2 * noise_var[:, None]).sum(axis=0)
        self.labelled += len(rows)

    def estimates(
        self, previous: Sequence[Persona], drift_scale: float = DRIFT_SCALE
    ) -> tuple[PersonaEstimate, ...]:
        """Per previous persona: the debiased mean, shrunk towards its centroid."""
        total = max(self.counts.clip(min=0).sum(), 1e-12)
        found = []
        for persona in previous:
            i = self._index.get(persona.id)
            if i is None or self.counts[i] <= 1.0:
                share = None if i is None else max(self.counts[i], 0.0) / total
                found.append(_unchanged(persona, share))
                continue
            prior = (np.asarray(persona.centroid) - _LOW) / _RANGE
            mean = self.sums[i] / self.counts[i]
            variance = float(self.variance[i] / self.counts[i] ** 2)
            weight = drift_scale**2 / (drift_scale**2 + variance)
            moved = clip_features(_LOW + (prior + weight * (mean - prior)) * _RANGE)
            found.append(
                PersonaEstimate(
                    persona.id,
                    tuple(float(v) for v in _LOW + mean * _RANGE),
                    variance**0.5,
                    weight,
                    tuple(float(v) for v in _LOW + moved * _RANGE),
                    float(max(self.counts[i], 0.0) / total),
                )
            )
        return tuple(found)


def estimate_personas(
    features: np.ndarray,
    epsilons: np.ndarray,
    labels: Sequence[str | None],
    previous: Sequence[Persona],
    drift_scale: float = DRIFT_SCALE,
) -> tuple[PersonaEstimate, ...]:
    """``PrivateSums`` over these uploads, then its estimates (for uploads held in memory)."""
    sums = PrivateSums([p.id for p in previous])
    sums.add(features, epsilons, labels)
    return sums.estimates(previous, drift_scale)


def synthetic_vectors(
    centroids: np.ndarray, spreads: np.ndarray, per_persona: int, rng: np.random.Generator
) -> np.ndarray:
    """``per_persona`` vectors around each centroid (feature units), clipped like uploads."""
    blocks = []
    for centroid, spread in zip(centroids, spreads, strict=True):
        draws = rng.normal(centroid, np.maximum(spread, 1e-3 * _RANGE), (per_persona, len(_LOW)))
        blocks.append(np.array([_LOW + clip_features(row) * _RANGE for row in draws]))
    return np.vstack(blocks)


def retrain_private(
    estimates: Sequence[PersonaEstimate],
    previous: Sequence[Persona],
    spreads: Mapping[str, Sequence[float]],
    *,
    seed: int = 0,
    per_persona: int = SYNTHETIC_PER_PERSONA,
) -> tuple[Trained, np.ndarray]:
    """The new model from the personas' new centroids, and the synthetic vectors it learnt.

    Raises ``ValueError`` (from ``train``) when the personas cannot be told apart.
    """
    centroids = np.array([e.centroid for e in estimates])
    spread_rows = np.array(
        [spreads.get(p.id, DEFAULT_SPREAD * _RANGE) for p in previous], dtype=np.float64
    )
    vectors = synthetic_vectors(centroids, spread_rows, per_persona, np.random.default_rng(seed))
    moved = tuple(
        Persona(p.id, p.name, p.traits, e.centroid)
        for p, e in zip(previous, estimates, strict=True)
    )
    return train(vectors, k=len(previous), previous=moved, seed=seed), vectors


def _unchanged(persona: Persona, share: float | None = None) -> PersonaEstimate:
    return PersonaEstimate(persona.id, None, None, 0.0, tuple(persona.centroid), share)
