"""Fleet statistics from locally private uploads: undoing the randomized-response channel.

Each device reports its persona through k-ary randomized response
(``edgepersona.sdk.privacy.randomized_response``): the true label with probability ``keep_p``,
else one of the other ``k - 1`` uniformly, so ``P(report j | true i)`` is ``keep_p`` when
``i == j`` and ``q = (1 - keep_p) / (k - 1)`` otherwise. Counting uploads by their reported
label therefore mixes the personas: in expectation ``reported_j = (keep_p - q) * true_j + q * n``
over ``n`` uploads. The functions here invert that known channel:

* ``debiased_label_counts``: unbiased estimates of how many devices truly hold each label;
* ``debiased_means``: each label's mean vector (the feature vectors are summed by reported
  label; the Laplace noise on them has mean zero and is independent of the label's coin, so
  the same inversion applies to the sums, and the mean is the ratio of the two estimates).

The estimates are unbiased (the means consistent) but their variance is the price of privacy:
it grows like ``1 / (keep_p - q)^2``, which is large at the small persona budget a week's
upload spends (``keep_p`` is about 0.23 for 5 personas at epsilon 0.2; ``bench/sync.py``
reports the errors it gives for 1,000 and 10,000 devices). Estimates are not clipped: a count
may come out negative for a rare label, and clipping would bias the others; the caller decides
(for example, applying its k-anonymity floor to the estimated counts).

Typical use in retraining, with ``keep_p = keep_probability(PERSONA_SHARE * epsilon, k)``
from ``edgepersona.sdk.privacy``::

    counts = debiased_label_counts(reported_counts, keep_p)
    means = debiased_means(reported_sums, reported_counts, keep_p)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["debiased_label_counts", "debiased_means"]


def debiased_label_counts(reported_counts: ArrayLike, keep_p: float) -> np.ndarray:
    """Estimated true number of devices per label, from the counts of reported labels.

    Args:
        reported_counts: shape ``(k,)``, how many uploads reported each label (``k >= 2``).
        keep_p: the probability that randomized response kept the true label; it must be
            above ``1 / k`` (else the reports carry no information) and at most 1.

    Returns:
        float array of shape ``(k,)``; it sums to the number of uploads. Values may be
        negative (an unbiased estimate of a small count is noisy both ways).

    Raises:
        ValueError: a shape other than ``(k,)`` with ``k >= 2``, a negative or non-finite
            count, or ``keep_p`` outside ``(1 / k, 1]``.
    """
    counts = np.asarray(reported_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(
            f"reported_counts must be one count per label (k >= 2), got {counts.shape}"
        )
    if not (np.all(np.isfinite(counts)) and np.all(counts >= 0)):
        raise ValueError("reported_counts must be finite counts of 0 or more")
    keep, other = _channel(keep_p, len(counts))
    return (counts - other * counts.sum()) / (keep - other)


def debiased_means(
    reported_label_sums: ArrayLike, reported_label_counts: ArrayLike, keep_p: float
) -> np.ndarray:
    """Estimated mean vector of each true label, from vectors summed by reported label.

    Args:
        reported_label_sums: shape ``(k, d)``, row ``j`` the sum of the uploaded vectors
            whose reported label is ``j``.
        reported_label_counts: shape ``(k,)``, how many uploads reported each label.
        keep_p: as in ``debiased_label_counts``.

    Returns:
        float array of shape ``(k, d)``; a row is NaN where the label's estimated count is
        not positive (its mean cannot be estimated from these uploads).

    Raises:
        ValueError: shapes that disagree, non-finite sums, or as ``debiased_label_counts``.
    """
    sums = np.asarray(reported_label_sums, dtype=np.float64)
    counts = debiased_label_counts(reported_label_counts, keep_p)
    if sums.ndim != 2 or sums.shape[0] != len(counts):
        raise ValueError(
            f"reported_label_sums must have one row per label, shape ({len(counts)}, d); "
            f"got {sums.shape}"
        )
    if not np.all(np.isfinite(sums)):
        raise ValueError("reported_label_sums must be finite")
    keep, other = _channel(keep_p, len(counts))
    true_sums = (sums - other * sums.sum(axis=0)) / (keep - other)
    means = np.full_like(true_sums, np.nan)
    estimable = counts > 0
    means[estimable] = true_sums[estimable] / counts[estimable, None]
    return means


def _channel(keep_p: float, k: int) -> tuple[float, float]:
    """``(P(report i | true i), P(report j | true i) for j != i)``, checked invertible."""
    if not (isinstance(keep_p, (int, float)) and 1.0 / k < keep_p <= 1.0):
        raise ValueError(f"keep_p must be above 1/k = {1.0 / k:.4g} and at most 1, got {keep_p!r}")
    return float(keep_p), (1.0 - float(keep_p)) / (k - 1)
