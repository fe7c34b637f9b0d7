"""The upload payload validator, rule by rule (table-driven) and by property."""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepersona.backend.errors import PayloadError
from edgepersona.backend.payload import (
    FEATURE_BOUNDS,
    MAX_OUTCOMES,
    PAYLOAD_KEYS,
    Outcome,
    Upload,
    validate_upload,
)
from edgepersona.sdk.features import FEATURES
from edgepersona.sdk.privacy import BAND_SCALES, MIN_EPSILON, feature_band, feature_noise_scale

from ..conftest import T0
from .conftest import valid_payload

N = len(FEATURES)
MID = [(f.low + f.high) / 2 for f in FEATURES]


def outcome(**overrides: Any) -> dict[str, Any]:
    return {"offer": "o", "accepted": 1.0, "dismissed": 0.0, **overrides}


def features_with(index: int, value: object) -> list[object]:
    values: list[object] = list(MID)
    values[index] = value
    return values


def without(key: str) -> dict[str, Any]:
    payload = valid_payload()
    del payload[key]
    return payload


LOW0, HIGH0 = FEATURE_BOUNDS[0]
# (payload, the path the error names, a fragment of its message)
REFUSED: dict[str, tuple[object, str, str]] = {
    "body is an array": ([], "payload", "expected a JSON object, got an array"),
    "body is a string": ("{}", "payload", "got a string"),
    "body is null": (None, "payload", "got null"),
    "unknown key": ({**valid_payload(), "gps": [52.5, 13.4]}, "payload", "unknown key 'gps'"),
    **{f"missing {key}": (without(key), "payload", f"'{key}' is missing") for key in PAYLOAD_KEYS},
    "upload_id short": (valid_payload(upload_id="a" * 31), "upload_id", "32 lowercase hex"),
    "upload_id long": (valid_payload(upload_id="a" * 33), "upload_id", "not valid"),
    "upload_id upper": (valid_payload(upload_id="A" * 32), "upload_id", "not valid"),
    "upload_id not hex": (valid_payload(upload_id="g" * 32), "upload_id", "not valid"),
    "upload_id newline": (valid_payload(upload_id="a" * 32 + "\n"), "upload_id", "not valid"),
    "upload_id number": (valid_payload(upload_id=123), "upload_id", "expected a string"),
    "schema_version 2": (valid_payload(schema_version=2), "schema_version", "not supported"),
    "schema_version 0": (valid_payload(schema_version=0), "schema_version", "accepted: 1"),
    "schema_version text": (valid_payload(schema_version="1"), "schema_version", "whole number"),
    "schema_version float": (valid_payload(schema_version=1.0), "schema_version", "whole"),
    "schema_version bool": (valid_payload(schema_version=True), "schema_version", "boolean"),
    "week lowercase": (valid_payload(week="2026-w10"), "week", "ISO week"),
    "week one digit": (valid_payload(week="2026-W1"), "week", "ISO week"),
    "week padded": (valid_payload(week=" 2026-W10"), "week", "ISO week"),
    "week unicode digits": (valid_payload(week="\uff12\uff10\uff12\uff16-W10"), "week", "ISO week"),
    "week zero": (valid_payload(week="2026-W00"), "week", "does not exist"),
    "week 53 of a 52-week year": (valid_payload(week="2025-W53"), "week", "does not exist"),
    "week after next": (valid_payload(week="2026-W12"), "week", "in the future"),
    "week next year": (valid_payload(week="2027-W10"), "week", "in the future"),
    "week over a year old": (valid_payload(week="2025-W09"), "week", "too old"),
    "week a date": (valid_payload(week="2026-03-02"), "week", "ISO week"),
    "week number": (valid_payload(week=202610), "week", "expected a string"),
    "features object": (valid_payload(features={"a": 1}), "features", "expected an array"),
    "features short": (valid_payload(features=MID[:-1]), "features", f"exactly {N}"),
    "features long": (valid_payload(features=[*MID, 0.5]), "features", f"has {N + 1} values"),
    "features empty": (valid_payload(features=[]), "features", "has 0 values"),
    "feature string": (valid_payload(features=features_with(3, "0.5")), "features[3]", "number"),
    "feature null": (valid_payload(features=features_with(0, None)), "features[0]", "null"),
    "feature bool": (valid_payload(features=features_with(1, True)), "features[1]", "boolean"),
    "feature nested": (valid_payload(features=features_with(2, [0.5])), "features[2]", "array"),
    "feature NaN": (valid_payload(features=features_with(4, math.nan)), "features[4]", "finite"),
    "feature inf": (valid_payload(features=features_with(5, math.inf)), "features[5]", "finite"),
    "feature huge int": (valid_payload(features=features_with(6, 10**400)), "features[6]", "large"),
    "feature below band": (
        valid_payload(features=features_with(0, LOW0 - 0.001)),
        "features[0]",
        f"{FEATURES[0].name} is",
    ),
    "feature above band": (
        valid_payload(features=features_with(0, HIGH0 + 0.001)),
        "features[0]",
        "plus room for noise",
    ),
    "epsilon zero": (valid_payload(epsilon=0), "epsilon", "accepted: 0.1 to 10.0"),
    "epsilon below the floor": (valid_payload(epsilon=0.0999), "epsilon", "out of range"),
    "epsilon negative": (valid_payload(epsilon=-1.0), "epsilon", "out of range"),
    "epsilon over 10": (valid_payload(epsilon=10.0001), "epsilon", "out of range"),
    "epsilon text": (valid_payload(epsilon="1"), "epsilon", "expected a number"),
    "epsilon NaN": (valid_payload(epsilon=math.nan), "epsilon", "finite"),
    "epsilon -inf": (valid_payload(epsilon=-math.inf), "epsilon", "finite"),
    "epsilon bool": (valid_payload(epsilon=True), "epsilon", "boolean"),
    "mechanism case": (valid_payload(mechanism="Laplace"), "mechanism", "laplace, gaussian"),
    "mechanism other": (valid_payload(mechanism="exponential"), "mechanism", "not a noise"),
    "mechanism null": (valid_payload(mechanism=None), "mechanism", "null"),
    "mechanism list": (valid_payload(mechanism=["laplace"]), "mechanism", "an array"),
    "model_version negative": (valid_payload(model_version=-1), "model_version", "0 to"),
    "model_version over 32 bits": (valid_payload(model_version=2**31), "model_version", "range"),
    "model_version float": (valid_payload(model_version=1.5), "model_version", "whole number"),
    "model_version 1.0": (valid_payload(model_version=1.0), "model_version", "whole number"),
    "model_version text": (valid_payload(model_version="3"), "model_version", "a string"),
    "outcomes object": (valid_payload(outcomes={}), "outcomes", "expected an array"),
    "outcomes too many": (
        valid_payload(outcomes=[outcome(offer=f"o{i}") for i in range(MAX_OUTCOMES + 1)]),
        "outcomes",
        f"at most {MAX_OUTCOMES}",
    ),
    "outcome not object": (valid_payload(outcomes=[1]), "outcomes[0]", "a number"),
    "outcome unknown key": (
        valid_payload(outcomes=[outcome(user="alice")]),
        "outcomes[0]",
        "unknown key 'user'",
    ),
    "outcome missing key": (
        valid_payload(outcomes=[{"offer": "o", "accepted": 1.0}]),
        "outcomes[0]",
        "'dismissed' is missing",
    ),
    "persona empty": (valid_payload(persona=""), "persona", "id"),
    "persona long": (valid_payload(persona="p" * 65), "persona", "1-64"),
    "persona space": (valid_payload(persona="a b"), "persona", ""),
    "persona number": (valid_payload(persona=7), "persona", "number"),
    "persona in an outcome": (
        valid_payload(outcomes=[outcome(persona="p")]),
        "outcomes[0]",
        "unknown key 'persona'",
    ),
    "offer slash": (valid_payload(outcomes=[outcome(offer="a/b")]), "outcomes[0].offer", "not an"),
    "offer null": (valid_payload(outcomes=[outcome(offer=None)]), "outcomes[0].offer", "null"),
    "accepted text": (
        valid_payload(outcomes=[outcome(accepted="1")]),
        "outcomes[0].accepted",
        "expected a number",
    ),
    "accepted NaN": (
        valid_payload(outcomes=[outcome(accepted=math.nan)]),
        "outcomes[0].accepted",
        "finite",
    ),
    "accepted too large": (
        valid_payload(outcomes=[outcome(accepted=10_000.5)]),
        "outcomes[0].accepted",
        "-10000 to 10000",
    ),
    "dismissed too negative": (
        valid_payload(outcomes=[outcome(), outcome(offer="x", dismissed=-10_001)]),
        "outcomes[1].dismissed",
        "out of range",
    ),
    # Float counts just past each end: the common shape, checked in one pass first.
    "accepted too negative": (
        valid_payload(outcomes=[outcome(accepted=-10_000.5)]),
        "outcomes[0].accepted",
        "out of range",
    ),
    "dismissed too large": (
        valid_payload(outcomes=[outcome(), outcome(offer="x", dismissed=10_000.5)]),
        "outcomes[1].dismissed",
        "out of range",
    ),
    "dismissed float too negative": (
        valid_payload(outcomes=[outcome(), outcome(offer="x", dismissed=-10_000.5)]),
        "outcomes[1].dismissed",
        "out of range",
    ),
    "outcome twice": (
        valid_payload(outcomes=[outcome(), outcome(accepted=3.0)]),
        "outcomes[1]",
        "appears twice",
    ),
    "sdk_version empty": (valid_payload(sdk_version=""), "sdk_version", "1-32"),
    "sdk_version long": (valid_payload(sdk_version="1" * 33), "sdk_version", "not valid"),
    "sdk_version space": (valid_payload(sdk_version="1.0 beta"), "sdk_version", "not valid"),
    "sdk_version number": (valid_payload(sdk_version=1), "sdk_version", "expected a string"),
}


