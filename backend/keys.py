"""The registry's Ed25519 signing key: made once by ``edgepersona backend keygen``, kept 0600.

The private key is a PKCS#8 PEM file that only its owner may read; the public key is a small
JSON file, ``{"alg": "ed25519", "key_id": ..., "public_key": <base64 of the raw 32 bytes>}``,
that an app pins in the SDK (``EdgePersona.open(public_key=...)``). Manifests are signed over
``edgepersona.sdk._signing.canonical_manifest``, the same bytes the device verifies.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from edgepersona.sdk._signing import ALGORITHM, canonical_manifest, key_id

from .errors import BackendError

__all__ = [
    "SigningError",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "public_key_bytes",
    "sign_manifest",
]

_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644


class SigningError(BackendError):
    """A key file is missing, unsafe or malformed, or a manifest cannot be signed."""


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new key pair and return its key id; never overwrites an existing file.

    Raises ``SigningError`` if either file exists (nothing is written then) or cannot be
    written.
    """
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(
                f"{path} already exists; move it away first (a key is never overwritten, "
                "devices pin it)"
            )
    key = Ed25519PrivateKey.generate()
    public = public_key_bytes(key)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    document = {"alg": ALGORITHM, "key_id": key_id(public), "public_key": _b64(public)}
    _write_new(private_path, pem, _PRIVATE_MODE)
    try:
        _write_new(public_path, (json.dumps(document, indent=1) + "\n").encode(), _PUBLIC_MODE)
    except SigningError:
        private_path.unlink()
        raise
    return key_id(public)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the private key; refuses a missing file and one that group or others may read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SigningError(
            f"there is no private key at {path}; create one with `edgepersona backend keygen`"
        ) from None
    except OSError as exc:
        raise SigningError(f"cannot open the private key {path}: {exc.strerror}") from exc
    try:  # the checks and the read are on one open file, so it cannot be swapped between
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SigningError(f"the private key {path} is not a regular file")
        if mode & 0o077:
            raise SigningError(
                f"the private key {path} is open to group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read()
    finally:
        os.close(fd)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(
            f"{path} is not an unencrypted PEM Ed25519 private key "
            "(make one with `edgepersona backend keygen`)"
        )
    return key


def load_public_key(path: Path) -> bytes:
    """The raw 32-byte public key from a file written by :func:`generate_keypair`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        raw = base64.b64decode(document["public_key"], validate=True)
        stated_id = document["key_id"]
        algorithm = document["alg"]
    except FileNotFoundError:
        raise SigningError(f"there is no public key at {path}") from None
    except (OSError, ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise SigningError(
            f"{path} is not a public key file "
            '({"alg": "ed25519", "key_id": ..., "public_key": <base64>})'
        ) from exc
    if algorithm != ALGORITHM or len(raw) != 32 or stated_id != key_id(raw):
        raise SigningError(
            f"{path} must hold a 32-byte ed25519 key and its key_id (start of its SHA-256)"
        )
    return raw


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``private_key``."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_manifest(manifest: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``manifest`` whose ``signature`` field signs everything else in it.

    Raises ``SigningError`` if the manifest holds something without a canonical form (NaN,
    an integer beyond 2**53, a non-JSON value).
    """
    try:
        message = canonical_manifest(manifest)
    except ValueError as exc:
        raise SigningError(f"the manifest cannot be signed: {exc}") from exc
    signed = copy.deepcopy(manifest)
    signed["signature"] = {
        "alg": ALGORITHM,
        "key_id": key_id(public_key_bytes(private_key)),
        "sig": _b64(private_key.sign(message)),
    }
    return signed


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningError(f"cannot create {path}: {exc.strerror} ({path.parent})") from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise SigningError(f"{path} already exists; move it away first") from None
    except OSError as exc:
        raise SigningError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have taken bits the mode needs
            file.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise SigningError(f"cannot write {path}: {exc.strerror}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
