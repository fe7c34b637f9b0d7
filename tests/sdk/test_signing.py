"""Manifest signatures: RFC 8032 vectors, agreement with ``cryptography``, the canonical form."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepersona.sdk._signing import (
    canonical_manifest,
    key_id,
    verify_ed25519,
    verify_manifest,
)

REPO = Path(__file__).resolve().parents[2]
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19

MESSAGE_1024 = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f5"
    "4e9f77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37"
    "c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efc"
    "b8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b"
    "3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573c"
    "b116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204"
    "ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958"
    "d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c6"
    "5adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2"
    "cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a"
    "71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9"
    "b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb"
    "038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f672451"
    "7b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e"
    "2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d"
    "5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6aed3fb0"
    "f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041"
    "e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa9"
    "33a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185"
    "c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c"
    "15fc910840b94c00a0b9d0"
)

# RFC 8032, section 7.1: (name, secret key, public key, message, signature), all hex.
RFC8032 = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
        "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e45"
        "8f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae"
        "67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        MESSAGE_1024,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528"
        "ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        hashlib.sha512(b"abc").hexdigest(),
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfd"
        "fbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]

# RFC 8785, appendix B: IEEE 754 bits and their canonical JSON form (finite values).
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=512)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
safe_ints = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)


def json_documents(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=12,
    )


json_values = json_documents(st.none() | st.booleans() | safe_ints | finite_floats | st.text())
json_values_without_floats = json_documents(st.none() | st.booleans() | safe_ints | st.text())


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def cryptography_verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def flip_bit(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8 % len(data)] ^= 1 << (bit % 8)
    return bytes(flipped)


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signature = key.sign(canonical_manifest(manifest))
    return {
        **manifest,
        "signature": {
            "alg": "ed25519",
            "key_id": key_id(raw_public(key)),
            "sig": base64.b64encode(signature).decode(),
        },
    }


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    text = (REPO / "sdk" / "default_bundle" / "manifest.json").read_text()
    return dict(json.loads(text))


# --- Ed25519 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret", "public", "message", "signature"), RFC8032, ids=[v[0] for v in RFC8032]
)
def test_rfc8032_vectors_verify(
    name: str, secret: str, public: str, message: str, signature: str
) -> None:
    # The vectors are also what cryptography computes, so a typo here cannot hide.
    signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert raw_public(signer).hex() == public
    assert signer.sign(bytes.fromhex(message)).hex() == signature
    assert verify_ed25519(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature))


@pytest.mark.parametrize(
    ("name", "secret", "public", "message", "signature"), RFC8032, ids=[v[0] for v in RFC8032]
)
def test_rfc8032_vectors_refuse_any_flipped_bit(
    name: str, secret: str, public: str, message: str, signature: str
) -> None:
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    for bit in range(0, 512, 7):
        assert not verify_ed25519(key, msg, flip_bit(sig, bit))
    for bit in range(0, 256, 5):
        assert not verify_ed25519(flip_bit(key, bit), msg, sig)
    assert not verify_ed25519(key, msg + b"\x00", sig)


@settings(max_examples=1000, deadline=None)
@given(seeds, messages)
def test_signatures_made_by_cryptography_verify(seed: bytes, message: bytes) -> None:
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    assert verify_ed25519(raw_public(signer), message, signer.sign(message))


@settings(max_examples=1000, deadline=None)
@given(seeds, messages, st.sampled_from(["message", "signature", "key"]), st.integers(0, 4095))
def test_a_flipped_bit_anywhere_is_refused(
    seed: bytes, message: bytes, part: str, bit: int
) -> None:
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    public, signature = raw_public(signer), signer.sign(message)
    if part == "message":
        message = flip_bit(message, bit) if message else b"\x00"
    elif part == "signature":
        signature = flip_bit(signature, bit)
    else:
        public = flip_bit(public, bit)
    assert verify_ed25519(public, message, signature) is False
    assert cryptography_verifies(public, message, signature) is False


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=30, max_size=34), messages, st.binary(min_size=62, max_size=66))
def test_garbage_keys_and_signatures_agree_with_cryptography(
    public: bytes, message: bytes, signature: bytes
) -> None:
    result = verify_ed25519(public, message, signature)
    if len(public) == 32 and len(signature) == 64:
        assert result == cryptography_verifies(public, message, signature)
    else:
        assert result is False


def test_a_non_canonical_s_is_refused(key: Ed25519PrivateKey) -> None:
    message = b"malleable?"
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little")
    same_s_plus_l = signature[:32] + (s + L).to_bytes(32, "little")
    assert verify_ed25519(raw_public(key), message, signature)
    assert not verify_ed25519(raw_public(key), message, same_s_plus_l)


def test_non_canonical_point_encodings_are_refused(key: Ed25519PrivateKey) -> None:
    message = b"points"
    signature = key.sign(message)
    y_at_least_p = (P + 2).to_bytes(32, "little")  # y >= p
    x_zero_negative = (1 | 1 << 255).to_bytes(32, "little")  # y = 1 means x = 0: no sign
    for bad in (y_at_least_p, x_zero_negative, b"\xff" * 32):
        assert not verify_ed25519(bad, message, signature)
        assert not verify_ed25519(raw_public(key), message, bad + signature[32:])


def test_a_small_order_key_cannot_vouch_for_every_message() -> None:
    identity = (1).to_bytes(32, "little")
    forged = identity + bytes(32)  # R = identity, S = 0 satisfies [8]SB = [8]R + [8]kA
    assert not verify_ed25519(identity, b"any message", forged)


@pytest.mark.parametrize(("public_size", "signature_size"), [(0, 64), (31, 64), (32, 63), (33, 65)])
def test_wrong_lengths_are_refused(
    key: Ed25519PrivateKey, public_size: int, signature_size: int
) -> None:
    signature = key.sign(b"m") + b"\x00"
    public = raw_public(key) + b"\x00"
    assert not verify_ed25519(public[:public_size], b"m", signature[:signature_size])


# --- canonical form --------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_floats_are_written_as_rfc8785_writes_them(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical_manifest({"x": value}) == b'{"x":' + expected.encode() + b"}"


@given(finite_floats)
def test_a_canonical_float_reads_back_as_the_same_float(value: float) -> None:
    text = canonical_manifest({"x": value}).decode()
    assert float(json.loads(text)["x"]) == value


@given(json_values_without_floats, st.dictionaries(st.text(max_size=6), json_values_without_floats))
def test_without_floats_it_is_compact_sorted_json(value: object, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "body": value}
    expected = json.dumps(
        {k: v for k, v in manifest.items() if k != "signature"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert canonical_manifest(manifest) == expected.encode("utf-8")


@given(st.dictionaries(st.text(max_size=6), json_values))
def test_the_bytes_survive_any_json_round_trip(manifest: dict[str, Any]) -> None:
    pretty = json.loads(json.dumps(manifest, indent=3, ensure_ascii=True))
    assert canonical_manifest(pretty) == canonical_manifest(manifest)


def test_float_spelling_and_the_signature_field_do_not_matter() -> None:
    written = '{"c": [1.0, 1E-5, 0.5e1, -0.0], "v": 2, "signature": null}'
    reread = '{"v":2,"c":[1,0.00001,5,0],"signature":{"alg":"ed25519"}}'
    assert canonical_manifest(json.loads(written)) == canonical_manifest(json.loads(reread))
    assert canonical_manifest(json.loads(written)) == b'{"c":[1,0.00001,5,0],"v":2}'


def test_non_ascii_is_written_as_utf8() -> None:
    assert canonical_manifest({"name": "Café ☕"}) == '{"name":"Café ☕"}'.encode()


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ({"c": [0.5, math.nan]}, r"manifest\.c\[1\] is nan; only finite numbers"),
        ({"c": math.inf}, r"manifest\.c is inf"),
        ({"v": 2**53}, r"manifest\.v is 9007199254740992, beyond"),
        ({"p": {1: "one"}}, r"manifest\.p has a key 1 that is not a string"),
        ({"s": {"a", "b"}}, r"manifest\.s is a set, which JSON does not hold"),
        ({"s": "\ud800"}, r"not valid Unicode"),
        ({"deep": json.loads("[" * 40 + "]" * 40)}, r"nested deeper than 32 levels"),
    ],
)
def test_what_has_no_canonical_form_is_named(manifest: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        canonical_manifest(manifest)


# --- manifests -------------------------------------------------------------------------------


def test_a_signed_manifest_verifies_after_the_trip_to_the_device(
    manifest: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    signed = sign(manifest, key)
    on_the_wire = json.dumps(signed, indent=1, sort_keys=True)
    assert verify_manifest(json.loads(on_the_wire), [raw_public(key)]) is None


def test_key_rotation_pins_several_keys(manifest: dict[str, Any], key: Ed25519PrivateKey) -> None:
    new_key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    pinned = [raw_public(key), raw_public(new_key)]
    assert verify_manifest(sign(manifest, key), pinned) is None
    assert verify_manifest(sign(manifest, new_key), pinned) is None
    assert verify_manifest(sign(manifest, new_key), pinned[:1]) == (
        f"signed by an unknown key {key_id(raw_public(new_key))}"
    )


def tamper_version(m: dict[str, Any]) -> None:
    m["version"] += 1


def tamper_centroid(m: dict[str, Any]) -> None:
    m["personas"][0]["centroid"][3] += 1e-9


def tamper_rollout(m: dict[str, Any]) -> None:
    m["rollout"]["percent"] = 50


@pytest.mark.parametrize("tamper", [tamper_version, tamper_centroid, tamper_rollout])
def test_a_tampered_manifest_is_refused(
    manifest: dict[str, Any], key: Ed25519PrivateKey, tamper: Any
) -> None:
    signed = json.loads(json.dumps(sign(manifest, key)))
    tamper(signed)
    assert verify_manifest(signed, [raw_public(key)]) == "signature does not match the manifest"


def signature_of(m: dict[str, Any]) -> dict[str, Any]:
    return dict(m["signature"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: None, "no signature"),
        (lambda s: "c2ln", "the signature is not an object"),
        (lambda s: {**s, "sig": None}, "the signature is not an object"),
        (lambda s: {**s, "alg": "rsa"}, "the signature algorithm 'rsa' is not supported"),
        (lambda s: {**s, "key_id": "../../etc"}, "the signature's key_id is not 16 lowercase"),
        (lambda s: {**s, "key_id": "0123456789abcdef"}, "signed by an unknown key 0123456789ab"),
        (lambda s: {**s, "sig": "not base64!"}, "the signature is not the base64 of 64 bytes"),
        (lambda s: {**s, "sig": s["sig"][:-4]}, "the signature is not the base64 of 64 bytes"),
        (
            lambda s: {**s, "sig": base64.b64encode(bytes(64)).decode()},
            "signature does not match the manifest",
        ),
    ],
)
def test_a_bad_signature_field_says_why(
    manifest: dict[str, Any], key: Ed25519PrivateKey, change: Any, reason: str
) -> None:
    signed = sign(manifest, key)
    signed["signature"] = change(signature_of(signed))
    assert str(verify_manifest(signed, [raw_public(key)])).startswith(reason)


def test_a_manifest_without_a_canonical_form_is_refused_not_raised(
    key: Ed25519PrivateKey,
) -> None:
    signed = sign({"v": 1}, key)
    signed["v"] = math.nan
    assert verify_manifest(signed, [raw_public(key)]) == (
        "the manifest has no canonical form: manifest.v is nan; only finite numbers can be signed"
    )
    not_an_object: Any = [1, 2]
    assert verify_manifest(not_an_object, [raw_public(key)]) == "the manifest is not a JSON object"


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_as_a_manifest_gives_a_reason_never_an_exception(value: Any) -> None:
    reason = verify_manifest(value, [bytes(32)])
    assert isinstance(reason, str)
    assert reason


def test_a_pinned_key_of_the_wrong_size_is_a_configuration_error(
    manifest: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="an Ed25519 public key is 32 raw bytes, not 31"):
        verify_manifest(manifest, [bytes(31)])


def test_key_id_is_the_start_of_the_keys_sha256() -> None:
    public = bytes.fromhex(RFC8032[0][2])
    assert key_id(public) == hashlib.sha256(public).hexdigest()[:16]
    assert len(key_id(public)) == 16


def test_the_unsigned_default_bundle_is_reported_as_unsigned(manifest: dict[str, Any]) -> None:
    assert manifest["signature"] is None
    assert verify_manifest(manifest, [bytes.fromhex(RFC8032[0][2])]) == "no signature"


def test_the_device_side_needs_nothing_beyond_the_standard_library() -> None:
    tree = ast.parse((REPO / "sdk" / "_signing.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == set(), "the SDK verifies signatures without cryptography or any other package"
