"""The upload payload (v1) and its validator: a pure function from parsed JSON to an ``Upload``.

A device sends one payload per week: its noised feature vector and noised offer outcome counts.
Every field is checked here, before anything touches the database, and the first problem is
reported with its exact place (``outcomes[3].offer``) so an SDK developer can fix it. Unknown
keys are refused at every level: a device must not be able to smuggle extra data through.
``docs/backend.md`` documents the same rules field by field.

Feature ranges: the device clips each feature to its documented range and then adds Laplace
noise (``edgepersona.sdk.privacy``), so an honest value usually falls far outside the range.
Values are accepted within ``FEATURE_BOUNDS``: the band the SDK clamps into at the smallest
epsilon it may use, which an honest value leaves with probability below e^-20. The band is
that wide because local noise is; what bounds one device's pull on a fleet statistic is the
retraining's weighting, not this check. A value beyond the band is garbage or an attack.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION
from edgepersona.sdk.privacy import MAX_EPSILON, MIN_EPSILON, feature_band

from .errors import PayloadError

__all__ = [
    "FEATURE_BOUNDS",
    "MAX_COUNT",
    "MAX_EPSILON",
    "MAX_OUTCOMES",
    "MECHANISMS",
    "MIN_EPSILON",
    "OUTCOME_KEYS",
    "PAYLOAD_KEYS",
    "Outcome",
    "Upload",
    "validate_upload",
]

PAYLOAD_KEYS = (
    "upload_id",
    "schema_version",
    "week",
    "features",
    "epsilon",
    "mechanism",
    "model_version",
    "persona",
    "outcomes",
    "sdk_version",
)
OUTCOME_KEYS = ("offer", "accepted", "dismissed")
MECHANISMS = ("laplace", "gaussian")
FEATURE_BOUNDS = feature_band(MIN_EPSILON)
MAX_OUTCOMES = 200
MAX_COUNT = 1e4  # noised counts may be negative: the bound is on the magnitude
MAX_INT = 2**31 - 1  # fits a 32-bit INTEGER column on every database
MAX_WEEKS_BACK = 52

_KEY_SETS: dict[tuple[str, ...], frozenset[str]] = {
    keys: frozenset(keys) for keys in (PAYLOAD_KEYS, OUTCOME_KEYS)
}
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SDK_VERSION = re.compile(r"[A-Za-z0-9_.+-]{1,32}")


@dataclass(frozen=True)
class Outcome:
    """Noised counts of how the device answered one offer during the week."""

    offer: str
    accepted: float
    dismissed: float


@dataclass(frozen=True)
class Upload:
    """A validated payload: every value has its documented type and range."""

    upload_id: str
    schema_version: int
    week: str
    features: tuple[float, ...]
    epsilon: float
    mechanism: str
    model_version: int
    persona: str  # the device's persona, through randomized response
    outcomes: tuple[Outcome, ...]
    sdk_version: str


def validate_upload(body: object, now: float) -> Upload:
    """The ``Upload`` in ``body`` (parsed JSON), checked against the clock ``now`` (Unix s).

    Raises ``PayloadError`` naming the first field that breaks a rule. Pure: reads nothing
    but its arguments and never changes ``body``.
    """
    fields = _object("payload", "payload", body, PAYLOAD_KEYS)
    return Upload(
        upload_id=_matching("upload_id", fields["upload_id"], _UPLOAD_ID, "32 lowercase hex"),
        schema_version=_schema_version(fields["schema_version"]),
        week=_week(fields["week"], now),
        features=_features(fields["features"]),
        epsilon=_epsilon(fields["epsilon"]),
        mechanism=_mechanism(fields["mechanism"]),
        model_version=_integer("model_version", "model_version", fields["model_version"]),
        persona=_id("persona", "persona", fields["persona"]),
        outcomes=_outcomes(fields["outcomes"]),
        sdk_version=_matching(
            "sdk_version", fields["sdk_version"], _SDK_VERSION, "1-32 of A-Z a-z 0-9 _ . + -"
        ),
    )


def _object(field: str, path: str, value: object, keys: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise PayloadError(field, path, f"expected a JSON object, got {_kind(value)}")
    if value.keys() == _KEY_SETS[keys]:
        return value
    for key in value:
        if key not in keys:
            raise PayloadError(
                field, path, f"unknown key {key!r:.40}; accepted keys: {', '.join(keys)}"
            )
    for key in keys:
        if key not in value:
            raise PayloadError(
                field, path, f"{key!r} is missing; every one of {', '.join(keys)} is required"
            )
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _number(field: str, path: str, value: object) -> float:
    if type(value) is float and math.isfinite(value):  # nearly every number, checked first
        return value
    # bool is an int subclass, but true is not 1.0 epsilon: it is a bug in the sender.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(field, path, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(field, path, "the number is too large") from None
    if not math.isfinite(number):
        raise PayloadError(field, path, f"expected a finite number, got {number}")
    return number


def _integer(field: str, path: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(field, path, f"expected a whole number, got {_kind(value)}")
    if not 0 <= value <= MAX_INT:
        raise PayloadError(field, path, f"{value!s:.20} is out of range; accepted: 0 to {MAX_INT}")
    return value


def _matching(field: str, value: object, pattern: re.Pattern[str], accepted: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(field, field, f"expected a string, got {_kind(value)}")
    if not pattern.fullmatch(value):
        raise PayloadError(field, field, f"{value!r:.80} is not valid; accepted: {accepted}")
    return value


def _schema_version(value: object) -> int:
    version = _integer("schema_version", "schema_version", value)
    if version != SCHEMA_VERSION:
        raise PayloadError(
            "schema_version",
            "schema_version",
            f"feature schema version {version} is not supported; accepted: {SCHEMA_VERSION}",
        )
    return version


def _week(value: object, now: float) -> str:
    if type(value) is str and value in _weeks_open_on(int(now // 86_400)):
        return value
    accepted = "an ISO week YYYY-Www from 52 weeks ago up to next week"
    week = _matching("week", value, _WEEK, accepted)
    year, number = int(week[:4]), int(week[6:])
    try:
        monday = dt.date.fromisocalendar(year, number, 1)
    except ValueError:
        raise PayloadError("week", "week", f"{week} does not exist; accepted: {accepted}") from None
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    this_monday = today - dt.timedelta(days=today.weekday())
    if monday > this_monday + dt.timedelta(weeks=1):
        raise PayloadError("week", "week", f"{week} is in the future; accepted: {accepted}")
    if monday < this_monday - dt.timedelta(weeks=MAX_WEEKS_BACK):
        raise PayloadError("week", "week", f"{week} is too old; accepted: {accepted}")
    return week


@functools.lru_cache(maxsize=2)
def _weeks_open_on(day: int) -> frozenset[str]:
    """The weeks an upload may name on UTC day ``day`` (days since 1970-01-01), as ``_week``
    spells them: from ``MAX_WEEKS_BACK`` weeks ago up to next week. Worked out once a day
    rather than from the calendar at every upload."""
    today = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    this_monday = today - dt.timedelta(days=today.weekday())
    mondays = (this_monday + dt.timedelta(weeks=k) for k in range(-MAX_WEEKS_BACK, 2))
    return frozenset(
        f"{year:04d}-W{week:02d}" for year, week, _ in map(dt.date.isocalendar, mondays)
    )


def _features(value: object) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise PayloadError("features", "features", f"expected an array, got {_kind(value)}")
    if len(value) != len(FEATURES):
        raise PayloadError(
            "features",
            "features",
            f"has {len(value)} values; accepted: exactly {len(FEATURES)} "
            f"(feature schema v{SCHEMA_VERSION}, in docs/features.md order)",
        )
    # Nearly every upload: finite floats, each in its band (NaN fails the comparison).
    bands = zip(value, FEATURE_BOUNDS, strict=True)  # lengths checked above
    if all(type(x) is float and low <= x <= high for x, (low, high) in bands):
        return tuple(value)
    numbers = []  # ints are numbers too; otherwise this finds the first bad value
    for i, (item, feature, (low, high)) in enumerate(
        zip(value, FEATURES, FEATURE_BOUNDS, strict=True)
    ):
        path = f"features[{i}]"
        number = _number("features", path, item)
        if not low <= number <= high:
            raise PayloadError(
                "features",
                path,
                f"{feature.name} is {number}; accepted: {low} to {high} "
                f"(its range {feature.low} to {feature.high} plus room for noise)",
            )
        numbers.append(number)
    return tuple(numbers)


def _epsilon(value: object) -> float:
    epsilon = _number("epsilon", "epsilon", value)
    if not MIN_EPSILON <= epsilon <= MAX_EPSILON:
        raise PayloadError(
            "epsilon",
            "epsilon",
            f"{epsilon} is out of range; accepted: {MIN_EPSILON} to {MAX_EPSILON}",
        )
    return epsilon


def _mechanism(value: object) -> str:
    if value not in MECHANISMS:
        shown = f"{value!r:.40}" if isinstance(value, str) else _kind(value)
        raise PayloadError(
            "mechanism",
            "mechanism",
            f"{shown} is not a noise mechanism; accepted: laplace, gaussian",
        )
    return str(value)


def _outcomes(value: object) -> tuple[Outcome, ...]:
    if not isinstance(value, list):
        raise PayloadError("outcomes", "outcomes", f"expected an array, got {_kind(value)}")
    if len(value) > MAX_OUTCOMES:
        raise PayloadError(
            "outcomes", "outcomes", f"has {len(value)} entries; accepted: at most {MAX_OUTCOMES}"
        )
    # Nearly every upload: float counts in range and distinct well-formed offers, checked in
    # one pass; anything else goes through the checks below, which name the first problem.
    keys = _KEY_SETS[OUTCOME_KEYS]
    if all(
        type(item) is dict
        and item.keys() == keys
        and type(item["offer"]) is str
        and _ID.fullmatch(item["offer"])
        and type(item["accepted"]) is float
        and -MAX_COUNT <= item["accepted"] <= MAX_COUNT
        and type(item["dismissed"]) is float
        and -MAX_COUNT <= item["dismissed"] <= MAX_COUNT
        for item in value
    ) and len({item["offer"] for item in value}) == len(value):
        return tuple(Outcome(item["offer"], item["accepted"], item["dismissed"]) for item in value)
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        outcome = _outcome(f"outcomes[{i}]", item)
        if outcome.offer in seen:
            raise PayloadError(
                "outcomes",
                f"outcomes[{i}]",
                f"offer {outcome.offer!r} appears twice; accepted: one entry per offer",
            )
        seen.add(outcome.offer)
        outcomes.append(outcome)
    return tuple(outcomes)


def _outcome(path: str, value: object) -> Outcome:
    fields = _object("outcomes", path, value, OUTCOME_KEYS)
    offer = _id("outcomes", f"{path}.offer", fields["offer"])
    counts = []
    for key in ("accepted", "dismissed"):
        count = _number("outcomes", f"{path}.{key}", fields[key])
        if not -MAX_COUNT <= count <= MAX_COUNT:
            raise PayloadError(
                "outcomes", f"{path}.{key}", f"{count} is out of range; accepted: -10000 to 10000"
            )
        counts.append(count)
    return Outcome(offer=offer, accepted=counts[0], dismissed=counts[1])


def _id(field: str, path: str, item: object) -> str:
    if not isinstance(item, str) or not _ID.fullmatch(item):
        shown = f"{item!r:.80}" if isinstance(item, str) else _kind(item)
        raise PayloadError(
            field, path, f"{shown} is not an id; accepted: 1-64 of A-Z a-z 0-9 _ . : -"
        )
    return item
