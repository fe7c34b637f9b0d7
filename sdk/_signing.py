"""Checking a bundle manifest's Ed25519 signature on the device, in pure Python.

The SDK does not depend on ``cryptography`` (heavy, and not guaranteed on python-for-android),
so verification (RFC 8032, section 5.1.7) is written here with Python integers. It runs once
per downloaded bundle and takes a few milliseconds. Verification handles no secret, so it needs
no constant-time arithmetic; it still does the same sequence of point operations for every
input, and it never raises on a malformed key or signature: it says ``False``.

The signed bytes (``canonical_manifest``) are the manifest without its ``signature`` field,
as JSON with keys sorted, no whitespace, non-ASCII characters written as UTF-8, and numbers
written the way RFC 8785 (JSON Canonicalization Scheme, section 3.2.2.3) writes them:

- an integer must lie within +-(2**53 - 1), the range every JSON reader holds exactly, and is
  written in decimal;
- a float must be finite and is written with the shortest digits that read back as the same
  float (Python's ``repr`` digits), laid out as ECMAScript does: ``1.0`` -> ``1``,
  ``1e-05`` -> ``0.00001``, ``1e+16`` -> ``10000000000000000``, ``1e21`` -> ``1e+21``.

So the personas' centroid floats can stay numbers: the device recomputes the same bytes from
the parsed manifest whatever whitespace or float spelling the file used (``1.0`` or ``1``,
``1E-5`` or ``0.00001``), and a verifier in another language can use any RFC 8785 library
(keys here are ASCII, where sorting by code point is RFC 8785's UTF-16 order).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

ALGORITHM = "ed25519"
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 32

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point
_D = -121665 * pow(121666, -1, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_KEY_ID = re.compile(r"[0-9a-f]{16}")

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T): x=X/Z, y=Y/Z, xy=T/Z
_IDENTITY: Point = (0, 1, 1, 0)


def key_id(public_key: bytes) -> str:
    """The first 16 hex characters of the SHA-256 of a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 raw bytes, not {len(public_key)}")
    return hashlib.sha256(public_key).hexdigest()[:16]


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: ``manifest`` without ``signature``, in canonical JSON.

    Raises ``ValueError`` naming the place of anything that has no canonical form: a value
    that is not JSON, a non-finite float, an integer beyond +-(2**53 - 1), a non-string key,
    a string that is not valid Unicode, nesting deeper than 32 levels.
    """
    unsigned = {key: value for key, value in manifest.items() if key != "signature"}
    text = _canonical(unsigned, "manifest", 0)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("the manifest holds a string that is not valid Unicode") from exc


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (64 bytes) is ``public_key``'s (32 bytes) Ed25519 over ``message``.

    RFC 8032, section 5.1.7, with the cofactored equation [8][S]B = [8]R + [8][k]A.
    ``False`` for a wrong length, S >= L, an encoding that is not a point (or a
    non-canonical y >= p), and a public key of small order (such a key would accept forged
    signatures on every message).
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode_point(bytes(public_key))
    r = _decode_point(bytes(signature[:32]))
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L or _is_identity(_times_eight(a)):
        return False
    digest = hashlib.sha512(bytes(signature[:32]) + bytes(public_key) + bytes(message)).digest()
    k = int.from_bytes(digest, "little") % _L
    # [S]B - [k]A - R must be a point of small order: multiplied by 8 it is the identity.
    difference = _add(_double_scalar_mult(s, k, _negate(a)), _negate(r))
    return _is_identity(_times_eight(difference))


def verify_manifest(manifest: Mapping[str, Any], public_keys: Sequence[bytes]) -> str | None:
    """``None`` if ``manifest`` is signed by one of ``public_keys``, else the reason why not.

    The signature is the field ``signature``: ``{"alg": "ed25519", "key_id": ..., "sig": ...}``
    with ``sig`` the base64 of 64 bytes and ``key_id`` naming the key (see :func:`key_id`).
    Pinning several raw 32-byte keys lets the backend rotate its key. Raises ``ValueError``
    only for a pinned key that is not 32 bytes; never for anything in the manifest.
    """
    pinned = {key_id(key): bytes(key) for key in public_keys}
    if not isinstance(manifest, Mapping):
        return "the manifest is not a JSON object"
    signature = manifest.get("signature")
    if signature is None:
        return "no signature"
    if not isinstance(signature, Mapping) or not all(
        isinstance(signature.get(field), str) for field in ("alg", "key_id", "sig")
    ):
        return 'the signature is not an object {"alg", "key_id", "sig"} of strings'
    if signature["alg"] != ALGORITHM:
        return f"the signature algorithm {signature['alg'][:32]!r} is not supported, only ed25519"
    if not _KEY_ID.fullmatch(signature["key_id"]):
        return "the signature's key_id is not 16 lowercase hex characters"
    if signature["key_id"] not in pinned:
        return f"signed by an unknown key {signature['key_id']}"
    try:
        sig = base64.b64decode(signature["sig"], validate=True)
    except (binascii.Error, ValueError):
        sig = b""
    if len(sig) != 64:
        return "the signature is not the base64 of 64 bytes"
    try:
        message = canonical_manifest(manifest)
    except ValueError as exc:
        return f"the manifest has no canonical form: {exc}"
    if not verify_ed25519(pinned[signature["key_id"]], message, sig):
        return "signature does not match the manifest"
    return None


def _canonical(value: object, where: str, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where} is nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{where} is {value}, beyond +-(2**53 - 1)")
        return str(int(value))
    if isinstance(value, float):
        return _number(value, where)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key {key!r} that is not a string")
        members = []
        for key in sorted(value):
            member = _canonical(value[key], f"{where}.{key}", depth + 1)
            members.append(f"{json.dumps(key, ensure_ascii=False)}:{member}")
        return "{" + ",".join(members) + "}"
    if isinstance(value, (list, tuple)):
        items = (_canonical(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        return "[" + ",".join(items) + "]"
    raise ValueError(f"{where} is a {type(value).__name__}, which JSON does not hold")


def _number(value: float, where: str) -> str:
    """RFC 8785 / ECMAScript Number::toString of a finite float."""
    if not math.isfinite(value):
        raise ValueError(f"{where} is {value}; only finite numbers can be signed")
    if value == 0:
        return "0"  # -0.0 too
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return "-" + text if sign else text


def _decode_point(encoded: bytes) -> Point | None:
    """RFC 8032, section 5.1.3; ``None`` if ``encoded`` is not a canonical point encoding."""
    y = int.from_bytes(encoded, "little")
    x_sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    check = v * x * x % _P
    if check == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif check != u:
        return None
    if x == 0 and x_sign:
        return None
    if x & 1 != x_sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _add(p: Point, q: Point) -> Point:
    """Complete addition on the a = -1 twisted Edwards curve (RFC 8032, section 5.1.4)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = p[3] * _D2 * q[3] % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p: Point) -> Point:
    a = p[0] * p[0] % _P
    b = p[1] * p[1] % _P
    c = 2 * p[2] * p[2] % _P
    h = a + b
    e = h - (p[0] + p[1]) ** 2
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _negate(p: Point) -> Point:
    return (-p[0] % _P, p[1], p[2], -p[3] % _P)


def _times_eight(p: Point) -> Point:
    return _double(_double(_double(p)))


def _is_identity(p: Point) -> bool:
    return p[0] % _P == 0 and (p[1] - p[2]) % _P == 0


def _multiples(p: Point) -> list[Point]:
    """[0]P, [1]P, ..., [15]P: the table of a 4-bit window."""
    table = [_IDENTITY]
    for _ in range(15):
        table.append(_add(table[-1], p))
    return table


def _double_scalar_mult(s: int, k: int, q: Point) -> Point:
    """[s]B + [k]Q for s, k < 2**256, by a joint fixed 4-bit window (64 rounds, always)."""
    q_table = _multiples(q)
    acc = _IDENTITY
    for shift in range(252, -4, -4):
        acc = _double(_double(_double(_double(acc))))
        acc = _add(acc, _BASE_TABLE[(s >> shift) & 15])
        acc = _add(acc, q_table[(k >> shift) & 15])
    return acc


_BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BASE_Y = 46316835694926478169428394003475163141307993866256225615783033603165251855960
_BASE_TABLE = _multiples((_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % _P))  # RFC 8032's B
