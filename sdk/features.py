"""The persona feature schema (v1): one definition, used on the device and in training.

The device computes this vector from its rollups and places over a rolling window; the
backend trains on (noised) copies of it; the persona model's input is exactly this order.
Each feature has a documented range; values are clipped to it, which also bounds what one
device can contribute to a fleet aggregate (the differential-privacy sensitivity).
``docs/features.md`` is generated from ``FEATURES`` and checked by a test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ._categories import CATEGORIES
from ._location import haversine_m

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "MICROCONVERSIONS",
    "SCHEMA_VERSION",
    "TIME_OF_DAY",
    "Activity",
    "Feature",
    "StaySpan",
    "feature_vector",
    "time_of_day",
]

SCHEMA_VERSION = 1
# Named events for microconversions that features count (track_event takes any name).
MICROCONVERSIONS = (
    "view",
    "add_to_cart",
    "purchase",
    "offer_shown",
    "offer_accepted",
    "offer_dismissed",
)

# Local-time buckets of the day: (name, first hour, end hour).
TIME_OF_DAY = (
    ("night", 0, 6),
    ("morning", 6, 10),
    ("midday", 10, 14),
    ("afternoon", 14, 18),
    ("evening", 18, 22),
    ("late", 22, 24),
)
_BUCKET_OF_HOUR = tuple(
    next(i for i, (_, lo, hi) in enumerate(TIME_OF_DAY) if lo <= hour < hi) for hour in range(24)
)
MOVING_GAP_MAX_S = 3 * 3600  # a gap between stays longer than this is "unknown", not travel
# Conversion rates from a handful of events say little: one view and one purchase on a
# first day is not a 100% conversion rate. Pseudo-counts pull small samples towards 0, and
# weekly rates are not extrapolated from less than a week.
RATE_PSEUDO_COUNT = 3.0
MIN_WEEK_DAYS = 7


class Feature(NamedTuple):
    name: str
    low: float
    high: float
    description: str


FEATURES: tuple[Feature, ...] = (
    *(
        Feature(
            f"tod_{name}", 0.0, 1.0, f"share of app foreground time {lo:02d}:00-{hi:02d}:00 local"
        )
        for name, lo, hi in TIME_OF_DAY
    ),
    Feature("weekend_share", 0.0, 1.0, "share of app foreground time on Saturday and Sunday"),
    Feature("place_home", 0.0, 1.0, "share of located time spent at home"),
    Feature("place_work", 0.0, 1.0, "share of located time spent at work"),
    Feature("place_other", 0.0, 1.0, "share of located time spent at other places"),
    Feature("place_moving", 0.0, 1.0, "share of located time spent between places"),
    Feature("distinct_places", 0.0, 50.0, "distinct places stayed at in the window"),
    Feature(
        "radius_of_gyration_km", 0.0, 50.0, "spread of stays around their dwell-weighted centre"
    ),
    *(
        Feature(f"app_{category}", 0.0, 1.0, f"share of app foreground time in {category} apps")
        for category in CATEGORIES
    ),
    Feature(
        "sessions_per_day", 0.0, 100.0, "app sessions (foreground runs split by 5-minute gaps)"
    ),
    Feature("session_minutes", 0.0, 240.0, "mean length of an app session, minutes"),
    Feature("app_hours_per_day", 0.0, 24.0, "app foreground hours per observed day"),
    Feature("view_to_cart", 0.0, 1.0, "add_to_cart events per view event"),
    Feature("cart_to_purchase", 0.0, 1.0, "purchase events per add_to_cart event"),
    Feature("offer_accept_rate", 0.0, 1.0, "offer_accepted events per offer_shown event"),
    Feature("purchases_per_week", 0.0, 50.0, "purchase events per observed week"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)


def time_of_day(hour: int) -> str:
    """The name of the local time-of-day bucket of ``hour`` (0-23)."""
    return TIME_OF_DAY[_BUCKET_OF_HOUR[hour]][0]


@dataclass
class Activity:
    """Sums over the window from the rollups; built by ``_activity.ActivityWindow``."""

    days: int = 0  # local days with any signal
    tod_seconds: list[float] = field(default_factory=lambda: [0.0] * len(TIME_OF_DAY))
    weekend_seconds: float = 0.0
    category_seconds: dict[str, float] = field(default_factory=dict)
    sessions: int = 0
    session_seconds: float = 0.0
    events: dict[str, float] = field(default_factory=dict)


class StaySpan(NamedTuple):
    start: float
    end: float
    lat: float
    lon: float
    place_id: int


def feature_vector(
    activity: Activity,
    stays: Sequence[StaySpan],
    labels: Mapping[int, str],
) -> tuple[float, ...]:
    """The schema-ordered vector, each value clipped to its range. Pure.

    ``stays`` are the window's stays in time order; ``labels`` map place ids to
    ``home``/``work``/``other``.
    """
    app_seconds = sum(activity.category_seconds.values())
    days = max(activity.days, 1)
    events = activity.events
    values: list[float] = [_share(s, app_seconds) for s in activity.tod_seconds]
    values.append(_share(activity.weekend_seconds, app_seconds))
    values.extend(_place_shares(stays, labels))
    values.append(float(len({s.place_id for s in stays})))
    values.append(_radius_of_gyration_km(stays))
    values.extend(_share(activity.category_seconds.get(c, 0.0), app_seconds) for c in CATEGORIES)
    values.append(activity.sessions / days)
    values.append(activity.session_seconds / 60 / activity.sessions if activity.sessions else 0.0)
    values.append(app_seconds / 3600 / days)
    values.append(_rate(events.get("add_to_cart", 0.0), events.get("view", 0.0)))
    values.append(_rate(events.get("purchase", 0.0), events.get("add_to_cart", 0.0)))
    values.append(_rate(events.get("offer_accepted", 0.0), events.get("offer_shown", 0.0)))
    values.append(events.get("purchase", 0.0) * 7 / max(days, MIN_WEEK_DAYS))
    return tuple(_clip(v, f) for v, f in zip(values, FEATURES, strict=True))


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _rate(successes: float, trials: float) -> float:
    return successes / (trials + RATE_PSEUDO_COUNT)


def _clip(value: float, feature: Feature) -> float:
    if math.isnan(value):
        return feature.low
    return min(max(value, feature.low), feature.high)


def _place_shares(stays: Sequence[StaySpan], labels: Mapping[int, str]) -> list[float]:
    seconds = {"home": 0.0, "work": 0.0, "other": 0.0, "moving": 0.0}
    previous_end: float | None = None
    for stay in stays:
        seconds[labels.get(stay.place_id, "other")] += max(stay.end - stay.start, 0.0)
        if previous_end is not None and 0 < stay.start - previous_end <= MOVING_GAP_MAX_S:
            seconds["moving"] += stay.start - previous_end
        previous_end = stay.end
    total = sum(seconds.values())
    return [_share(seconds[k], total) for k in ("home", "work", "other", "moving")]


def _radius_of_gyration_km(stays: Iterable[StaySpan]) -> float:
    weighted = [(max(s.end - s.start, 1.0), s.lat, s.lon) for s in stays]
    total = sum(w for w, _, _ in weighted)
    if total <= 0:
        return 0.0
    lat = sum(w * la for w, la, _ in weighted) / total
    lon = sum(w * lo for w, _, lo in weighted) / total
    spread = sum(w * haversine_m(la, lo, lat, lon) ** 2 for w, la, lo in weighted) / total
    return math.sqrt(spread) / 1000


def schema_markdown() -> str:
    """``docs/features.md``: the schema as a table (a test keeps the file in step)."""
    lines = [
        f"# Feature schema v{SCHEMA_VERSION}",
        "",
        "The persona model's input, computed on the device by `edgepersona.sdk.features` from",
        "its rollups and places over a rolling window (28 local days by default), and the only",
        "per-user data a device ever uploads (clipped to these ranges, then noised). Generated",
        "from `FEATURES`: run `python -m edgepersona.sdk.features > docs/features.md`.",
        "",
        "| # | name | range | meaning |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {i} | `{f.name}` | {f.low:g} .. {f.high:g} | {f.description} |"
        for i, f in enumerate(FEATURES)
    ]
    lines += [
        "",
        "Time-of-day buckets are local time. Place shares divide the time at stays (home, work,",
        "other) and between stays (moving; gaps over 3 h are unknown, not travel) by their sum.",
        "Per-day rates divide by observed days (days with any signal); purchases per week by",
        f"at least {MIN_WEEK_DAYS} days; conversion rates add {RATE_PSEUDO_COUNT:g} to their",
        "denominator so a handful of events does not read as a 100% rate. Every value is",
        "clipped to its range.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_markdown(), end="")