@pytest.mark.parametrize(("body", "path", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_each_rule_refuses_with_the_place_and_a_sentence(
    body: object, path: str, fragment: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        validate_upload(body, T0)
    assert caught.value.path == path
    assert fragment in str(caught.value)
    assert caught.value.field in (*PAYLOAD_KEYS, "payload")


ACCEPTED: dict[str, dict[str, Any]] = {
    "typical": valid_payload(),
    "next week": valid_payload(week="2026-W11"),
    "52 weeks back": valid_payload(week="2025-W10"),
    "features at the band edges": valid_payload(
        features=[low if i % 2 else high for i, (low, high) in enumerate(FEATURE_BOUNDS)]
    ),
    "integer features": valid_payload(features=[int(f.low) for f in FEATURES]),
    "epsilon at the maximum": valid_payload(epsilon=10),
    "smallest epsilon": valid_payload(epsilon=0.1),
    "gaussian": valid_payload(mechanism="gaussian"),
    "model_version 0": valid_payload(model_version=0),
    "model_version at 32 bits": valid_payload(model_version=2**31 - 1),
    "no outcomes": valid_payload(outcomes=[]),
    "most outcomes": valid_payload(outcomes=[outcome(offer=f"o{i}") for i in range(200)]),
    "negative noised counts": valid_payload(outcomes=[outcome(accepted=-10_000, dismissed=-0.5)]),
    "id characters": valid_payload(persona="a.B_c:d-9", outcomes=[outcome(offer="X" * 64)]),
    "build metadata": valid_payload(sdk_version="1.2.3+dev-4"),
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_edges_of_each_rule_are_accepted(body: dict[str, Any]) -> None:
    upload = validate_upload(body, T0)
    assert upload.upload_id == body["upload_id"]
    assert upload.features == tuple(float(v) for v in body["features"])
    assert len(upload.outcomes) == len(body["outcomes"])


def test_week_53_is_accepted_in_a_year_that_has_one() -> None:
    late_december_2026 = T0 + 301 * 86_400  # Monday 2026-12-28
    assert validate_upload(valid_payload(week="2026-W53"), late_december_2026).week == "2026-W53"


def test_the_weeks_accepted_on_each_day_are_the_calendar_rule() -> None:
    # Every UTC day over two year ends (ISO years of 52 and 53 weeks), at both ends of the
    # day: exactly the weeks from 52 weeks ago up to next week are accepted.
    first = dt.date(2025, 12, 1)
    for day in range(420):
        today = first + dt.timedelta(days=day)
        this_monday = today - dt.timedelta(days=today.weekday())
        midnight = dt.datetime.combine(today, dt.time(), dt.timezone.utc).timestamp()
        for now in (midnight, midnight + 86_399.999):
            for weeks in range(-56, 4):
                monday = this_monday + dt.timedelta(weeks=weeks)
                year, number, _ = monday.isocalendar()
                body = valid_payload(week=f"{year:04d}-W{number:02d}")
                if -52 <= weeks <= 1:
                    assert validate_upload(body, now).week == body["week"]
                else:
                    with pytest.raises(PayloadError, match="week"):
                        validate_upload(body, now)


def test_the_band_holds_the_sdk_noise_at_the_smallest_epsilon() -> None:
    reach = math.ceil(BAND_SCALES * feature_noise_scale(MIN_EPSILON))
    for feature, (low, high) in zip(FEATURES, FEATURE_BOUNDS, strict=True):
        width = feature.high - feature.low
        assert low == pytest.approx(feature.low - reach * width)
        assert high == pytest.approx(feature.high + reach * width)
    # wider than the band at any larger epsilon: an honest device is never refused
    for (low, high), (lo1, hi1) in zip(FEATURE_BOUNDS, feature_band(1.0), strict=True):
        assert low < lo1 < hi1 < high


# Properties ---------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
outcomes = st.lists(
    st.builds(
        outcome,
        offer=ids,
        accepted=st.floats(-1e4, 1e4),
        dismissed=st.floats(-1e4, 1e4),
    ),
    max_size=8,  # the upper bound of MAX_OUTCOMES is a table case; a few keep examples fast
    unique_by=lambda o: o["offer"],
)
payloads = st.builds(
    valid_payload,
    upload_id=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    week=st.sampled_from(["2025-W10", "2025-W30", "2025-W52", "2026-W01", "2026-W10", "2026-W11"]),
    features=st.tuples(*(st.floats(low, high) for low, high in FEATURE_BOUNDS)).map(list),
    epsilon=st.floats(0.1, 10),
    mechanism=st.sampled_from(["laplace", "gaussian"]),
    model_version=st.integers(0, 2**31 - 1),
    persona=ids,
    outcomes=outcomes,
    sdk_version=st.from_regex(r"[A-Za-z0-9_.+-]{1,32}", fullmatch=True),
)
json_values = st.recursive(
    st.none() | st.booleans() | finite | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(payloads)
def test_every_valid_payload_comes_back_field_for_field(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    upload = validate_upload(body, T0)
    assert body == before  # pure: the input is not touched
    assert upload == Upload(
        upload_id=body["upload_id"],
        schema_version=1,
        week=body["week"],
        features=tuple(body["features"]),
        epsilon=body["epsilon"],
        mechanism=body["mechanism"],
        model_version=body["model_version"],
        persona=body["persona"],
        outcomes=tuple(Outcome(**o) for o in body["outcomes"]),
        sdk_version=body["sdk_version"],
    )


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_body_is_refused_with_a_payload_error(body: object) -> None:
    with pytest.raises(PayloadError):
        validate_upload(body, T0)


@settings(max_examples=100, deadline=None)
@given(payloads, st.sampled_from(PAYLOAD_KEYS), json_values)
def test_one_field_replaced_by_anything_is_the_field_refused(
    body: dict[str, Any], key: str, value: object
) -> None:
    body[key] = value
    try:
        validate_upload(body, T0)
    except PayloadError as exc:
        refused: PayloadError | None = exc
    else:
        refused = None  # the value happened to be valid for that field
    assert refused is None or (refused.field == key and refused.path.startswith(key))


@settings(max_examples=100, deadline=None)
@given(payloads, st.integers(0, N - 1), st.booleans(), st.floats(1e-6, 1e6))
def test_a_feature_outside_its_band_is_refused_by_index(
    body: dict[str, Any], index: int, above: bool, excess: float
) -> None:
    low, high = FEATURE_BOUNDS[index]
    body["features"][index] = high + excess if above else low - excess
    with pytest.raises(PayloadError) as caught:
        validate_upload(body, T0)
    assert caught.value.path == f"features[{index}]"


@settings(max_examples=50, deadline=None)
@given(payloads, st.text(min_size=1, max_size=20).filter(lambda k: k not in PAYLOAD_KEYS))
def test_no_extra_key_gets_through(body: dict[str, Any], key: str) -> None:
    body[key] = "smuggled"
    with pytest.raises(PayloadError, match="unknown key"):
        validate_upload(body, T0)
