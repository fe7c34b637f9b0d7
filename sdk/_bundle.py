"""Model bundles: a directory or zip of ``model.onnx``, ``playbook.json`` and ``manifest.json``.

A bundle is accepted only whole: the manifest parses and names this SDK's feature schema,
every file's SHA-256 matches the manifest, the model's personas are the manifest's, the model
runs on a canned input with sane outputs, and the playbook compiles. Anything else raises
``ModelError`` with the reason, and the caller keeps its last good bundle. (Signature,
version and expiry checks for bundles downloaded from a backend are the sync part's.)
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._inference import PersonaModel
from ._playbook import Playbook
from .errors import ModelError
from .features import SCHEMA_VERSION

FILES = ("model.onnx", "playbook.json", "manifest.json")
MAX_FILE_BYTES = 4 * 1024 * 1024
REQUIRED = (
    "version",
    "schema_version",
    "personas",
    "sha256",
    "created_at",
    "expires_at",
    "min_sdk_version",
    "rollout",
)


@dataclass(frozen=True)
class Bundle:
    version: int
    manifest: dict[str, Any]
    model: PersonaModel
    playbook: Playbook
    persona_names: dict[str, str]  # id -> name, in the model's class order
    persona_traits: dict[str, tuple[str, ...]]

    @property
    def persona_ids(self) -> tuple[str, ...]:
        return tuple(self.persona_names)


def load_bundle(source: Path) -> Bundle:
    """Read and check a bundle directory or ``.zip``; raises ``ModelError`` with the reason."""
    return from_files(_read(source), str(source))


def default_bundle() -> Bundle:
    """The bundle that ships inside the SDK, so a fresh install works offline."""
    folder = resources.files("edgepersona.sdk") / "default_bundle"
    files = {name: (folder / name).read_bytes() for name in FILES}
    return from_files(files, "default bundle")


def from_files(files: dict[str, bytes], origin: str) -> Bundle:
    try:
        manifest = json.loads(files["manifest.json"])
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{origin}: manifest.json is missing or not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or any(key not in manifest for key in REQUIRED):
        raise ModelError(f"{origin}: the manifest must hold {', '.join(REQUIRED)}")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise ModelError(
            f"{origin}: built for feature schema {manifest['schema_version']!r}, "
            f"this SDK computes schema {SCHEMA_VERSION}"
        )
    hashes = manifest["sha256"]
    for name in ("model.onnx", "playbook.json"):
        if name not in files:
            raise ModelError(f"{origin}: {name} is missing")
        if (
            not isinstance(hashes, dict)
            or hashes.get(name) != hashlib.sha256(files[name]).hexdigest()
        ):
            raise ModelError(f"{origin}: {name} does not match its SHA-256 in the manifest")
    personas = manifest["personas"]
    try:
        names = {str(p["id"]): str(p["name"]) for p in personas}
        traits = {str(p["id"]): tuple(str(t) for t in p.get("traits", ())) for p in personas}
        version = int(manifest["version"])
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{origin}: personas must be a list of {{id, name}} ({exc})") from exc
    model = PersonaModel.from_bytes(files["model.onnx"])
    model_personas = [p["id"] for p in json.loads(model.metadata.get("personas", "[]"))]
    if model_personas != list(names):
        raise ModelError(
            f"{origin}: the model's personas {model_personas} differ from the manifest's"
        )
    try:
        playbook_data = json.loads(files["playbook.json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{origin}: playbook.json is not JSON ({exc})") from exc
    playbook = Playbook.from_dict(playbook_data, names)
    return Bundle(version, manifest, model, playbook, names, traits)


def _read(source: Path) -> dict[str, bytes]:
    try:
        if source.is_dir():
            return {
                name: _limited((source / name).read_bytes(), name)
                for name in FILES
                if (source / name).is_file()
            }
        with zipfile.ZipFile(source) as archive:
            found = {}
            for info in archive.infolist():
                name = Path(info.filename).name
                if name in FILES:
                    if info.file_size > MAX_FILE_BYTES:
                        raise ModelError(f"{source}: {name} is larger than {MAX_FILE_BYTES} bytes")
                    found[name] = _limited(archive.read(info), name)
            return found
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read bundle {source}: {exc}") from exc


def _limited(data: bytes, name: str) -> bytes:
    if len(data) > MAX_FILE_BYTES:
        raise ModelError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
    return data
