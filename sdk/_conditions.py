"""A small, safe condition language for playbook rules and fences.

Conditions arrive in JSON over the network and from app developers, so they are parsed by
hand (no ``eval``, no attribute access): bad input raises ``ConditionError`` with the
character ``position`` of the problem, and a compiled condition never raises while it runs.

Grammar, loosest binding first::

    condition  := and_expr ("or" and_expr)*
    and_expr   := comparison ("and" comparison)*
    comparison := unary [OP unary]              OP: == != < <= > >= in, not in
    unary      := "not" unary | primary
    primary    := NUMBER | STRING | true | false | null | NAME | LIST | "(" condition ")"
    LIST       := "[" [literal ("," literal)* [","]] "]"      only right of in / not in

- ``NUMBER``: ``12``, ``-0.5``, ``1e3`` (no nan or inf); ``STRING``: ``'a'`` or ``"a"``
  with the escapes ``\\\\ \\' \\" \\n \\t \\r \\uXXXX``.
- ``NAME``: a dotted path such as ``moment.place`` or ``persona.p.commuter``, looked up key
  by key in the nested mapping given at evaluation; a missing key gives ``null``.
- ``not`` binds tighter than a comparison, so ``not a == b`` would mean ``(not a) == b``;
  readers coming from Python or SQL expect the opposite, so that form is refused and
  either ``not (a == b)`` or ``(not a) == b`` must be written.
- ``a < b < c`` is refused: write ``a < b and b < c``.
- Limits: 2000 characters, nesting depth 32 (parentheses, lists and ``not``), 256 items
  per list.

Semantics, chosen so that unknown data never fires a rule:

- Only the boolean ``true`` is true; a name used as a condition is true when its value is.
- A comparison is true only between two numbers, two strings or, for ``==`` and ``!=``,
  two booleans; anything involving ``null`` or mismatched types is false, ``!=`` included,
  so ``moment.place != 'home'`` is false when the place is unknown.
- ``x in [...]`` compares like ``==``; ``s in 'text'`` is a substring test on strings;
  ``x not in y`` is true only when ``x`` is not null, ``y`` is a list (or both are
  strings) and ``x in y`` is false.
"""

from __future__ import annotations

import difflib
import math
import numbers
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .errors import ConditionError

__all__ = ["Condition", "compile_condition"]

MAX_LENGTH = 2000
MAX_DEPTH = 32
MAX_LIST = 256

Evaluate = Callable[[Any], Any]

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<name>[A-Za-z_]\w*(?:\.\w+)*)
    |(?P<op>==|!=|<=|>=|<|>)
    |(?P<punct>[()\[\],])""",
    re.VERBOSE | re.ASCII | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_CONSTANTS = {"true": True, "false": False, "null": None}
_MISTAKES = {
    "=": "'=' is not an operator; use '=='",
    "!": "'!' is not an operator; use 'not' or '!='",
    "&": "'&' is not an operator; use 'and'",
    "|": "'|' is not an operator; use 'or'",
    ".": "a name is words joined by single dots, like moment.place",
}
_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le}
_OPERATORS |= {">": operator.gt, ">=": operator.ge}
_LITERALS = frozenset({"num", "str", "true", "false", "null"})
_NUMBERS = (int, float)
_SCALARS = frozenset({int, float, str, bool})
_MEMBER_KINDS = {int: _NUMBERS, float: _NUMBERS, str: (str,), bool: (bool,)}


class _Token(NamedTuple):
    kind: str  # num, str, name, end, or the keyword or symbol itself: "and", "(", "=="...
    text: str
    pos: int
    value: Any = None


class _Node(NamedTuple):
    kind: str  # lit, list, name, not, and, or, cmp
    pos: int
    value: Any = None  # literal, list items, dotted name or comparison operator
    children: tuple[_Node, ...] = ()


@dataclass(frozen=True)
class Condition:
    """A parsed condition; call it with a context mapping to get ``True`` or ``False``."""

    source: str
    names: frozenset[str]  # the dotted names it reads
    _evaluate: Evaluate = field(repr=False, compare=False)

    def __call__(self, context: Mapping[str, Any]) -> bool:
        """Evaluate against nested mappings; never raises, missing values count as null."""
        return self._evaluate(context) is True


def compile_condition(source: str, *, known_names: Collection[str] | None = None) -> Condition:
    """Parse ``source`` once into a fast, safe ``Condition``.

    ``known_names`` lists the names a condition may read; an entry ending in ``"."`` (such as
    ``"persona.p."``) accepts every name under it.

    Raises:
        ConditionError: the text is not a valid condition or reads an unknown name; the
            message says what is accepted and ``position`` points at the problem.
    """
    if not isinstance(source, str):
        raise ConditionError(f"a condition must be a string, got {type(source).__name__}", 0)
    if len(source) > MAX_LENGTH:
        raise ConditionError(
            f"condition is {len(source)} characters long; at most {MAX_LENGTH} are accepted",
            MAX_LENGTH,
        )
    parser = _Parser(source)
    node = parser.parse()
    if known_names is not None:
        _check_names(parser.names, known_names)
    return Condition(source, frozenset(parser.names), _compile(node))


def _tokenize(source: str) -> list[_Token]:
    """Tokens with their kind: num, str, name, end, or the keyword or symbol itself."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            char = source[pos]
            if char in "'\"":
                raise ConditionError(f"string starting with {char} is never closed", pos)
            hint = _MISTAKES.get(char, "accepted: names, numbers, strings, () [] , and operators")
            raise ConditionError(f"unexpected character {char!r}: {hint}", pos)
        kind, text = match.lastgroup, match.group()
        if kind == "num":
            tokens.append(_Token(kind, text, pos, _number(text, pos)))
        elif kind == "str":
            tokens.append(_Token(kind, text, pos, _unescape(text[1:-1], pos + 1)))
        elif kind == "name" and text not in _KEYWORDS:
            tokens.append(_Token(kind, text, pos))
        elif kind != "space":
            tokens.append(_Token(text, text, pos, _CONSTANTS.get(text)))
        pos = match.end()
    tokens.append(_Token("end", "end of condition", pos))
    return tokens


