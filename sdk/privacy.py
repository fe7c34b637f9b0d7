"""Local differential privacy of the weekly upload: one definition, used on the device and
checked by the backend.

A device that syncs sends, once per ISO week, an aggregate that is private on its own: the
noise is added on the phone, so neither the network nor the server ever sees a true value.
The week's budget ``epsilon`` (default 1.0) is split in fixed shares between three parts, and
by sequential composition the whole upload is ``epsilon``-differentially private with respect
to everything the device did that week:

* **features** (``FEATURE_SHARE``): the feature vector, each value clipped to its documented
  range and scaled to [0, 1]. The shares of the time-of-day, place and app-category groups sum
  to at most 1 each (clipping renormalises a group that does not), so two possible vectors
  differ by at most 2 in each group and 1 in each other feature: the L1 sensitivity is
  ``FEATURE_SENSITIVITY`` (16 for schema v1). Laplace noise of scale
  ``FEATURE_SENSITIVITY / (FEATURE_SHARE * epsilon)`` is added to every scaled value.
* **persona** (``PERSONA_SHARE``): the device's current top persona, through k-ary randomized
  response: kept with probability ``e^eps / (e^eps + k - 1)``, else one of the other ``k - 1``
  at random. The server can still estimate how many devices hold each persona, and the mean
  vector of each, by inverting that known channel.
* **outcomes** (``OUTCOME_SHARE``): how often the user accepted or dismissed each offer of the
  playbook during the week. The counts are scaled down so they sum to at most
  ``OUTCOME_CAP``; two such vectors differ by at most ``2 * OUTCOME_CAP`` in L1, which
  calibrates Laplace noise of scale ``2 * OUTCOME_CAP / (OUTCOME_SHARE * epsilon)``. Every
  offer of the playbook is sent, used or not, so which offers the user saw is not revealed.

Noised values are rounded to ``ROUND_DIGITS`` decimals and clamped into ``feature_band``, a band
wide enough that an honest value is clamped with probability below ``e^-20``; both are
post-processing and do not weaken the guarantee. The backend refuses values outside the band.

Local noise is large for one device (that is the point) and shrinks as the fleet grows: a
fleet mean over ``n`` uploads has a standard error of about ``sqrt(2) * scale / sqrt(n)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._categories import CATEGORIES
from .features import FEATURES, TIME_OF_DAY

__all__ = [
    "BAND_SCALES",
    "DEFAULT_EPSILON",
    "FEATURE_SENSITIVITY",
    "FEATURE_SHARE",
    "MAX_EPSILON",
    "MECHANISM",
    "MIN_EPSILON",
    "OUTCOME_CAP",
    "OUTCOME_SHARE",
    "PERSONA_SHARE",
    "ROUND_DIGITS",
    "SHARE_GROUPS",
    "clip_features",
    "feature_band",
    "feature_noise_scale",
    "keep_probability",
    "noised_features",
    "noised_outcomes",
    "outcome_noise_scale",
    "randomized_response",
]

MECHANISM = "laplace"
DEFAULT_EPSILON = 1.0
MIN_EPSILON = 0.1
MAX_EPSILON = 10.0
FEATURE_SHARE = 0.6
PERSONA_SHARE = 0.2
OUTCOME_SHARE = 0.2
OUTCOME_CAP = 2.0
ROUND_DIGITS = 2
BAND_SCALES = 20.0  # the clamp band reaches this many noise scales beyond the range


def _groups() -> tuple[tuple[int, ...], ...]:
    """Indices of the features that are shares of one whole (they sum to at most 1)."""
    index = {f.name: i for i, f in enumerate(FEATURES)}
    names = (
        [f"tod_{name}" for name, _, _ in TIME_OF_DAY],
        ["place_home", "place_work", "place_other", "place_moving"],
        [f"app_{category}" for category in CATEGORIES],
    )
    return tuple(tuple(index[name] for name in group) for group in names)


SHARE_GROUPS = _groups()
_GROUPED = frozenset(i for group in SHARE_GROUPS for i in group)
FEATURE_SENSITIVITY = 2.0 * len(SHARE_GROUPS) + (len(FEATURES) - len(_GROUPED))
_LOW = np.array([f.low for f in FEATURES], dtype=np.float64)
_RANGE = np.array([f.high - f.low for f in FEATURES], dtype=np.float64)


def feature_noise_scale(epsilon: float) -> float:
    """The Laplace scale added to each feature, in units of that feature's range."""
    return FEATURE_SENSITIVITY / (FEATURE_SHARE * epsilon)


