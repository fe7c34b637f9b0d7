"""What the dashboard and ``/metrics`` show about the fleet, read with bounded queries.

Every figure is aggregated in SQL; only small results come back to Python. What each query
reads, so that the page stays fast as the ``aggregates`` table grows:

* **Uploads per day**: uploads received in the last ``UPLOAD_DAYS`` days, grouped by UTC day.
  The scan is kept to recent rows by the ``week`` index: only uploads whose ISO week is at most
  ``UPLOAD_DAYS + 7`` days old are counted (a device that was offline for over a month and then
  uploads an old week is not drawn). ``received_at`` has no index of its own.
* **Privacy budget**: per ISO week of the last ``WEEKS`` weeks, the uploads' epsilon grouped by
  its value rounded to 0.01 (at most 1,000 values, since epsilon is at most 10), from which the
  sum, mean and percentiles are computed exactly to that rounding.
* **Persona mix**: per ISO week, uploads counted by their persona label
  and by channel (epsilon, model version), see ``backend.persona_mix``.
* **Models**: the versions that can still be served (down to the newest one at 100%, older ones
  are never looked at) and the candidates above them, at most ``MODEL_ROWS``.
* **Retrains**: the newest ``RETRAIN_ROWS`` reports.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, Numeric, cast, func, select
from sqlalchemy.sql import ColumnElement

from .persona_mix import PersonaMix, persona_mix, read_reports
from .schema import aggregates, devices, models, retrains

__all__ = [
    "MODEL_ROWS",
    "RETRAIN_ROWS",
    "UPLOAD_DAYS",
    "WEEKS",
    "Budget",
    "Fleet",
    "ModelVersion",
    "Retrain",
    "percentile",
    "persona_order",
    "read_fleet",
    "recent_weeks",
    "serving_shares",
    "serving_versions",
    "week_label",
]

WEEKS = 12
UPLOAD_DAYS = 30
MODEL_ROWS = 12
RETRAIN_ROWS = 10
DAY = 86_400


@dataclass(frozen=True)
class ModelVersion:
    """A published version that is served or waits to be; ``share`` is of all devices."""

    version: int
    kind: str
    source_version: int | None
    rollout_percent: int
    created_at: float
    personas: tuple[tuple[str, str], ...]  # (id, name), in the model's class order
    share: float  # expected fraction of devices that /v1/models/current sends to it


@dataclass(frozen=True)
class Budget:
    """The epsilon that one ISO week's uploads spent."""

    week: str
    uploads: int
    total: float
    mean: float
    p5: float
    p50: float
    p95: float
    max: float


@dataclass(frozen=True)
class Retrain:
    """One retrain run, published or refused."""

    id: int
    created_at: float
    devices: int
    device_weeks: int
    first_week: str
    last_week: str
    gates: tuple[tuple[str, bool], ...]
    published_version: int | None
    refusal: str | None  # the refusal code


@dataclass(frozen=True)
class Fleet:
    """Everything the dashboard draws, as read at ``now``."""

    now: float
    devices: int
    week: str
    uploads_this_week: int
    uploads_per_day: tuple[tuple[dt.date, int], ...]
    budgets: tuple[Budget, ...]
    models: tuple[ModelVersion, ...]
    personas: tuple[str, ...]  # every persona id shown, in a stable order (see persona_order)
    persona_mix: PersonaMix | None  # None while no model is published
    retrains: tuple[Retrain, ...]


def week_label(day: dt.date) -> str:
    """The ISO week of ``day`` as uploads name it, ``YYYY-Www``."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def recent_weeks(now: float, count: int) -> tuple[str, ...]:
    """The ``count`` ISO weeks ending with the week of ``now``, oldest first."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return tuple(week_label(today - dt.timedelta(weeks=back)) for back in range(count - 1, -1, -1))


def serving_shares(rollouts: Sequence[tuple[int, int]]) -> dict[int, float]:
    """Expected fraction of devices served each version, from ``(version, percent)`` pairs.

    A device runs the newest version whose rollout includes it, and its bucket is drawn afresh
    for each version (``backend.rollout``), so version *v* at *p*% serves
    ``p/100 * prod(1 - q/100)`` over the newer versions' shares *q*.
    """
    shares: dict[int, float] = {}
    left = 1.0
    for version, percent in sorted(rollouts, reverse=True):
        shares[version] = left * percent / 100
        left -= shares[version]
    return shares


def persona_order(versions: Sequence[Sequence[tuple[str, str]]]) -> tuple[str, ...]:
    """Persona ids in order of first appearance, ``versions`` oldest first.

    Retraining keeps persona ids but may list them in another order; ordering by first
    appearance gives each persona the same place (and colour) whatever the newest model says.
    """
    seen: dict[str, None] = {}
    for personas in versions:
        seen.update((persona_id, None) for persona_id, _ in personas if persona_id not in seen)
    return tuple(seen)


def percentile(histogram: Sequence[tuple[float, int]], q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of values given as ``(value, count)`` pairs."""
    ordered = sorted(histogram)
    total = sum(count for _, count in ordered)
    if total == 0:
        raise ValueError("the histogram is empty")
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    return ordered[-1][0]


def serving_versions(conn: Connection) -> tuple[ModelVersion, ...]:
    """The versions that can be served and the candidates above them, newest first."""
    newest_full = (
        select(func.coalesce(func.max(models.c.version), 0))
        .where(models.c.rollout_percent == 100)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            models.c.version,
            models.c.kind,
            models.c.source_version,
            models.c.rollout_percent,
            models.c.created_at,
            models.c.manifest,
        )
        .where(models.c.version >= newest_full)
        .order_by(models.c.version.desc())
        .limit(MODEL_ROWS)
    ).all()
    shares = serving_shares([(row.version, row.rollout_percent) for row in rows])
    return tuple(
        ModelVersion(
            version=row.version,
            kind=row.kind,
            source_version=row.source_version,
            rollout_percent=row.rollout_percent,
            created_at=row.created_at,
            personas=tuple((p["id"], p["name"]) for p in json.loads(row.manifest)["personas"]),
            share=shares[row.version],
        )
        for row in rows
    )


def read_fleet(conn: Connection, now: float) -> Fleet:
    """Read every panel's figures (call it inside a transaction)."""
    weeks = recent_weeks(now, WEEKS)
    reports = read_reports(conn, weeks)
    uploads_per_week = _uploads_per_week(conn, weeks)
    versions = serving_versions(conn)
    first = conn.execute(
        select(models.c.manifest).order_by(models.c.version).limit(1)
    ).scalar_one_or_none()
    oldest = [(p["id"], p["name"]) for p in json.loads(first)["personas"]] if first else []
    return Fleet(
        now=now,
        devices=conn.execute(select(func.count()).select_from(devices)).scalar_one(),
        week=weeks[-1],
        uploads_this_week=uploads_per_week[-1],
        uploads_per_day=_uploads_per_day(conn, now),
        budgets=_budgets(conn, weeks),
        models=versions,
        personas=persona_order([oldest, *(m.personas for m in reversed(versions))]),
        persona_mix=persona_mix(reports, uploads_per_week),
        retrains=_retrains(conn),
    )


def _uploads_per_week(conn: Connection, weeks: tuple[str, ...]) -> tuple[int, ...]:
    rows = conn.execute(
        select(aggregates.c.week, func.count())
        .where(aggregates.c.week >= weeks[0], aggregates.c.week <= weeks[-1])
        .group_by(aggregates.c.week)
    )
    found = {str(week): int(count) for week, count in rows}
    return tuple(found.get(week, 0) for week in weeks)


def _uploads_per_day(conn: Connection, now: float) -> tuple[tuple[dt.date, int], ...]:
    today = int(now // DAY)
    first = today - UPLOAD_DAYS + 1
    oldest_week = week_label(dt.date.fromordinal(_EPOCH_ORDINAL + first) - dt.timedelta(days=7))
    day = _day_number(conn, aggregates.c.received_at)
    rows = conn.execute(
        select(day, func.count())
        .where(aggregates.c.week >= oldest_week, aggregates.c.received_at >= first * DAY)
        .group_by(day)
    )
    found = {int(number): int(count) for number, count in rows}
    return tuple(
        (dt.date.fromordinal(_EPOCH_ORDINAL + number), found.get(number, 0))
        for number in range(first, today + 1)
    )


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _day_number(conn: Connection, seconds: Any) -> ColumnElement[Any]:
    """Days since 1970 (UTC) of a Unix time column, in SQL."""
    if conn.dialect.name == "sqlite":
        # CAST truncates in SQLite (floor() needs its optional math functions); times are > 0.
        return cast(seconds / DAY, Integer)
    return func.floor(seconds / DAY)  # PostgreSQL's CAST would round


def _budgets(conn: Connection, weeks: tuple[str, ...]) -> tuple[Budget, ...]:
    rounded = func.round(cast(aggregates.c.epsilon, Numeric), 2)
    rows = conn.execute(
        select(aggregates.c.week, rounded, func.count(), func.sum(aggregates.c.epsilon))
        .where(aggregates.c.week >= weeks[0], aggregates.c.week <= weeks[-1])
        .group_by(aggregates.c.week, rounded)
    )
    histograms: dict[str, list[tuple[float, int]]] = {}
    totals: dict[str, float] = {}
    for week, value, count, total in rows:
        histograms.setdefault(week, []).append((float(value), int(count)))
        totals[week] = totals.get(week, 0.0) + float(total)
    budgets = []
    for week in weeks:
        histogram = histograms.get(week)
        if not histogram:
            continue
        uploads = sum(count for _, count in histogram)
        budgets.append(
            Budget(
                week=week,
                uploads=uploads,
                total=totals[week],
                mean=totals[week] / uploads,
                p5=percentile(histogram, 0.05),
                p50=percentile(histogram, 0.5),
                p95=percentile(histogram, 0.95),
                max=max(value for value, _ in histogram),
            )
        )
    return tuple(budgets)


def _retrains(conn: Connection) -> tuple[Retrain, ...]:
    rows = conn.execute(
        select(retrains.c.id, retrains.c.created_at, retrains.c.report)
        .order_by(retrains.c.id.desc())
        .limit(RETRAIN_ROWS)
    )
    found = []
    for row in rows:
        report = _as_dict(row.report)
        refusal = report.get("refusal")
        found.append(
            Retrain(
                id=row.id,
                created_at=row.created_at,
                devices=int(report.get("devices", 0)),
                device_weeks=int(report.get("device_weeks", 0)),
                first_week=str(report.get("first_week", "")),
                last_week=str(report.get("last_week", "")),
                gates=tuple((str(name), bool(ok)) for name, ok in report.get("gates", {}).items()),
                published_version=report.get("published_version"),
                refusal=refusal["code"] if refusal else None,
            )
        )
    return tuple(found)


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)