def _number(text: str, pos: int) -> int | float:
    number = int(text) if text.lstrip("-").isdigit() else float(text)
    if math.isinf(number):
        raise ConditionError(f"number {text} is out of range", pos)
    return number


def _unescape(body: str, pos: int) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        if code not in _ESCAPES:
            raise ConditionError(
                f"unknown escape \\{code}; accepted: \\\\ \\' \\\" \\n \\t \\r \\uXXXX",
                pos + match.start(),
            )
        return _ESCAPES[code]

    return _ESCAPE.sub(replace, body)


class _Parser:
    """Recursive descent over the tokens; ``depth`` bounds the recursion."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.at = 0
        self.depth = 0
        self.names: dict[str, int] = {}  # each name read, at its first position

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ConditionError("condition is empty; write e.g. moment.place == 'work'", 0)
        node = _condition(self.either())
        token = self.peek()
        if token.kind != "end":
            raise ConditionError(f"unexpected {token.text!r} after a complete condition", token.pos)
        return node

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self, expected: str | None = None, what: str = "") -> _Token:
        token = self.peek()
        if expected is not None and token.kind != expected:
            raise ConditionError(f"expected {what}, found {token.text!r}", token.pos)
        self.at += 1
        return token

    def nest(self, token: _Token, step: int = 1) -> None:
        self.depth += step
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested deeper than {MAX_DEPTH} levels", token.pos)

    def either(self, word: str = "or") -> _Node:
        """An ``or`` of ``and`` chains of comparisons, kept flat so evaluation never recurses."""
        parse_part = (lambda: self.either("and")) if word == "or" else self.comparison
        parts = [parse_part()]
        while self.peek().kind == word:
            self.take()
            parts.append(parse_part())
        if len(parts) == 1:
            return parts[0]
        return _Node(word, parts[0].pos, None, tuple(map(_condition, parts)))

    def operator(self) -> str | None:
        kind = self.peek().kind
        if kind in _OPERATORS or kind == "in":
            return kind
        return "not in" if kind == "not" and self.peek(1).kind == "in" else None

    def comparison(self) -> _Node:
        first = self.peek()
        left = self.unary()
        op = self.operator()
        if op is None:
            return left
        op_token = self.take()
        if op == "not in":
            self.take()
        if first.kind == "not":
            raise ConditionError(
                f"'not ... {op}' is ambiguous; write 'not (a {op} b)' or '(not a) {op} b'",
                op_token.pos,
            )
        right = self.unary()
        if self.operator() is not None:
            raise ConditionError(
                "chained comparisons are not allowed; write 'a < b and b < c'", self.peek().pos
            )
        membership = op in ("in", "not in")
        stray = left if left.kind == "list" or membership else right
        if stray.kind == "list":
            raise ConditionError("a list is only allowed after 'in' or 'not in'", stray.pos)
        text = right.kind == "lit" and type(right.value) is str
        if membership and not (text or right.kind in ("list", "name")):
            raise ConditionError(f"'{op}' needs a list, a string or a name on its right", right.pos)
        return _Node("cmp", left.pos, op, (left, right))

    def unary(self) -> _Node:
        token = self.take()
        if token.kind == "not":
            self.nest(token)
            child = _condition(self.unary())
            self.nest(token, -1)
            return _Node("not", token.pos, None, (child,))
        if token.kind in _LITERALS:
            return _Node("lit", token.pos, token.value)
        if token.kind == "name":
            self.names.setdefault(token.text, token.pos)
            return _Node("name", token.pos, token.text)
        if token.kind not in ("(", "["):
            raise ConditionError(
                f"expected a value, a name or '(', found {token.text!r}", token.pos
            )
        self.nest(token)
        if token.kind == "(":
            node = self.either()
            self.take(")", f"')' to close the '(' at character {token.pos}")
        else:
            node = _Node("list", token.pos, tuple(self.items(token)))
        self.nest(token, -1)
        return node

    def items(self, opening: _Token) -> list[Any]:
        items: list[Any] = []
        while self.peek().kind != "]":
            token = self.take()
            if token.kind not in _LITERALS:
                raise ConditionError(
                    f"a list holds only numbers, strings, true, false and null, not {token.text!r}",
                    token.pos,
                )
            if len(items) == MAX_LIST:
                raise ConditionError(f"a list holds at most {MAX_LIST} items", token.pos)
            items.append(token.value)
            if self.peek().kind != ",":
                break
            self.take()
        self.take("]", f"',' or ']' to close the '[' at character {opening.pos}")
        return items


def _condition(node: _Node) -> _Node:
    """Refuse a literal where a condition is needed: ``'work'`` alone is always a mistake."""
    if node.kind == "list" or (node.kind == "lit" and type(node.value) is not bool):
        shown = "a list" if node.kind == "list" else "null" if node.value is None else "a literal"
        raise ConditionError(
            f"{shown} is not a condition; compare it, e.g. moment.place == 'work'", node.pos
        )
    return node


def _check_names(found: dict[str, int], known_names: Collection[str]) -> None:
    known = set(known_names)
    prefixes = tuple(name for name in known if name.endswith("."))
    listing = ", ".join(sorted(known)[:12])
    for name, pos in found.items():  # in order of position
        if name in known or name.startswith(prefixes):
            continue
        leaf = name.rsplit(".", 1)[-1]
        candidates = [n for n in known if n not in prefixes] + [p + leaf for p in prefixes]
        close = difflib.get_close_matches(name, candidates, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known names: {listing}"
        raise ConditionError(f"unknown name {name!r}; {hint}", pos)


def _normalise(value: Any) -> Any:
    """Plain Python scalars from whatever the app put in the context (numpy, enums, NaN)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return None if value != value else value
    try:
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            number = float(value)
            return None if math.isnan(number) else number
        return str.__str__(value) if isinstance(value, str) else value
    except Exception:  # a number type that will not convert: the value is unknown
        return None


