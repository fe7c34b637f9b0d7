"""Offer ranking by Thompson sampling, and a habit-shift detector: pure functions on numpy.

Both run on the device inside ``decide()``; randomness comes from the ``rng`` the caller
passes, so a seeded generator gives the same ranking every time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HabitShift", "Ranked", "habit_shift", "thompson_rank"]

# Bounds on the mixed prior's concentration (alpha + beta): below, Beta sampling is all 0s and
# 1s anyway; above, more than any fleet has observed, and float error would dominate.
_MIN_CONCENTRATION = 1e-6
_MAX_CONCENTRATION = 1e12
_TOP_CHANGES = 3


@dataclass(frozen=True)
class Ranked:
    """The ranking of one ``decide()`` call."""

    order: tuple[str, ...]  # offer ids, best first
    scores: dict[str, float]  # the sampled success rate that ranked each offer
    propensity: float  # chance that this policy ranks ``order[0]`` first, for off-policy evaluation


@dataclass(frozen=True)
class HabitShift:
    """How far this week's features moved from the user's own earlier weeks."""

    score: float  # the largest |z| over the features, 0.0 when there is too little history
    shifted: bool  # score >= threshold with enough baseline weeks
    top_changes: tuple[tuple[str, float], ...]  # (feature, z), largest |z| first, at most 3


def thompson_rank(
    offers: Sequence[str],
    priors: Mapping[str, Mapping[str, tuple[float, float]]],
    persona_probs: Mapping[str, float],
    rng: np.random.Generator,
    *,
    draws: int = 256,
    default_prior: tuple[float, float] = (1.0, 1.0),
) -> Ranked:
    """Rank ``offers`` by one Thompson sample each from the user's mixed Beta prior.

    ``priors[persona_id][offer_id]`` is the ``(alpha, beta)`` the backend learned for that
    persona; a missing entry uses ``default_prior``. The user is a blend of personas with
    weights ``persona_probs`` (normalised here; all zero or empty means ``default_prior``).
    For each offer the persona Betas are combined by moment matching: the single Beta with
    the mean and variance of the mixture ``sum_p w_p Beta(alpha_p, beta_p)``. Unlike summing
    the weighted pseudo-counts (``alpha = sum w_p alpha_p``), this keeps each persona's say
    proportional to its weight rather than to how much data it has, and it widens the prior
    when personas disagree, so an uncertain user gets more exploration. With one persona it is
    exactly that persona's Beta.

    ``propensity`` is the share of ``draws`` fresh vectorised samples in which the top offer
    wins, floored at ``1 / draws``.

    Raises:
        ValueError: an alpha or beta that is not a finite number above 0 (checked for the
            entries this call reads: personas with weight above 0, the offers given, and
            ``default_prior``), a negative or non-finite persona probability, duplicate offer
            ids, or ``draws`` below 1.
    """
    alpha, beta = mixed_prior(offers, priors, persona_probs, default_prior)
    return thompson_sample(offers, alpha, beta, rng, draws=draws)


def mixed_prior(
    offers: Sequence[str],
    priors: Mapping[str, Mapping[str, tuple[float, float]]],
    persona_probs: Mapping[str, float],
    default_prior: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """The user's moment-matched (alpha, beta) per offer (see ``thompson_rank``).

    It depends only on the priors, the persona probabilities and the offers, so a caller that
    ranks often can keep it until one of those changes. Raises ``ValueError`` like
    ``thompson_rank``.
    """
    if len(set(offers)) != len(offers):
        raise ValueError("offer ids must be unique; the same id appears twice in offers")
    if not offers:
        return np.empty(0), np.empty(0)
    return _mixed_prior(offers, priors, persona_probs, _check_prior(default_prior, "default_prior"))


def thompson_sample(
    offers: Sequence[str],
    alpha: np.ndarray,
    beta: np.ndarray,
    rng: np.random.Generator,
    *,
    draws: int = 256,
) -> Ranked:
    """One Thompson sample per offer from Beta(``alpha``, ``beta``), and the propensity."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    if not offers:
        return Ranked((), {}, 1.0)
    theta = rng.beta(alpha, beta)
    ranking = np.argsort(-theta, kind="stable")
    samples = rng.beta(alpha, beta, size=(draws, len(offers)))
    wins = int(np.count_nonzero(np.argmax(samples, axis=1) == ranking[0]))
    return Ranked(
        order=tuple(offers[i] for i in ranking),
        scores=dict(zip(offers, theta.tolist(), strict=True)),
        propensity=max(wins, 1) / draws,
    )


def _is_number(value: object) -> bool:
    numeric = (int, float, np.integer, np.floating)
    return isinstance(value, numeric) and not isinstance(value, bool) and math.isfinite(value)


