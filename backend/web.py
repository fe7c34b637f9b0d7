"""Request helpers the blueprints share: bearer tokens, size-limited bodies, strict JSON.

Python's ``json`` accepts ``NaN``, ``Infinity`` and numbers such as ``1e999`` (which become
infinite floats); none of them is JSON, and a non-finite value in an aggregate would poison
every mean computed from it, so the body parser refuses them outright.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

from flask import request

from .errors import ApiError

__all__ = [
    "REALM",
    "bearer_credential",
    "bearer_token_sha256",
    "body_bytes",
    "hash_token",
    "json_body",
    "loads_strict",
    "unauthorized",
    "unknown_token",
]

REALM = "edgepersona"
# What POST /v1/devices hands out: 32 random bytes, urlsafe base64 without padding.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_INT_DIGITS = 300
_BEARER = re.compile(r"Bearer[ ]+(\S+)[ ]*", re.IGNORECASE)
# A JSON text's shape for ``_may_hold_huge_numbers``: every digit as 0, E as e, the bytes that
# can end a number as |, and + dropped.
_NUMBER_SHAPE = bytes.maketrans(b"123456789E,]} \t\r\n", b"000000000e|||||||")
_LONG_EXPONENT = re.compile(rb"e000+(?:\||\Z)")


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored; the token itself never is."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_credential(missing: str) -> str:
    """The credential of this request's ``Authorization: Bearer`` header.

    Without one, a 401 whose message is ``missing`` (what to send, and where to get it).
    """
    header = request.headers.get("Authorization", "")
    match = _BEARER.fullmatch(header)
    if match is None:
        raise unauthorized(missing, invalid=bool(header))
    return match.group(1)


def bearer_token_sha256() -> str:
    """The hash of this request's well-formed bearer token; 401 if there is none."""
    token = bearer_credential(
        "This endpoint needs an 'Authorization: Bearer <token>' header; "
        "register with POST /v1/devices to get a token."
    )
    if not _TOKEN.fullmatch(token):
        raise unauthorized(
            "The bearer token is malformed; use the token POST /v1/devices returned.",
            invalid=True,
        )
    return hash_token(token)


def unauthorized(message: str, *, invalid: bool = True) -> ApiError:
    """A 401 with the ``WWW-Authenticate`` challenge RFC 6750 asks for."""
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def unknown_token() -> ApiError:
    """The 401 for a well-formed token that belongs to no device (never issued, or erased)."""
    return unauthorized(
        "The bearer token belongs to no device (it was never issued, or the device was "
        "erased); register again with POST /v1/devices."
    )


def body_bytes() -> bytes:
    """This request's whole body; 413 if it is over ``MAX_CONTENT_LENGTH``, chunked or not.

    With a Content-Length, werkzeug refuses an oversized body before reading it. A chunked
    body has none, and werkzeug just stops reading at the limit; one more read then raises
    413, so a body that reaches the limit is refused rather than silently cut short.
    """
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        request.stream.read(1)
    return raw


def json_body(raw: bytes) -> object:
    """This request's body ``raw`` as JSON; 415 unless sent as JSON, 400 if it is not JSON."""
    if request.mimetype != "application/json":
        shown = request.mimetype or "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The body was sent as {shown}; send it as application/json.",
        )
    try:
        return loads_strict(raw)
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None


def loads_strict(raw: bytes) -> object:
    """JSON from ``raw`` (UTF-8), refusing NaN, Infinity and numbers too large for a double.

    Raises ``ValueError`` whose message is a short reason fit for a client.
    """
    # The number hooks run once per number (a third of an upload's parse); most texts need
    # them nowhere, and those are parsed without them (None: the built-in parsers).
    checked = _may_hold_huge_numbers(raw)
    try:
        return json.loads(
            raw,
            parse_constant=_refuse_constant,
            parse_float=_finite_float if checked else None,
            parse_int=_bounded_int if checked else None,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def _may_hold_huge_numbers(raw: bytes) -> bool:
    """Whether a number in ``raw`` may be too large for a double or too long an integer.

    Only a number with a (positive) exponent of three digits or more, or with 200 digits or
    more, can be: without either, every number in the text is below 1e300. A string such as
    a hex id ("5e123...") does not end its digits with , ] } or a space, so it rarely counts;
    when it does, the text is parsed with the hooks, to the same values, a little slower.
    """
    shape = raw.translate(_NUMBER_SHAPE, b"+")
    return b"0" * 200 in shape or _LONG_EXPONENT.search(shape) is not None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text:.40} is too large for a double-precision number")
    return number


def _bounded_int(text: str) -> int:
    # Longer integers cannot be a valid value anywhere, and Python refuses to parse very long
    # ones with a message about its own internals.
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    return int(text)