def _getter(path: str) -> Evaluate:
    keys = tuple(path.split("."))

    def get(context: Any) -> Any:
        try:
            value = context
            for key in keys:
                if type(value) is not dict and not isinstance(value, Mapping):
                    return None
                value = value.get(key)
        except Exception:  # a Mapping that raises: the value is unknown
            return None
        return _normalise(value)

    return get


def _compare(test: Callable[[Any, Any], bool], ordered: bool, left: Any, right: Any) -> bool:
    kind = type(left)
    if kind is int or kind is float:
        same = type(right) in _NUMBERS
    else:
        same = type(right) is kind and (kind is str or (kind is bool and not ordered))
    return same and test(left, right)


def _contains(container: Any, item: Any, negate: bool) -> bool:
    """``item (not) in container`` for a container from the context; false if types differ."""
    kind = type(container)
    if kind is str and type(item) is str:
        return (item in container) is not negate
    if (kind is list or kind is tuple) and type(item) in _SCALARS:
        found = any(_compare(operator.eq, False, item, _normalise(x)) for x in container)
        return found is not negate
    return False


def _in_literal(members: dict[type, frozenset[Any]], item: Any, negate: bool) -> bool:
    same_kind = members.get(type(item))
    return same_kind is not None and (item in same_kind) is not negate


def _compile_comparison(op: str, left: _Node, right: _Node) -> Evaluate:
    get_left = _compile(left)
    if op in ("in", "not in"):
        negate = op == "not in"
        if right.kind == "list":  # precomputed per type, so 1 never matches true
            members = {
                kind: frozenset(x for x in right.value if type(x) in kinds)
                for kind, kinds in _MEMBER_KINDS.items()
            }
            return lambda context: _in_literal(members, get_left(context), negate)
        get_right = _compile(right)
        return lambda context: _contains(get_right(context), get_left(context), negate)
    ordered = op not in ("==", "!=")
    test = _OPERATORS[op]
    if right.kind == "lit":  # the common `name OP literal`, one call fewer
        constant = right.value
        return lambda context: _compare(test, ordered, get_left(context), constant)
    get_right = _compile(right)
    return lambda context: _compare(test, ordered, get_left(context), get_right(context))


def _compile(node: _Node, truth: bool = False) -> Evaluate:
    """A closure giving the node's value; for ``truth``, whether the value is ``true``."""
    if node.kind == "lit":
        constant = node.value
        return lambda context: constant
    if node.kind == "name":
        get = _getter(node.value)
        return (lambda context: get(context) is True) if truth else get
    if node.kind == "cmp":
        return _compile_comparison(node.value, *node.children)
    parts = tuple(_compile(child, truth=True) for child in node.children)
    if node.kind == "not":
        return lambda context: not parts[0](context)
    if node.kind == "and":
        return lambda context: all(part(context) for part in parts)
    return lambda context: any(part(context) for part in parts)
