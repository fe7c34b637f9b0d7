"""What the server can learn from noised uploads, for bench/sync.py: the error of fleet-level
means recovered from ``n`` devices' weekly uploads, built by the SDK's own ``build_payload``.

True vectors: a synthetic population (a mixture of the five personas) is replayed through the
SDK (``fleet_vectors``: each phone's trace through ``edgepersona.sdk.replay``, as on a phone).
A fleet of ``n`` devices is ``population(n)``'s persona mix; each device holds the replayed
vector of a device of its own persona, drawn at random (replaying 10,000 phones would take
half an hour here and would not change the figure: the error measured is the noise's, and the
truth it is measured against is the mean of the same fleet's clipped true vectors).

Each device's upload is ``edgepersona.sdk._uploads.build_payload`` with its true vector and
true persona; the server side reads the features back into units of each feature's range and
inverts the persona channel with ``edgepersona.backend.ldp``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgepersona.backend.ldp import debiased_label_counts, debiased_means
from edgepersona.edge_models.bundle import fleet_vectors
from edgepersona.edge_models.population import population
from edgepersona.sdk._uploads import build_payload
from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import (
    PERSONA_SHARE,
    clip_features,
    feature_noise_scale,
    keep_probability,
)

_LOW = np.array([f.low for f in FEATURES])
_RANGE = np.array([f.high - f.low for f in FEATURES])


def replayed_vectors(devices: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Two weeks of ``devices`` synthetic phones replayed through the SDK: vectors, personas."""
    fleet = population(devices, seed=seed)
    return fleet_vectors(fleet, 2), [d.persona_id for d in fleet]


def fleet_truth(
    n: int, base: np.ndarray, base_personas: Sequence[str], seed: int
) -> tuple[np.ndarray, list[str]]:
    """``n`` devices in ``population(n)``'s persona mix, each with a replayed vector of its
    persona: (raw true vectors, true personas)."""
    rng = np.random.default_rng(seed)
    pools = {p: np.flatnonzero(np.array(base_personas) == p) for p in set(base_personas)}
    personas = [d.persona_id for d in population(n, seed=seed)]
    rows = [int(rng.choice(pools[p])) for p in personas]
    return base[rows], personas


def noised_uploads(
    vectors: np.ndarray,
    personas: Sequence[str],
    labels: Sequence[str],
    offers: Sequence[str],
    epsilon: float,
    seed: int,
) -> tuple[np.ndarray, list[str]]:
    """Each device's upload exactly as the SDK builds it: features in range units, label."""
    rng = np.random.default_rng(seed)
    features, reported = [], []
    for vector, persona in zip(vectors, personas, strict=True):
        payload = build_payload(
            week="2026-W40",
            features=vector.tolist(),
            persona=persona,
            personas=labels,
            outcome_counts={},
            offers=offers,
            epsilon=epsilon,
            model_version=1,
            rng=rng,
        )
        features.append(payload["features"])
        # the label sits at the top of the payload; before that format, on every outcome row
        reported.append(payload.get("persona") or payload["outcomes"][0]["persona"])
    return (np.array(features) - _LOW) / _RANGE, reported


def errors(
    vectors: np.ndarray,
    personas: Sequence[str],
    uploads: np.ndarray,
    reported: Sequence[str],
    labels: Sequence[str],
    epsilon: float,
) -> dict[str, float]:
    """Errors of the fleet mean, the persona shares and the per-persona means (range units)."""
    clipped = np.stack([clip_features(v) for v in vectors])
    fleet_error = np.abs(uploads.mean(axis=0) - clipped.mean(axis=0))
    true_idx = np.array([labels.index(p) for p in personas])
    reported_idx = np.array([labels.index(p) for p in reported])
    k = len(labels)
    keep_p = keep_probability(PERSONA_SHARE * epsilon, k)
    reported_counts = np.bincount(reported_idx, minlength=k)
    reported_sums = np.stack([uploads[reported_idx == j].sum(axis=0) for j in range(k)])
    shares = debiased_label_counts(reported_counts, keep_p) / len(vectors)
    true_shares = np.bincount(true_idx, minlength=k) / len(vectors)
    means = debiased_means(reported_sums, reported_counts, keep_p)
    true_means = np.stack([clipped[true_idx == j].mean(axis=0) for j in range(k)])
    persona_error = np.abs(means - true_means)  # NaN where a share came out <= 0
    return {
        "fleet_mean_mae": float(fleet_error.mean()),
        "fleet_mean_max": float(fleet_error.max()),
        "fleet_mean_rmse": float(np.sqrt(np.mean(fleet_error**2))),
        # the SDK's noise against its documented Laplace scale: 1.0 when they agree
        "upload_noise_sd_over_theory": float(
            np.std(uploads - clipped, axis=0).mean() / (math.sqrt(2) * feature_noise_scale(epsilon))
        ),
        "persona_share_mae": float(np.abs(shares - true_shares).mean()),
        "persona_share_max": float(np.abs(shares - true_shares).max()),
        "persona_mean_mae": float(np.nanmean(persona_error)),
        "persona_mean_max": float(np.nanmax(persona_error)),
        "personas_not_estimable": int(np.isnan(means[:, 0]).sum()),
    }


def fleet_figures(
    sizes: Sequence[int],
    base: np.ndarray,
    base_personas: Sequence[str],
    labels: Sequence[str],
    offers: Sequence[str],
    epsilon: float,
    repeats: int,
) -> dict[str, Any]:
    """Per fleet size: each error's median and range over ``repeats`` independent noise draws,
    beside the theory for the fleet mean."""
    scale = feature_noise_scale(epsilon)
    out: dict[str, Any] = {}
    for n in sizes:
        vectors, personas = fleet_truth(n, base, base_personas, seed=n)
        runs = []
        for repeat in range(repeats):
            uploads, reported = noised_uploads(
                vectors, personas, labels, offers, epsilon, seed=1_000_003 * repeat + n
            )
            runs.append(errors(vectors, personas, uploads, reported, labels, epsilon))
        standard_error = math.sqrt(2) * scale / math.sqrt(n)
        out[str(n)] = {
            "devices": n,
            **{key: _summary([run[key] for run in runs]) for key in runs[0]},
            "theory_fleet_mean_standard_error": round(standard_error, 4),
            "theory_fleet_mean_mae": round(standard_error * math.sqrt(2 / math.pi), 4),
            "theory_persona_mean_standard_error": round(
                persona_mean_standard_error(n, len(labels), epsilon), 4
            ),
        }
    return out


def persona_mean_standard_error(n: int, k: int, epsilon: float) -> float:
    """Approximate standard error of one persona's debiased mean (range units), for ``k``
    equally common personas: each upload adds its noised vector times
    ``(1[reported j] - q) / (p - q)`` to the persona's sum, whose variance dominates; the
    spread of the true vectors (below 1) is negligible beside the noise's."""
    keep = keep_probability(PERSONA_SHARE * epsilon, k)
    other = (1 - keep) / (k - 1)
    noise_variance = 2 * feature_noise_scale(epsilon) ** 2
    per_upload = noise_variance * ((1 / k) * (1 - other) ** 2 + (1 - 1 / k) * other**2)
    return math.sqrt(n * per_upload) / ((keep - other) * n / k)


def devices_for(standard_error_at_one: float, target: float) -> int:
    """Fleet size at which a standard error that shrinks as ``1 / sqrt(n)`` reaches ``target``."""
    return math.ceil((standard_error_at_one / target) ** 2)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }
