"""The condition language: semantics, errors with positions, limits, never raising at run time."""

from __future__ import annotations

import enum
import operator
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgepersona.sdk import ConditionError
from edgepersona.sdk._conditions import MAX_DEPTH, MAX_LENGTH, MAX_LIST, compile_condition

CONTEXT = {
    "moment": {"place": "work", "weekday": True, "time_of_day": "morning", "hour": 8},
    "persona": {"id": "commuter", "p": {"commuter": 0.7, "homebody": 0.1}},
    "features": {"weekend_share": 0.25, "sessions": 12},
    "app": {"recent_category": "news", "tags": ["sale", "new", 3]},
}


def check(source: str, context: Mapping[str, Any] = CONTEXT) -> bool:
    result = compile_condition(source)(context)
    assert type(result) is bool
    return result


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("moment.place == 'work' and moment.weekday and moment.time_of_day == 'morning'", True),
        ('moment.place == "work"', True),
        ("moment.place != 'home'", True),
        ("moment.hour >= 8 and moment.hour < 9", True),
        ("moment.hour > 8", False),
        ("persona.p.commuter >= 0.5", True),
        ("features.sessions == 12.0", True),
        ("features.weekend_share <= -0.5", False),
        ("moment.place in ['work', 'home']", True),
        ("moment.place not in ['work', 'home']", False),
        ("moment.hour in [7, 8.0]", True),
        ("'or' in moment.place", True),
        ("'x' not in moment.place", True),
        ("'sale' in app.tags", True),
        ("3 in app.tags", True),
        ("'old' not in app.tags", True),
        ("moment.place < 'x'", True),
        ("true", True),
        ("false", False),
        ("moment.weekday", True),
        ("not moment.weekday", False),
        ("moment.weekday == true", True),
        ("moment.weekday != false", True),
        ("(moment.place == 'work') == moment.weekday", True),
        ("moment.weekday == not false", True),
        ("not not moment.weekday", True),
        ("x in []", False),
        ("'a\\'b\\u0041' == \"a'bA\"", True),
        ("1e3 == 1000", True),
        ("(1) == 1.0", True),
    ],
)
def test_semantics(source: str, expected: bool) -> None:
    assert check(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("false and false or true", True),
        ("not false and false", False),  # (not false) and false
        ("not (false and false)", True),
        ("not false or false", True),
        ("not true or true", True),  # (not true) or true
        ("moment.hour == 8 and moment.place == 'home' or moment.weekday", True),
        ("moment.hour == 8 and (moment.place == 'home' or false)", False),
        ("(not moment.weekday) == false", True),
        ("not (moment.hour == 9)", True),
    ],
)
def test_precedence(source: str, expected: bool) -> None:
    assert check(source) is expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("missing.value", "1"),
        ("moment.place", "null"),
        ("null", "null"),
        ("moment.place", "1"),
        ("moment.hour", "'8'"),
        ("moment.weekday", "1"),
        ("moment", "1"),
        ("app.tags", "'sale'"),
        ("persona.id.deeper", "'x'"),
    ],
)
def test_null_and_mismatched_types_compare_false(op: str, left: str, right: str) -> None:
    assert check(f"{left} {op} {right}") is False
    assert check(f"{right} {op} {left}") is False


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_booleans_are_not_ordered(op: str) -> None:
    assert check(f"moment.weekday {op} true") is False


@pytest.mark.parametrize(
    "source",
    [
        "missing in ['a', null]",
        "missing not in ['a']",
        "null in [null]",
        "1 in [true]",
        "true in [1]",
        "1 in '1'",
        "moment.place in moment.hour",
        "moment.place not in moment",
        "moment not in ['a']",
        "missing",
    ],
)
def test_membership_with_null_or_mismatched_types_is_false(source: str) -> None:
    assert check(source) is False


def test_not_of_unknown_is_true_but_unknown_inequality_is_false() -> None:
    assert check("not (missing == 'home')") is True
    assert check("missing != 'home'") is False
    assert check("not missing") is True


class _Place(str, enum.Enum):
    WORK = "work"


class _BadFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("boom")