def outcome_noise_scale(epsilon: float) -> float:
    """The Laplace scale added to each outcome count."""
    return 2.0 * OUTCOME_CAP / (OUTCOME_SHARE * epsilon)


def feature_band(epsilon: float) -> tuple[tuple[float, float], ...]:
    """Per feature, the (low, high) values a noised upload may hold at this ``epsilon``."""
    reach = math.ceil(BAND_SCALES * feature_noise_scale(epsilon))  # whole ranges: readable
    return tuple(
        (f.low - reach * (f.high - f.low), f.high + reach * (f.high - f.low)) for f in FEATURES
    )


def clip_features(values: Sequence[float]) -> np.ndarray:
    """The vector scaled to [0, 1] per feature, each share group summing to at most 1.

    NaN (a feature with no data) becomes 0: the sensitivity argument needs every value in
    range whatever the device computed.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.shape != (len(FEATURES),):
        raise ValueError(f"expected {len(FEATURES)} feature values, got shape {x.shape}")
    scaled = np.clip(np.nan_to_num((x - _LOW) / _RANGE, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    for group in SHARE_GROUPS:
        total = scaled[list(group)].sum()
        if total > 1.0:
            scaled[list(group)] /= total
    return scaled


def noised_features(
    values: Sequence[float], epsilon: float, rng: np.random.Generator
) -> list[float]:
    """The clipped vector plus Laplace noise, back in feature units, rounded and clamped."""
    noised = clip_features(values) + rng.laplace(0.0, feature_noise_scale(epsilon), len(FEATURES))
    out = []
    for value, low, span, (band_low, band_high) in zip(
        noised, _LOW, _RANGE, feature_band(epsilon), strict=True
    ):
        scaled = round(float(low + value * span), ROUND_DIGITS)
        out.append(min(max(scaled, band_low), band_high))
    return out


def keep_probability(epsilon: float, k: int) -> float:
    """The probability that randomized response over ``k`` labels reports the true one."""
    return math.exp(epsilon) / (math.exp(epsilon) + k - 1)


def randomized_response(
    label: str, labels: Sequence[str], epsilon: float, rng: np.random.Generator
) -> str:
    """``label``, or with the calibrated probability one of the other ``labels``."""
    if label not in labels:
        raise ValueError(f"{label!r} is not one of {list(labels)}")
    if len(labels) == 1 or rng.random() < keep_probability(epsilon, len(labels)):
        return label
    others = [other for other in labels if other != label]
    return others[int(rng.integers(len(others)))]


def noised_outcomes(
    counts: Mapping[str, tuple[float, float]],
    offers: Sequence[str],
    epsilon: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """For every offer in ``offers``: noised (accepted, dismissed) counts of the week.

    ``epsilon`` is the week's whole budget (``OUTCOME_SHARE`` of it is spent here), as for
    ``noised_features``; ``randomized_response`` takes its own part's epsilon instead.

    ``counts`` maps an offer to its true counts; offers missing from it count 0, and offers
    not in ``offers`` are ignored (the playbook's offers are the public list).
    """
    true = np.array([counts.get(offer, (0.0, 0.0)) for offer in offers], dtype=np.float64)
    true = np.clip(true.reshape(len(offers), 2), 0.0, None)
    total = true.sum()
    if total > OUTCOME_CAP:
        true *= OUTCOME_CAP / total
    noised = true + rng.laplace(0.0, outcome_noise_scale(epsilon), true.shape)
    return {
        offer: (round(float(a), ROUND_DIGITS), round(float(d), ROUND_DIGITS))
        for offer, (a, d) in zip(offers, noised, strict=True)
    }
