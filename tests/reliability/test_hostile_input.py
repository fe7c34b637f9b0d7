"""Hostile input to every public SDK entry point, the trace parser and the condition language.

Hypothesis throws NaN, infinities, huge and negative numbers and times, huge strings, lone
surrogates, control characters, wrong types and arbitrary objects at each call, mixed with
valid values so that the deeper code runs too. The only exceptions allowed are the documented
ones: the SDK's ``EdgePersonaError`` tree (whose signal and condition errors are also
``ValueError``), ``TypeError`` and ``ValueError``. Anything the SDK accepted must then be
committed (``flush()`` raises nothing, no write error is recorded) and ``export()`` must stay
valid JSON. A compiled condition must never raise while it runs. Every input tried is counted.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepersona.sdk import EdgePersona, EdgePersonaError, InvalidSignalError, ManualClock, replay
from edgepersona.sdk._conditions import compile_condition
from edgepersona.sdk._trace import signals

from ..conftest import T0
from .conftest import Figures

DEFAULT_BUNDLE = Path(__file__).parents[2] / "sdk" / "default_bundle"
ALLOWED = (EdgePersonaError, TypeError, ValueError)
EXAMPLES = 120
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\U0001d518\U0001d52b\U0001d526",
    "e\u0301" * 40,
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%n{0}",
    "com.whatsapp\n",
    "Europe/Paris",
    "Not/AZone",
    "UTC",
]
NASTY_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    2**63,
    -(2**63),
    2**1023,
    10**400,  # past the float range
    -1,
    T0 * 1000,
    -T0,
]
huge_text = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "\u00e9", "\U0001f600"]), st.integers(65, 300_000)
)
hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from(NASTY_NUMBERS),
    st.text(max_size=80),
    st.sampled_from(NASTY_TEXT),
    huge_text,
    st.binary(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.builds(object),
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid value two times in three (so deeper code runs), a hostile one otherwise."""
    # Not one_of(valid, valid, hostile): one_of flattens hostile's own branches.
    return st.integers(0, 2).flatmap(lambda pick: valid if pick else hostile)


times = maybe(st.floats(T0 - 30 * 86400, T0 + 3600) | st.none())
zones = maybe(st.sampled_from([None, "UTC", "Europe/Paris", "Asia/Kolkata"]))
names = maybe(st.sampled_from(["view", "add_to_cart", "home", "checkout"]))
apps = maybe(st.sampled_from(["com.whatsapp", "com.spotify.music", "org.example.app"]))
offer_ids = maybe(st.sampled_from(["coffee_to_go", "flash_sale", "free_shipping"]))
purposes = maybe(st.sampled_from(["personalization", "location", "sync"]))


ENTRY_POINTS: dict[str, tuple[Callable[..., object], st.SearchStrategy[tuple[Any, ...]]]] = {
    "track_app": (
        lambda sdk, app, ts, category, duration, tz: sdk.track_app(
            app, ts=ts, category=category, duration_s=duration, tz=tz
        ),
        st.tuples(apps, times, maybe(st.sampled_from([None, "social", "music"])), hostile, zones),
    ),
    "track_screen": (
        lambda sdk, name, ts, duration, tz: sdk.track_screen(
            name, ts=ts, duration_s=duration, tz=tz
        ),
        st.tuples(names, times, maybe(st.floats(0, 3600) | st.none()), zones),
    ),
    "track_event": (
        lambda sdk, name, value, ts, tz: sdk.track_event(name, value, ts=ts, tz=tz),
        st.tuples(names, maybe(st.floats(-1e6, 1e6) | st.none()), times, zones),
    ),
    "record_location": (
        lambda sdk, lat, lon, acc, speed, ts, tz: sdk.record_location(
            lat, lon, acc, speed, ts=ts, tz=tz
        ),
        st.tuples(
            maybe(st.floats(-90, 90)),
            maybe(st.floats(-180, 180)),
            maybe(st.floats(1, 500) | st.none()),
            maybe(st.floats(0, 60) | st.none()),
            times,
            zones,
        ),
    ),
    "local_time": (lambda sdk, ts, tz: sdk.local_time(ts, tz), st.tuples(times, zones)),
    "correct_place": (
        lambda sdk, label, lat, lon: sdk.correct_place(label, lat, lon),
        st.tuples(
            maybe(st.sampled_from(["home", "work"])),
            maybe(st.floats(-90, 90)),
            maybe(st.floats(-180, 180)),
        ),
    ),
    "reject_persona": (
        lambda sdk, persona: sdk.reject_persona(persona),
        st.tuples(maybe(st.sampled_from([None, "commuter", "homebody"]))),
    ),
    "decide": (
        lambda sdk, surface, offers: sdk.decide(surface, offers),
        st.tuples(
            maybe(st.sampled_from(["home", "checkout"])),
            maybe(st.lists(offer_ids, max_size=4)),
        ),
    ),
    "feedback": (
        lambda sdk, offer, outcome: sdk.feedback(
            sdk.decide("home", ["coffee_to_go", "flash_sale"]), offer, outcome
        ),
        st.tuples(offer_ids, maybe(st.sampled_from(["accepted", "dismissed"]))),
    ),
    "feedback_decision": (
        lambda sdk, decision: sdk.feedback(decision, "coffee_to_go", "accepted"),
        st.tuples(hostile),
    ),
    "consent": (
        lambda sdk, action, purpose: getattr(sdk.consent, action)(purpose),
        st.tuples(st.sampled_from(["grant", "revoke", "status"]), purposes),
    ),
    "on": (
        lambda sdk, condition, callback: sdk.on(condition, callback),
        st.tuples(
            maybe(st.sampled_from(["moment.place == 'work'", "features.x > 1", "true"])),
            maybe(st.just(lambda moment: None)),
        ),
    ),
    "start_location": (
        lambda sdk, policy, budget: sdk.start_location(policy, daily_budget=budget),
        st.tuples(
            maybe(st.sampled_from(["off", "responsive", "low_power"])),
            maybe(st.integers(1, 500) | st.none()),
        ),
    ),
    "daily_counts": (
        lambda sdk, days: sdk.daily_counts(days),
        st.tuples(maybe(st.integers(1, 400))),
    ),
    "use_bundle": (
        lambda sdk, path: sdk.use_bundle(path),
        st.tuples(maybe(st.sampled_from([DEFAULT_BUNDLE, str(DEFAULT_BUNDLE), "/nonexistent"]))),
    ),
}