class _Hostile(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("context", "source", "expected"),
    [
        ({"f": {"x": np.float32(0.5), "n": np.int64(3), "b": np.bool_(True)}}, "f.x > 0.4", True),
        ({"f": {"n": np.int64(3)}}, "f.n == 3", True),
        ({"f": {"b": np.bool_(True)}}, "f.b", True),
        ({"f": {"x": float("nan")}}, "f.x != 1", False),
        ({"f": {"x": float("nan")}}, "f.x == f.x", False),
        ({"f": {"x": np.float64("nan")}}, "f.x < 1", False),
        ({"moment": {"place": _Place.WORK}}, "moment.place == 'work'", True),
        ({"moment": _Hostile()}, "moment.place == 'work'", False),
        (_Hostile(), "not moment.place", True),
        ({"f": {"x": 10**400}}, "f.x > 1e308", True),
        ({"f": ("not", "a", "mapping")}, "f.x == 'a'", False),
        ({"f": {"tags": ("a", np.int64(2))}}, "2 in f.tags", True),
        ({"f": {"tags": [[1], {"a": 1}]}}, "1 in f.tags", False),
        ({"f": {"x": _BadFloat(1.0)}}, "f.x == 1", False),
        ({"f": {"tags": [_BadFloat(1.0), 1]}}, "1 in f.tags", True),
    ],
)
def test_any_context_evaluates_without_raising(context: Any, source: str, expected: bool) -> None:
    assert check(source, context) is expected


@pytest.mark.parametrize("context", [None, 42, "text", [], {}, {"moment": None}])
def test_non_mapping_contexts_read_as_null(context: Any) -> None:
    assert compile_condition("moment.place == 'work'")(context) is False
    assert compile_condition("not moment.place")(context) is True


def test_names_lists_every_dotted_name_read() -> None:
    condition = compile_condition("moment.place == 'work' and (persona.p.commuter > 0.5 or x)")
    assert condition.names == {"moment.place", "persona.p.commuter", "x"}
    assert condition.source.startswith("moment.place")


KNOWN = ["moment.place", "moment.weekday", "moment.time_of_day", "features.", "persona.p."]


def test_known_names_accept_exact_names_and_prefixes() -> None:
    source = "moment.place == 'work' and persona.p.commuter > 0.5 and features.weekend_share < 1"
    assert compile_condition(source, known_names=KNOWN)(CONTEXT) is True


@pytest.mark.parametrize(
    ("source", "position", "suggestion"),
    [
        ("moment.plase == 'work'", 0, "moment.place"),
        ("moment.place == 'work' and moment.weekdya", 27, "moment.weekday"),
        ("persona.q.commuter > 0.5", 0, "persona.p.commuter"),
        ("features == 1", 0, "features."),
    ],
)
def test_unknown_names_are_refused_with_close_matches(
    source: str, position: int, suggestion: str
) -> None:
    with pytest.raises(ConditionError, match="unknown name") as info:
        compile_condition(source, known_names=KNOWN)
    assert info.value.position == position
    assert suggestion in str(info.value)


def test_unknown_name_without_close_match_lists_the_known_names() -> None:
    with pytest.raises(ConditionError, match=r"'zzz'; known names: features\., moment\.place"):
        compile_condition("zzz", known_names=KNOWN)


