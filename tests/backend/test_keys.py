"""Signing keys: made 0600, never overwritten, refused when unsafe; they sign what devices check."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepersona.backend.errors import BackendError
from edgepersona.backend.keys import (
    SigningError,
    generate_keypair,
    load_private_key,
    load_public_key,
    public_key_bytes,
    sign_manifest,
)
from edgepersona.sdk._signing import canonical_manifest, key_id, verify_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "keys" / "signing.pem", tmp_path / "keys" / "signing.pub.json"


@pytest.fixture
def manifest() -> dict[str, Any]:
    text = (REPO / "sdk" / "default_bundle" / "manifest.json").read_text()
    return dict(json.loads(text))


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_pair_is_private_and_round_trips(paths: tuple[Path, Path]) -> None:
    private_path, public_path = paths
    kid = generate_keypair(private_path, public_path)
    assert mode_of(private_path) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = load_public_key(public_path)
    assert key_id(public) == kid
    assert json.loads(public_path.read_text())["key_id"] == kid
    assert public_key_bytes(load_private_key(private_path)) == public


def test_each_key_pair_is_new(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path / "a.pem", tmp_path / "a.json")
    second = generate_keypair(tmp_path / "b.pem", tmp_path / "b.json")
    assert first != second


def test_an_existing_private_key_is_never_overwritten(paths: tuple[Path, Path]) -> None:
    private_path, public_path = paths
    private_path.parent.mkdir()
    private_path.write_bytes(b"the key devices already pin")
    with pytest.raises(SigningError, match=r"signing\.pem already exists; move it away first"):
        generate_keypair(private_path, public_path)
    assert private_path.read_bytes() == b"the key devices already pin"
    assert not public_path.exists()


def test_an_existing_public_key_stops_keygen_before_anything_is_written(
    paths: tuple[Path, Path],
) -> None:
    private_path, public_path = paths
    public_path.parent.mkdir()
    public_path.write_text("{}")
    with pytest.raises(SigningError, match=r"signing\.pub\.json already exists"):
        generate_keypair(private_path, public_path)
    assert not private_path.exists()
    assert public_path.read_text() == "{}"


def test_an_unwritable_public_key_leaves_no_private_key_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(SigningError, match="cannot create"):
        generate_keypair(tmp_path / "signing.pem", blocker / "signing.pub.json")
    assert not (tmp_path / "signing.pem").exists()


def test_a_missing_private_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="create one with `edgepersona backend keygen`"):
        load_private_key(tmp_path / "nothing.pem")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_a_private_key_open_to_others_is_refused(paths: tuple[Path, Path], mode: int) -> None:
    private_path, public_path = paths
    generate_keypair(private_path, public_path)
    private_path.chmod(mode)
    with pytest.raises(SigningError, match=rf"mode 0{mode:o}\); run `chmod 600 .*signing\.pem`"):
        load_private_key(private_path)


def test_an_owner_read_only_key_is_fine(paths: tuple[Path, Path]) -> None:
    private_path, public_path = paths
    generate_keypair(private_path, public_path)
    private_path.chmod(0o400)
    assert load_private_key(private_path) is not None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_a_private_key_file_that_is_not_an_ed25519_pem_is_refused(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(SigningError, match="is not an unencrypted PEM Ed25519 private key"):
        load_private_key(path)


def test_a_folder_is_not_a_private_key(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(SigningError, match="is not a regular file"):
        load_private_key(folder)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"alg": "ed25519", "key_id": "x"}),
        json.dumps({"alg": "ed25519", "key_id": "x", "public_key": "!!"}),
        json.dumps({"alg": "rsa", "key_id": key_id(bytes(32)), "public_key": "A" * 43 + "="}),
        json.dumps({"alg": "ed25519", "key_id": "0" * 16, "public_key": "A" * 43 + "="}),
        json.dumps({"alg": "ed25519", "key_id": key_id(bytes(32)), "public_key": "AAAA"}),
    ],
)
def test_a_malformed_public_key_file_is_refused(tmp_path: Path, document: str) -> None:
    path = tmp_path / "key.json"
    path.write_text(document)
    with pytest.raises(SigningError, match=r"key\.json"):
        load_public_key(path)


def test_a_missing_public_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="there is no public key at"):
        load_public_key(tmp_path / "missing.json")


def test_signing_errors_belong_to_the_backend_tree() -> None:
    assert issubclass(SigningError, BackendError)


def test_a_signed_manifest_verifies_on_the_device(
    paths: tuple[Path, Path], manifest: dict[str, Any]
) -> None:
    private_path, public_path = paths
    generate_keypair(private_path, public_path)
    signed = sign_manifest(manifest, load_private_key(private_path))
    downloaded = json.loads(json.dumps(signed, indent=1, sort_keys=True))
    assert verify_manifest(downloaded, [load_public_key(public_path)]) is None


def test_signing_leaves_the_original_alone(
    manifest: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    before = json.dumps(manifest, sort_keys=True)
    signed = sign_manifest(manifest, key)
    signed["personas"][0]["centroid"][0] = 99.0
    assert json.dumps(manifest, sort_keys=True) == before
    assert manifest["signature"] is None


def test_re_signing_replaces_the_old_signature(
    manifest: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    twice = sign_manifest(sign_manifest(manifest, other), key)
    assert twice["signature"]["key_id"] == key_id(public_key_bytes(key))
    assert verify_manifest(twice, [public_key_bytes(key)]) is None


def test_a_manifest_signed_by_another_key_is_refused(
    manifest: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    reason = verify_manifest(sign_manifest(manifest, other), [public_key_bytes(key)])
    assert reason == f"signed by an unknown key {key_id(public_key_bytes(other))}"


def test_a_manifest_without_a_canonical_form_cannot_be_signed(key: Ed25519PrivateKey) -> None:
    with pytest.raises(
        SigningError, match=r"cannot be signed: manifest\.personas\[0\]\.centroid\[0\] is nan"
    ):
        sign_manifest({"personas": [{"centroid": [math.nan]}]}, key)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.none()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        max_size=6,
    )
)
def test_any_signed_manifest_verifies_and_signs_its_canonical_bytes(
    key: Ed25519PrivateKey, manifest: dict[str, Any]
) -> None:
    signed = sign_manifest(manifest, key)
    assert canonical_manifest(signed) == canonical_manifest(manifest)
    assert verify_manifest(signed, [public_key_bytes(key)]) is None