@pytest.fixture
def device(tmp_path: Path) -> Iterator[EdgePersona]:
    """One device for all the examples of a test: hostile input accumulates, as in an app."""
    sdk = EdgePersona.open(tmp_path / "device", "com.example.shop", clock=ManualClock(T0), tz="UTC")
    for purpose in ("personalization", "location"):
        sdk.consent.grant(purpose)
    yield sdk
    sdk.close()


def survives(call: Callable[[], object]) -> bool:
    """Run ``call``; ``True`` if it was accepted, ``False`` if refused as documented."""
    try:
        call()
    except ALLOWED:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_hostile_input_only_as_documented(
    entry: str, device: EdgePersona, figures: Figures
) -> None:
    call, arguments = ENTRY_POINTS[entry]
    tried = accepted = 0

    @FUZZ
    @given(arguments)
    def fuzz(args: tuple[Any, ...]) -> None:
        nonlocal tried, accepted
        tried += 1
        accepted += survives(lambda: call(device, *args))
        device.flush()  # what was accepted can be committed
        assert device.stats()["last_write_error"] is None

    fuzz()
    json.dumps(device.export(), allow_nan=False)  # still a valid JSON document
    figures.add("hostile_input", "sdk_inputs_tried", tried)
    figures.add("hostile_input", "sdk_inputs_accepted", accepted)
    assert tried >= EXAMPLES // 2


@given(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(NASTY_TEXT),
        st.binary(max_size=20),
        st.integers(),
        st.none(),
        st.lists(st.text(max_size=5), max_size=2),
    ),
    st.one_of(st.none(), st.sampled_from(NASTY_TEXT), st.text(max_size=20)),
    st.one_of(st.none(), hostile, st.just("http://127.0.0.1:9"), st.just("ftp://x")),
    st.one_of(
        st.none(), hostile, st.just(b"\0" * 32), st.lists(st.binary(max_size=40), max_size=2)
    ),
)
@settings(max_examples=40, deadline=None, derandomize=True)
def test_open_refuses_hostile_arguments_only_as_documented(
    tmp_path_factory: pytest.TempPathFactory,
    figures: Figures,
    app_id: object,
    tz: object,
    backend_url: object,
    public_key: object,
) -> None:
    figures.add("hostile_input", "sdk_inputs_tried")
    data_dir = tmp_path_factory.mktemp("open")
    try:
        sdk = EdgePersona.open(
            data_dir,
            app_id,
            tz=tz,
            backend_url=backend_url,
            public_key=public_key,
            clock=ManualClock(T0),
        )
    except ALLOWED:
        return
    sdk.close()


KINDS = ["location", "app", "screen", "event", "teleport", ""]
cells = st.one_of(
    st.sampled_from(
        [
            *["", "nan", "inf", "-inf", "1e400", "1772438400", "2026-03-02T09:00:00+01:00"],
            *KINDS,
            *NASTY_TEXT,
        ]
    ),
    st.text(max_size=30),
    st.floats().map(repr),
)
csv_rows = st.lists(st.lists(cells, min_size=0, max_size=14), max_size=12)
HEADER = "ts,kind,lat,lon,accuracy_m,speed_mps,app,category,name,value,duration_s,tz"


