"""The persona mix: each persona's share of a week's uploads, estimated from their labels.

Every upload carries one persona label, which the server keeps in the upload's aggregate row
(``aggregates.persona``): the device's top persona after k-ary randomized response
(``edgepersona.sdk.privacy``). So the server never learns a device's persona, only a report
that is true with the known probability ``p = keep_probability(PERSONA_SHARE * epsilon, k)``,
else one of the other ``k - 1`` personas with probability ``q = (1 - p) / (k - 1)`` each.
Running a model on the uploaded feature vectors cannot do better: their Laplace noise is about
27 feature ranges wide at epsilon 1, so the model's answer is close to random whatever the
device is.

**What is read** (``read_reports``), counted in SQL over the weeks asked for:

* one label per upload (only an upload stored before migration 5 without outcome rows has
  none: it is left out, and counted);
* those labels counted by ``(week, epsilon rounded to 0.01, model_version, label)``: the
  channel of an upload is fixed by its epsilon and by ``k``, the number of personas of the
  model it ran, read from that version's manifest in the registry. Uploads of a version that
  is not in the registry, or naming a persona that version does not have, cannot be debiased.

**The estimate** (``estimate``, pure): within each channel, ``ldp.debiased_label_counts``;
summed over channels and divided by the ``n`` labelled uploads it is an unbiased estimate of
each persona's share of them (the same as summing each upload's one-hot estimate
``(e_r - q) / (p - q)``). Given the devices' true personas, its variance is
``sum_g n_g (s p_g (1 - p_g) + (1 - s) q_g (1 - q_g)) / (p_g - q_g)^2 / n^2`` over the
channels ``g``, ``s`` the persona's true share; the estimate clipped to [0, 1] is put in for
``s``. The 95% interval is the estimate +- 1.96 standard errors: a normal approximation, so
rough below a few hundred uploads, and wide there anyway (at epsilon 1 and 5 personas, one
upload's report carries almost nothing: ``p = 0.234`` against ``0.2`` for a random label).
Estimates are not clipped here; the page clips what it draws, and says so. Rounding epsilon
to 0.01 moves ``p`` by less than 0.0003.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Numeric, Select, cast, func, select

from edgepersona.sdk.privacy import PERSONA_SHARE, keep_probability

from .ldp import debiased_label_counts
from .schema import aggregates, models

__all__ = [
    "Z_95",
    "Estimate",
    "LabelCounts",
    "PersonaMix",
    "Reports",
    "estimate",
    "persona_mix",
    "read_reports",
]

Z_95 = 1.959964  # standard normal quantile: a 95% two-sided interval


@dataclass(frozen=True)
class LabelCounts:
    """Uploads reported through one channel: their epsilon, the labels their devices chose
    among (the personas of the model they ran) and how many uploads reported each label."""

    epsilon: float
    labels: tuple[str, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Estimate:
    """Persona shares of ``uploads`` labelled uploads, in the order of the personas asked for.

    ``shares`` are unbiased, so they may fall outside [0, 1] (more often the fewer uploads);
    ``errors`` are their standard errors. The shares of every persona the uploads' models had
    sum to 1.
    """

    uploads: int
    shares: tuple[float, ...]
    errors: tuple[float, ...]

    def half_width(self, index: int) -> float:
        """Half the width of the 95% interval of share ``index``."""
        return Z_95 * self.errors[index]


@dataclass(frozen=True)
class Reports:
    """The newest model's personas and the window's labels, counted by week and channel."""

    version: int
    personas: tuple[tuple[str, str], ...]  # (id, name) of the newest model, in its order
    groups: dict[str, tuple[LabelCounts, ...]]  # week -> its labels, one entry per channel
    unlabelled: dict[str, int]  # week -> uploads without a label (stored before migration 5)
    unusable: dict[str, int]  # week -> uploads whose label or model is not known


@dataclass(frozen=True)
class PersonaMix:
    """Estimated persona shares per week, for the personas of model ``version``."""

    version: int
    personas: tuple[tuple[str, str], ...]
    weeks: tuple[str, ...]
    estimates: tuple[Estimate, ...]  # one per week
    overall: Estimate  # every labelled upload of the weeks together
    uploads: tuple[int, ...]  # every upload of each week
    unlabelled: tuple[int, ...]  # uploads without a label (stored before migration 5)
    unusable: tuple[int, ...]  # a label their model lacks, or a model not in the registry


def estimate(groups: Iterable[LabelCounts], personas: Sequence[str]) -> Estimate:
    """Each of ``personas``' share of the uploads in ``groups``, debiased channel by channel.

    A persona that a group's labels lack gets no share from that group (its devices cannot
    hold it); labels that are not in ``personas`` take the rest of the shares.

    Raises:
        ValueError: a group whose counts do not match its labels, or whose epsilon is not
            positive.
    """
    groups = [g for g in groups if sum(g.counts) > 0]
    index = {persona: i for i, persona in enumerate(personas)}
    totals = np.zeros(len(personas))
    channels = []  # (uploads, p, q, where each of the group's labels goes in ``personas``)
    for group in groups:
        if len(group.counts) != len(group.labels) or not group.epsilon > 0:
            raise ValueError(
                f"a group needs one count per label and a positive epsilon, got {group}"
            )
        keep, other = _channel(group.epsilon, len(group.labels))
        counts = np.asarray(group.counts, dtype=np.float64)
        debiased = counts if keep == 1.0 else debiased_label_counts(counts, keep)
        places = [index.get(label) for label in group.labels]
        for place, count in zip(places, debiased, strict=True):
            if place is not None:
                totals[place] += count
        channels.append((int(counts.sum()), keep, other, places))
    uploads = sum(n for n, _, _, _ in channels)
    if uploads == 0:
        return Estimate(0, (0.0,) * len(personas), (0.0,) * len(personas))
    shares = totals / uploads
    share = np.clip(shares, 0.0, 1.0)
    variance = np.zeros(len(personas))
    for n, keep, other, places in channels:
        if keep == 1.0:
            continue  # a single label: nothing was randomized
        held = np.zeros(len(personas), dtype=bool)
        held[[place for place in places if place is not None]] = True
        per_upload = (share * keep * (1 - keep) + (1 - share) * other * (1 - other)) / (
            keep - other
        ) ** 2
        variance += np.where(held, n * per_upload, 0.0)
    errors = np.sqrt(variance) / uploads
    return Estimate(uploads, tuple(shares.tolist()), tuple(errors.tolist()))


def read_reports(conn: Connection, weeks: tuple[str, ...]) -> Reports | None:
    """The newest model's personas and ``weeks``' labels by channel; None with no model."""
    newest = conn.execute(
        select(models.c.version, models.c.manifest).order_by(models.c.version.desc()).limit(1)
    ).one_or_none()
    if newest is None:
        return None
    rows = conn.execute(_labels_query(weeks)).all()
    versions = {int(row.model_version) for row in rows}
    found = conn.execute(
        select(models.c.version, models.c.manifest).where(models.c.version.in_(versions))
    )
    labels_of = {int(v): tuple(p["id"] for p in json.loads(m)["personas"]) for v, m in found}
    counted: dict[tuple[str, float, int], dict[str, int]] = {}
    unlabelled, unusable = dict.fromkeys(weeks, 0), dict.fromkeys(weeks, 0)
    for week, epsilon, version, label, uploads in rows:
        if label is None:
            unlabelled[week] += int(uploads)
            continue
        if label not in labels_of.get(int(version), ()):
            unusable[week] += int(uploads)
            continue
        counted.setdefault((week, float(epsilon), int(version)), {})[label] = int(uploads)
    groups: dict[str, list[LabelCounts]] = {week: [] for week in weeks}
    for (week, epsilon, version), by_label in counted.items():
        labels = labels_of[version]
        groups[week].append(
            LabelCounts(epsilon, labels, tuple(by_label.get(label, 0) for label in labels))
        )
    return Reports(
        version=int(newest.version),
        personas=tuple((p["id"], p["name"]) for p in json.loads(newest.manifest)["personas"]),
        groups={week: tuple(found) for week, found in groups.items()},
        unlabelled=unlabelled,
        unusable=unusable,
    )


def persona_mix(reports: Reports | None, uploads: Sequence[int]) -> PersonaMix | None:
    """Estimate each week's shares; ``uploads`` counts every upload of each week."""
    if reports is None:
        return None
    weeks = tuple(reports.groups)
    ids = [persona_id for persona_id, _ in reports.personas]
    estimates = tuple(estimate(reports.groups[week], ids) for week in weeks)
    return PersonaMix(
        version=reports.version,
        personas=reports.personas,
        weeks=weeks,
        estimates=estimates,
        overall=estimate((g for week in weeks for g in reports.groups[week]), ids),
        uploads=tuple(uploads),
        unlabelled=tuple(reports.unlabelled[week] for week in weeks),
        unusable=tuple(reports.unusable[week] for week in weeks),
    )


def _labels_query(weeks: tuple[str, ...]) -> Select[Any]:
    """Uploads counted by (week, rounded epsilon, model version, label); NULL: no label.

    Driven by the window's rows of ``aggregates`` (its week index), so the cost follows the
    window, never the history.
    """
    per_upload = (
        select(
            aggregates.c.week,
            func.round(cast(aggregates.c.epsilon, Numeric), 2).label("epsilon"),
            aggregates.c.model_version,
            aggregates.c.persona.label("label"),
        )
        .where(aggregates.c.week >= weeks[0], aggregates.c.week <= weeks[-1])
        .subquery()
    )
    columns = (per_upload.c.week, per_upload.c.epsilon, per_upload.c.model_version)
    return select(*columns, per_upload.c.label, func.count()).group_by(*columns, per_upload.c.label)


def _channel(epsilon: float, k: int) -> tuple[float, float]:
    """``(p, q)``: a label kept, and one given as each other label, at this upload epsilon."""
    if k == 1:
        return 1.0, 0.0
    keep = keep_probability(PERSONA_SHARE * epsilon, k)
    return keep, (1.0 - keep) / (k - 1)