def _check_prior(prior: object, *where: object) -> tuple[float, float]:
    """``prior`` as floats; ``where`` names it (``"priors", persona, offer``) in the error."""
    if isinstance(prior, (tuple, list)) and len(prior) == 2:
        alpha, beta = prior
        if _is_number(alpha) and _is_number(beta) and alpha > 0 and beta > 0:
            return float(alpha), float(beta)
    # Formatted only here: this runs for every persona and offer on each decide().
    label = f"{where[0]}" + "".join(f"[{key!r}]" for key in where[1:])
    raise ValueError(
        f"{label} must be an (alpha, beta) pair of finite numbers above 0, got {prior!r:.60}"
    )


def _mixed_prior(
    offers: Sequence[str],
    priors: Mapping[str, Mapping[str, tuple[float, float]]],
    persona_probs: Mapping[str, float],
    default: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matched (alpha, beta) per offer, over the personas with weight above 0."""
    weights: dict[str, float] = {}
    for persona, p in persona_probs.items():
        if not (_is_number(p) and p >= 0):
            raise ValueError(
                f"persona_probs[{persona!r}] must be a finite number, 0 or more, got {p!r:.40}"
            )
        if p > 0:
            weights[persona] = float(p)
    if not weights:
        return np.full(len(offers), default[0]), np.full(len(offers), default[1])
    pairs = np.array(
        [
            [
                _check_prior(priors.get(persona, {}).get(offer, default), "priors", persona, offer)
                for offer in offers
            ]
            for persona in weights
        ]
    )  # shape (personas, offers, 2)
    w = np.array(list(weights.values()))[:, None]
    w = w / w.max()  # first, so that huge weights cannot overflow the sum
    w = w / w.sum()
    return _moment_match(pairs[..., 0], pairs[..., 1], w)


def _moment_match(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Beta with the mean and variance of the mixture ``sum_p w_p Beta(a_p, b_p)``."""
    # Written to stay finite for any positive finite a, b: no a * b, no (a + b) ** 2; an
    # overflow to inf only ever lands in a denominator.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        mean_p = 1.0 / (1.0 + b / a)
        var_p = mean_p * (1.0 - mean_p) / (a + b + 1.0)
        mean = np.sum(w * mean_p, axis=0)
        var = np.sum(w * var_p, axis=0) + np.sum(w * (mean_p - mean) ** 2, axis=0)
        concentration = mean * (1.0 - mean) / var - 1.0
    concentration = np.nan_to_num(concentration, nan=_MAX_CONCENTRATION, posinf=_MAX_CONCENTRATION)
    concentration = np.clip(concentration, _MIN_CONCENTRATION, _MAX_CONCENTRATION)
    tiny = np.finfo(float).tiny  # rng.beta needs parameters above 0
    return np.maximum(mean * concentration, tiny), np.maximum((1.0 - mean) * concentration, tiny)


def habit_shift(
    current: Sequence[float],
    baseline: Sequence[Sequence[float]],
    names: Sequence[str],
    *,
    threshold: float = 3.0,
    min_weeks: int = 2,
    min_std: float = 0.02,
) -> HabitShift:
    """Compare this week's feature vector with the user's own earlier weekly vectors.

    Per feature ``z = (current - mean) / max(std, min_std)`` over the baseline weeks (sample
    standard deviation; ``min_std`` keeps a habit that never varied from turning a tiny change
    into a huge z). The score is the largest ``|z|``, not the RMS: a habit shift usually moves
    one or two features (a new commute, no more gym evenings), and an RMS over a few dozen
    features would dilute that below any useful threshold. The price is more false alarms
    than one feature alone would give, which ``threshold`` (3 by default) absorbs.

    With fewer than ``min_weeks`` baseline weeks nothing is compared: score 0, not shifted.

    Raises:
        ValueError: mismatched lengths, non-finite values, or non-positive settings.
    """
    if not (threshold > 0 and min_std > 0 and min_weeks >= 1):
        raise ValueError(
            f"threshold and min_std must be above 0 and min_weeks at least 1, "
            f"got {threshold}, {min_std}, {min_weeks}"
        )
    now = _finite_array(current, "current")
    if now.ndim != 1 or len(now) != len(names):
        raise ValueError(f"current has {now.size} values but there are {len(names)} names")
    if len(baseline) < min_weeks:
        return HabitShift(0.0, False, ())
    weeks = _finite_array(baseline, "baseline")
    if weeks.ndim != 2 or weeks.shape[1] != len(names):
        raise ValueError(f"every baseline week needs {len(names)} values, one per name")
    std = weeks.std(axis=0, ddof=1) if len(weeks) > 1 else np.zeros(len(names))
    z = (now - weeks.mean(axis=0)) / np.maximum(std, min_std)
    score = float(np.max(np.abs(z), initial=0.0))
    biggest = [i for i in np.argsort(-np.abs(z), kind="stable")[:_TOP_CHANGES] if z[i] != 0]
    return HabitShift(
        score=score,
        shifted=score >= threshold,
        top_changes=tuple((names[i], float(z[i])) for i in biggest),
    )


def _finite_array(values: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must hold numbers in equal-length rows: {error}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds a NaN or infinite value; features must be finite")
    return array