def as_csv(rows: list[list[str]]) -> str:
    quoted = [",".join('"' + c.replace('"', '""') + '"' for c in row) for row in rows]
    return "\n".join([HEADER, *quoted]) + "\n"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=20)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
json_rows = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"ts": st.floats(T0 - 86400, T0) | json_values, "kind": st.sampled_from(KINDS)},
            optional={
                k: json_values
                for k in ("lat", "lon", "app", "name", "value", "duration_s", "tz", "category")
            },
        ),
        json_values,
    ),
    max_size=10,
)


@given(csv_rows, st.sampled_from([None, "UTC", "Europe/Paris"]))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_the_trace_parser_reports_bad_rows_and_never_crashes(
    figures: Figures, rows: list[list[str]], tz: str | None
) -> None:
    figures.add("hostile_input", "trace_inputs_tried")
    for _number, signal in signals(io.StringIO(as_csv(rows), newline=""), "csv", tz):
        assert isinstance(signal, str) or signal.kind in KINDS


@pytest.mark.slow
def test_replay_of_hostile_trace_files_only_rejects_rows(tmp_path: Path, figures: Figures) -> None:
    tried = 0

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.one_of(csv_rows.map(as_csv), json_rows.map(_json_lines)), st.booleans())
    def fuzz(text: str, as_jsonl: bool) -> None:
        nonlocal tried
        tried += 1
        trace = tmp_path / ("trace.jsonl" if as_jsonl else "trace.csv")
        trace.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            report = replay(trace, tmp_path / f"replay-{tried}", tz="UTC")
        except ALLOWED:
            return
        assert report.ingested + len(report.rejected) >= 0
        json.dumps(report.as_dict())

    fuzz()
    figures.add("hostile_input", "trace_files_replayed", tried)


def _json_lines(rows: list[object]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


TOKENS = [
    "moment.place", "persona.p.commuter", "features.x", "a.b.c", "==", "!=", "<", "<=", ">",
    ">=", "in", "not", "and", "or", "(", ")", "[", "]", ",", "'work'", '"x"', "'\\u00e9'",
    "'\\", "1", "-0.5", "1e3", "1e999", "nan", "true", "false", "null", "__class__", ".", "'",
]  # fmt: skip
conditions = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join),
    st.text(max_size=60),
    st.sampled_from(["(" * 40 + "true" + ")" * 40, "not " * 40 + "true", "x" * 2100]),
)
contexts = st.dictionaries(
    st.sampled_from(["moment", "persona", "features", "a"]),
    json_values | st.sampled_from([math.nan, math.inf, [math.nan], {"place": math.nan}]),
    max_size=4,
)


@pytest.mark.slow
def test_the_condition_language_refuses_or_compiles_and_never_raises_while_running(
    figures: Figures,
) -> None:
    tried = compiled = 0

    @settings(max_examples=800, deadline=None, derandomize=True)
    @given(conditions, st.lists(contexts, min_size=1, max_size=3))
    def fuzz(source: str, runs: list[dict[str, Any]]) -> None:
        nonlocal tried, compiled
        tried += 1
        try:
            condition = compile_condition(source)
        except EdgePersonaError:
            return
        compiled += 1
        for context in runs:
            assert type(condition(context)) is bool

    fuzz()
    figures.add("hostile_input", "conditions_tried", tried)
    figures.add("hostile_input", "conditions_compiled", compiled)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda sdk: sdk.track_event("view", 10**400), "value"),
        (lambda sdk: sdk.record_location(10**400, 2.0), "lat"),
        (lambda sdk: sdk.track_app("com.whatsapp", ts=-(10**400)), "ts"),
        (lambda sdk: sdk.local_time(1e308), "ts"),
        (lambda sdk: sdk.local_time(2**63), "ts"),
        (lambda sdk: sdk.daily_counts(math.inf), "days"),
        (lambda sdk: sdk.daily_counts(2**63), "days"),
        (lambda sdk: sdk.daily_counts("7"), "days"),
    ],
    ids=[
        "int-value",
        "int-lat",
        "int-ts",
        "local-1e308",
        "local-2**63",
        "days-inf",
        "days-2**63",
        "days-str",
    ],
)
def test_numbers_past_any_calendar_or_float_are_invalid_signals(
    device: EdgePersona, call: Callable[[EdgePersona], object], field: str
) -> None:
    """Found by this suite: these raised OverflowError, OSError or a bare TypeError."""
    with pytest.raises(InvalidSignalError) as raised:
        call(device)
    assert raised.value.field == field