@pytest.mark.parametrize(
    ("source", "position", "message"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("a ==", 4, "expected a value"),
        ("a = 1", 2, "use '=='"),
        ("a && b", 2, "use 'and'"),
        ("a || b", 2, "use 'or'"),
        ("!a", 0, "use 'not'"),
        ("a # b", 2, "unexpected character '#'"),
        ("moment.", 6, "single dots"),
        ("moment..place", 6, "single dots"),
        ("(a", 2, "')' to close the '(' at character 0"),
        ("((a) or b", 9, "')' to close the '(' at character 0"),
        ("(a))", 3, "unexpected ')'"),
        (")", 0, "expected a value"),
        ("a b", 2, "unexpected 'b'"),
        ("a not b", 2, "unexpected 'not'"),
        ("a and", 5, "expected a value"),
        ("or a", 0, "expected a value"),
        ("a < b < c", 6, "chained comparisons"),
        ("a == b != c", 7, "chained comparisons"),
        ("a in [1] in b", 9, "chained comparisons"),
        ("not a == 1", 6, "ambiguous"),
        ("not a in [1]", 6, "ambiguous"),
        ("'work'", 0, "a literal is not a condition"),
        ("a and 3", 6, "a literal is not a condition"),
        ("not null", 4, "null is not a condition"),
        ("[1, 2]", 0, "a list is not a condition"),
        ("[1] == a", 0, "only allowed after 'in'"),
        ("a == [1]", 5, "only allowed after 'in'"),
        ("a in 1", 5, "needs a list, a string or a name"),
        ("a in (b == c)", 6, "needs a list, a string or a name"),
        ("a in [1, b]", 9, "a list holds only"),
        ("a in [1 2]", 8, "',' or ']' to close the '[' at character 5"),
        ("a in [1,", 8, "a list holds only"),
        ("a == 'abc", 5, "never closed"),
        ('a == "abc\\"', 5, "never closed"),
        ("a == 'x\\q'", 7, "unknown escape \\q"),
        ("a == 'x\\u12'", 7, "unknown escape \\u"),
        ("a == 1e999", 5, "out of range"),
        ("a == - 1", 5, "unexpected character '-'"),
        ("a.b == 1.2.3", 10, "unexpected"),
        ("a == 'x' and in", 13, "expected a value"),
    ],
)
def test_errors_point_at_the_problem(source: str, position: int, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(source)
    assert info.value.position == position, str(info.value)
    assert message in str(info.value)
    assert f"(at character {position})" in str(info.value)


@pytest.mark.parametrize("source", [None, 3, b"a == 1", ["a"]])
def test_a_condition_must_be_a_string(source: Any) -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        compile_condition(source)


def test_limits() -> None:
    compile_condition("x" * MAX_LENGTH)
    with pytest.raises(ConditionError, match="at most 2000") as info:
        compile_condition("x" * (MAX_LENGTH + 1))
    assert info.value.position == MAX_LENGTH
    compile_condition("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(ConditionError, match="nested deeper than 32") as info:
        compile_condition("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert info.value.position == MAX_DEPTH
    compile_condition("not " * MAX_DEPTH + "a")
    with pytest.raises(ConditionError, match="nested deeper"):
        compile_condition("not " * (MAX_DEPTH + 1) + "a")
    items = ", ".join(["1"] * MAX_LIST)
    compile_condition(f"a in [{items}]")
    with pytest.raises(ConditionError, match="at most 256 items"):
        compile_condition(f"a in [{items}, 2]")


def test_evaluation_takes_a_few_microseconds() -> None:
    condition = compile_condition(
        "moment.place == 'work' and moment.weekday and moment.time_of_day == 'morning'"
    )
    runs = 20_000
    start = time.perf_counter()
    for _ in range(runs):
        condition(CONTEXT)
    per_call_us = (time.perf_counter() - start) / runs * 1e6
    assert per_call_us < 25, f"{per_call_us:.1f} µs per evaluation"  # ~1-2 µs on a laptop


# --- property-based: arbitrary text -------------------------------------------------------

TOKENS = "a b.c 1 -2.5 's' \"t\" true null and or not in == != < >= ( ) [ ] , ' \\ = .".split()  # noqa: SIM905
SOUP = st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join)


@given(st.one_of(st.text(max_size=60), SOUP))
def test_any_text_compiles_or_raises_condition_error(source: str) -> None:
    try:
        condition = compile_condition(source)
    except ConditionError as error:
        position = error.position
        assert position is not None and 0 <= position <= len(source), str(error)  # noqa: PT017
        return
    assert type(condition(CONTEXT)) is bool
    assert type(condition({})) is bool


@given(st.sampled_from(["(", "not ", "[", "( not ", "a in ["]), st.integers(33, 5000))
@settings(max_examples=50)
def test_deep_nesting_and_long_input_are_refused_quickly(opener: str, repeat: int) -> None:
    source = opener * repeat + "a"
    start = time.perf_counter()
    with pytest.raises(ConditionError, match=r"nested deeper|at most 2000|a list holds only"):
        compile_condition(source)
    assert time.perf_counter() - start < 0.25  # a few milliseconds in practice


# --- property-based: generated expressions against a reference evaluator -----------------

NAMES = ["moment.place", "moment.weekday", "features.share", "persona.p.c", "app.tags", "nope.x"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, -0.0, 1.0]),
    st.text(alphabet="ab'\"\\\n", max_size=3),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` to ``{"a": {"b": 1}}``; a value met on the way (``"a": 2``) hides ``a.b``."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node: Any = root
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    return root


# The names the expressions read, after an optional value that hides some of them.
CONTEXTS = st.fixed_dictionaries(
    {}, optional={path: VALUES for path in ["moment", "persona.p", *NAMES]}
).map(nested)


def literal_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return repr(value)


NAME = st.sampled_from(NAMES).map(lambda n: ("name", n))
CONDITION_LEAF = st.one_of(NAME, st.booleans().map(lambda b: ("lit", b)))


def expressions() -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        operand = st.one_of(NAME, SCALARS.map(lambda v: ("lit", v)), children)
        container = st.one_of(
            NAME,
            st.text(alphabet="ab'", max_size=3).map(lambda s: ("lit", s)),
            st.lists(SCALARS, max_size=4).map(lambda items: ("list", items)),
        )
        return st.one_of(
            children.map(lambda c: ("not", c)),
            st.lists(children, min_size=2, max_size=3).map(lambda cs: ("and", cs)),
            st.lists(children, min_size=2, max_size=3).map(lambda cs: ("or", cs)),
            st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), operand, operand).map(
                lambda t: ("cmp", *t)
            ),
            st.tuples(st.sampled_from(["in", "not in"]), operand, container).map(
                lambda t: ("cmp", *t)
            ),
        )

    return st.recursive(CONDITION_LEAF, extend, max_leaves=10)


PRECEDENCE = {"or": 1, "and": 2, "cmp": 3, "not": 4, "name": 5, "lit": 5, "list": 5}


def render(node: Any, minimum: int, draw_paren: Iterator[bool]) -> tuple[str, int]:
    """Source text with as few parentheses as precedence allows (plus some extra), and depth."""
    kind = node[0]
    if kind == "name":
        text, depth = node[1], 0
    elif kind == "lit":
        text, depth = literal_text(node[1]), 0
    elif kind == "list":
        text, depth = "[" + ", ".join(literal_text(v) for v in node[1]) + "]", 1
    elif kind == "not":
        inner, inner_depth = render(node[1], 4, draw_paren)
        text, depth = "not " + inner, inner_depth + 1
    elif kind in ("and", "or"):
        parts = [render(child, PRECEDENCE[kind] + 1, draw_paren) for child in node[1]]
        text = f" {kind} ".join(part for part, _ in parts)
        depth = max(d for _, d in parts)
    else:
        _, op, left, right = node
        (left_text, left_depth), (right_text, right_depth) = (
            render(side, 5, draw_paren) for side in (left, right)
        )
        text, depth = f"{left_text} {op} {right_text}", max(left_depth, right_depth)
    if PRECEDENCE[kind] < minimum or (kind != "list" and next(draw_paren)):
        return f"({text})", depth + 1
    return text, depth


def reference_value(node: Any, context: Any) -> Any:
    kind = node[0]
    if kind == "name":
        value = context
        for key in node[1].split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value
    if kind in ("lit", "list"):
        return node[1]
    return reference_truth(node, context)


def comparable(left: Any, right: Any, ordered: bool) -> bool:
    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if is_number(left) and is_number(right):
        return True
    if isinstance(left, str) and isinstance(right, str):
        return True
    return isinstance(left, bool) and isinstance(right, bool) and not ordered


OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le}
OPERATORS |= {">": operator.gt, ">=": operator.ge}


def reference_truth(node: Any, context: Any) -> bool:
    kind = node[0]
    if kind in ("name", "lit"):
        return reference_value(node, context) is True
    if kind == "not":
        return not reference_truth(node[1], context)
    if kind == "and":
        return all(reference_truth(child, context) for child in node[1])
    if kind == "or":
        return any(reference_truth(child, context) for child in node[1])
    _, op, left_node, right_node = node
    left, right = reference_value(left_node, context), reference_value(right_node, context)
    if op in ("in", "not in"):
        if isinstance(right, list) and isinstance(left, (bool, int, float, str)):
            found = any(comparable(left, item, False) and left == item for item in right)
        elif isinstance(right, str) and isinstance(left, str):
            found = left in right
        else:
            return False
        return found if op == "in" else not found
    ordered = op not in ("==", "!=")
    return comparable(left, right, ordered) and OPERATORS[op](left, right)


@given(expressions(), st.lists(CONTEXTS, min_size=1, max_size=4), st.randoms())
@settings(max_examples=300)
def test_generated_expressions_agree_with_a_reference_evaluator(
    tree: Any, samples: list[dict[str, Any]], random: Any
) -> None:
    source, depth = render(tree, 0, iter(lambda: random.random() > 0.9, None))
    assume(depth <= MAX_DEPTH and len(source) <= MAX_LENGTH)
    condition = compile_condition(source)
    for context in samples:
        assert condition(context) is reference_truth(tree, context), (source, context)
