"""Bundles are accepted whole or refused with the reason; the default one ships and works."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from edgepersona.sdk import ModelError
from edgepersona.sdk._bundle import default_bundle, load_bundle
from edgepersona.sdk.features import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / "sdk" / "default_bundle"


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, target)
    return target


def rewrite_manifest(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def rehash(folder: Path, name: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_default_bundle_ships_and_loads() -> None:
    bundle = default_bundle()
    assert bundle.version >= 1
    assert bundle.manifest["schema_version"] == SCHEMA_VERSION
    assert len(bundle.persona_ids) == 5
    assert (DEFAULT_DIR / "model.onnx").stat().st_size <= 64 * 1024


def test_directory_and_zip_load_alike(bundle_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in bundle_dir.iterdir():
            out.write(path, path.name)
    assert load_bundle(archive).persona_ids == load_bundle(bundle_dir).persona_ids


def test_a_tampered_model_is_refused(bundle_dir: Path) -> None:
    data = bytearray((bundle_dir / "model.onnx").read_bytes())
    data[-20] ^= 0xFF
    (bundle_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model\.onnx does not match its SHA-256"):
        load_bundle(bundle_dir)


def test_a_rehashed_garbage_model_is_still_refused(bundle_dir: Path) -> None:
    (bundle_dir / "model.onnx").write_bytes(b"\x08\x07garbage that is not a model")
    rehash(bundle_dir, "model.onnx")
    with pytest.raises(ModelError):
        load_bundle(bundle_dir)


def test_a_malformed_playbook_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / "playbook.json").write_text(
        '{"format": "edgepersona-playbook/1", '
        '"surfaces": {"home": {"rules": [{"variant": "x", '
        '"when": "moment.place = 1"}]}}}'
    )
    rehash(bundle_dir, "playbook.json")
    with pytest.raises(ModelError, match="playbook"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": SCHEMA_VERSION + 1}, "feature schema"),
        ({"personas": [{"id": "x", "name": "X"}]}, "personas"),
        ({"sha256": "nope"}, "SHA-256"),
    ],
)
def test_manifest_problems_are_named(bundle_dir: Path, changes: dict, message: str) -> None:
    rewrite_manifest(bundle_dir, **changes)
    with pytest.raises(ModelError, match=message):
        load_bundle(bundle_dir)


def test_missing_or_unreadable_bundles(tmp_path: Path, bundle_dir: Path) -> None:
    (bundle_dir / "playbook.json").unlink()
    with pytest.raises(ModelError, match=r"playbook\.json is missing"):
        load_bundle(bundle_dir)
    (tmp_path / "not.zip").write_bytes(b"PK garbage")
    with pytest.raises(ModelError, match="cannot read bundle"):
        load_bundle(tmp_path / "not.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"manifest\.json"):
        load_bundle(tmp_path / "empty")
