"""Small value types the public API returns."""

from __future__ import annotations

from typing import NamedTuple


class LocalTime(NamedTuple):
    """A moment in the user's local time; time-of-day features are computed from these."""

    ts: float  # Unix seconds, UTC
    zone: str  # the zone's name as given, or the system's abbreviation
    utc_offset_s: int
    iso: str  # ISO-8601 with offset
    hour: int
    minute: int
    weekday: int  # 0 = Monday
    is_weekend: bool


class Moment(NamedTuple):
    """Where the user is in their day, as the device sees it now (``EdgePersona.context()``).

    ``place`` is ``home``, ``work``, ``other``, ``moving`` (fixes but no stay) or ``unknown``
    (no fix in the last 30 minutes). Derived from committed signals: at most
    ``flush_interval_s`` behind.
    """

    ts: float
    local_time: str  # ISO-8601 with offset
    hour: int
    time_of_day: str  # night, morning, midday, afternoon, evening, late
    weekday: int  # 0 = Monday
    is_weekend: bool
    place: str
    place_id: int | None
    dwell_s: float | None  # time at the current place so far
    moving: bool
    recent_app_category: str | None  # category of the foreground app in the last 15 minutes

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


class PersonaEstimate(NamedTuple):
    """Who the device thinks this user is (``EdgePersona.persona()``)."""

    id: str
    name: str
    probabilities: dict[str, float]  # persona id -> probability, after the user's corrections
    traits: tuple[str, ...]  # features where this persona stands out, "+name" / "-name"
    model_version: int
    rejected: tuple[str, ...]  # personas the user said are "not me"


class Decision(NamedTuple):
    """What ``EdgePersona.decide()`` chose for a surface, and why."""

    id: str
    surface: str
    personalized: bool  # False without personalization consent or without a usable model
    persona: str | None
    probabilities: dict[str, float]
    variant: str
    layout: dict[str, object]  # the variant's layout from the playbook (theme, cards...)
    offers: tuple[str, ...]  # eligible offers, best first (as given, when not personalized)
    reasons: tuple[str, ...]  # sentences a person can read
    model_version: int | None
    propensity: float | None  # probability the policy put offers[0] first (for evaluation)
    moment: Moment
