"""The model registry: publish, promote and roll back bundles, and pick each device's model.

Every function works on the caller's connection inside the caller's transaction, so a refused
operation (``RegistryError``) leaves nothing written. Versions are assigned here, one more than
the newest stored, under a lock (PostgreSQL: an advisory lock; SQLite: its write lock), so two
operators publishing at once get two different versions, never a clash.

**The rollout share is signed.** ``rollout`` is a field of the manifest, and the device checks
the signature over the canonical manifest, which is every field but ``signature``
(``edgepersona.sdk._signing.canonical_manifest``). Leaving the share outside the signature
would need a second canonical form in every verifier, and would make the manifest carry a field
nobody vouches for. The server holds the key, so ``promote`` re-signs the manifest with the new
share. The share is information for people and tools: the device does not act on it; the
server decides who runs a version (``current_for``, by ``backend.rollout``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from edgepersona.sdk._bundle import FILES, MAX_FILE_BYTES, from_files
from edgepersona.sdk._signing import canonical_manifest
from edgepersona.sdk.errors import ModelError

from .errors import RegistryError
from .keys import sign_manifest
from .rollout import in_rollout
from .schema import models

__all__ = [
    "ROLLBACK_PERCENT",
    "Served",
    "bundle_files",
    "current_for",
    "list_models",
    "manifest_etag",
    "promote",
    "publish",
    "rollback",
]

# A rollback re-publishes files that were already trusted, to undo a bad version now: it goes
# to every device at once (a staged rollback would leave the bad version running).
ROLLBACK_PERCENT = 100
_PG_LOCK_KEY = 0x6570_7267  # "eprg": serialises version numbering across workers
_ROLLED_OUT = (
    select(models.c.version, models.c.rollout_percent)
    .where(models.c.rollout_percent > 0)
    .order_by(models.c.version.desc())
)
_MANIFEST = select(models.c.manifest).where(models.c.version == bindparam("version"))


def publish(
    conn: Connection, files: dict[str, bytes], private_key: Ed25519PrivateKey, now: float
) -> dict[str, Any]:
    """Check, number, sign and store a bundle at 0% rollout; return its signed manifest.

    ``files`` maps ``model.onnx``, ``playbook.json`` and ``manifest.json`` to their bytes. The
    bundle is checked with the SDK's own ``from_files``, so the registry never stores what a
    device would refuse. The manifest's ``version`` must be greater than every published
    version (a stale upload is refused) and is kept: devices compare it with the version of
    the bundle they run, the built-in one included (version 1 ships with the SDK).
    Raises ``RegistryError`` (``invalid_bundle``, ``version_not_newer``).
    """
    manifest = _checked_manifest(files, now)
    _lock_versions(conn)
    newest = _newest_version(conn)
    if manifest["version"] <= newest:
        raise RegistryError(
            "version_not_newer",
            f"The bundle's manifest has version {manifest['version']}, but version {newest} "
            f"is already published; give it a version above {newest} (to publish an older "
            "model again, roll back to it).",
        )
    return _store(
        conn,
        manifest,
        files,
        version=int(manifest["version"]),
        percent=0,
        source_version=None,
        private_key=private_key,
        now=now,
    )


def promote(
    conn: Connection, version: int, percent: int, private_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """Roll ``version`` out to ``percent`` (0..100) of devices; return the re-signed manifest.

    Lowering the share (down to 0) halts a rollout. Raises ``RegistryError``
    (``invalid_percent``, ``unknown_version``).
    """
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise RegistryError(
            "invalid_percent",
            f"The rollout percent is {percent!r:.40}; accepted: a whole number from 0 to 100.",
        )
    row = conn.execute(
        select(models.c.manifest).where(models.c.version == version).with_for_update()
    ).one_or_none()
    if row is None:
        raise _unknown(version)
    manifest = json.loads(row.manifest)
    manifest["rollout"] = {**manifest["rollout"], "percent": percent}
    signed = sign_manifest(manifest, private_key)
    conn.execute(
        update(models)
        .where(models.c.version == version)
        .values(manifest=_dumps(signed), rollout_percent=percent)
    )
    return signed


def rollback(
    conn: Connection, to_version: int, private_key: Ed25519PrivateKey, now: float
) -> dict[str, Any]:
    """Publish the files of ``to_version`` again as a new version (newest + 1), to everyone.

    Devices never accept a lower version, so going back means going forward with old files.
    Raises ``RegistryError`` (``unknown_version``, or ``invalid_bundle`` if that version has
    expired since and devices would refuse it).
    """
    _lock_versions(conn)
    files = bundle_files(conn, to_version)
    if files is None:
        raise _unknown(to_version)
    manifest = json.loads(files["manifest.json"])
    _check_not_expired(manifest, now, f"Version {to_version}")
    return _store(
        conn,
        manifest,
        files,
        version=_newest_version(conn) + 1,
        percent=ROLLBACK_PERCENT,
        source_version=to_version,
        private_key=private_key,
        now=now,
    )


def list_models(conn: Connection) -> list[dict[str, Any]]:
    """Every published version, newest first: number, kind, source, share and time."""
    rows = conn.execute(
        select(
            models.c.version,
            models.c.kind,
            models.c.source_version,
            models.c.rollout_percent,
            models.c.created_at,
        ).order_by(models.c.version.desc())
    ).mappings()
    return [dict(row) for row in rows]


@dataclass(frozen=True)
class Served:
    """The signed manifest a device should run, as stored, and its entity tag."""

    version: int
    manifest_json: str  # the signed manifest as the registry stored it (JSON text)
    etag: str  # unquoted: the SHA-256 of its canonical form

    def manifest(self) -> dict[str, Any]:
        """The manifest, parsed afresh (the caller may change it)."""
        parsed: dict[str, Any] = json.loads(self.manifest_json)
        return parsed


def current_for(conn: Connection, device_id: str) -> Served | None:
    """The signed manifest of the newest version whose rollout includes ``device_id``, or None.

    A version at 100% includes everyone, so nothing older than the newest such version is
    ever looked at.
    """
    rolled_out = conn.execute(_ROLLED_OUT)
    for version, percent in rolled_out:
        if in_rollout(device_id, version, percent):
            found: str = conn.execute(_MANIFEST, {"version": version}).scalar_one()
            return Served(version, found, _stored_manifest_etag(found))
    return None


def bundle_files(conn: Connection, version: int) -> dict[str, bytes] | None:
    """The three files of a published version (the manifest as served), or None."""
    row = conn.execute(
        select(models.c.manifest, models.c.model_onnx, models.c.playbook_json).where(
            models.c.version == version
        )
    ).one_or_none()
    if row is None:
        return None
    return {
        "model.onnx": bytes(row.model_onnx),
        "playbook.json": bytes(row.playbook_json),
        "manifest.json": row.manifest.encode(),
    }


def manifest_etag(manifest: dict[str, Any]) -> str:
    """The entity tag of a manifest (unquoted): the SHA-256 of its canonical form."""
    return hashlib.sha256(canonical_manifest(manifest)).hexdigest()


# Keyed by the stored text itself, so an entry can never go stale: a publish, promote or
# rollback stores different text (another version or share, a new signature), which is another
# key, on every worker. Polling devices mostly ask for the same one or two manifests, and
# canonicalising one (310 numbers formatted in Python) is most of a 304's cost.
@functools.lru_cache(maxsize=16)
def _stored_manifest_etag(manifest_json: str) -> str:
    return manifest_etag(json.loads(manifest_json))


def _checked_manifest(files: dict[str, bytes], now: float) -> dict[str, Any]:
    unknown = sorted(set(files) - set(FILES))
    if unknown:
        raise _invalid(f"it holds {', '.join(unknown)}; accepted files: {', '.join(FILES)}")
    for name, data in files.items():
        if len(data) > MAX_FILE_BYTES:
            raise _invalid(f"{name} is larger than {MAX_FILE_BYTES} bytes")
    try:
        bundle = from_files(files, "the bundle")
        canonical_manifest(bundle.manifest)
    except ModelError as exc:
        raise _invalid(str(exc).removeprefix("the bundle: ")) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _invalid(f"a device could not read it ({exc})") from None
    manifest = bundle.manifest
    version = manifest["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _invalid(
            f"the manifest's version is {version!r:.40}; accepted: an integer of 1 or more"
        )
    if not isinstance(manifest["rollout"], dict):
        raise _invalid('the manifest\'s rollout must be an object such as {"percent": 0}')
    _check_not_expired(manifest, now, "The bundle")
    return manifest


def _check_not_expired(manifest: dict[str, Any], now: float, what: str) -> None:
    try:
        expires = datetime.fromisoformat(str(manifest["expires_at"]))
    except ValueError:
        raise _invalid(
            f"expires_at {manifest['expires_at']!r:.40} is not an ISO-8601 time"
        ) from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    if expires.timestamp() <= now:
        raise RegistryError(
            "invalid_bundle",
            f"{what} expired at {manifest['expires_at']}, and devices refuse expired bundles; "
            "publish a bundle with a later expires_at.",
        )


def _store(
    conn: Connection,
    manifest: dict[str, Any],
    files: dict[str, bytes],
    *,
    version: int,
    percent: int,
    source_version: int | None,
    private_key: Ed25519PrivateKey,
    now: float,
) -> dict[str, Any]:
    unsigned = copy.deepcopy(manifest)
    unsigned["version"] = version
    unsigned["rollout"] = {**unsigned["rollout"], "percent": percent}
    signed = sign_manifest(unsigned, private_key)
    conn.execute(
        insert(models).values(
            version=version,
            manifest=_dumps(signed),
            model_onnx=files["model.onnx"],
            playbook_json=files["playbook.json"],
            rollout_percent=percent,
            created_at=now,
            kind="model" if source_version is None else "rollback",
            source_version=source_version,
        )
    )
    return signed


def _lock_versions(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _newest_version(conn: Connection) -> int:
    return int(conn.execute(select(func.max(models.c.version))).scalar_one_or_none() or 0)


def _dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=1)


def _invalid(reason: str) -> RegistryError:
    return RegistryError("invalid_bundle", f"The bundle is refused: {reason}.")


def _unknown(version: int) -> RegistryError:
    return RegistryError(
        "unknown_version",
        f"There is no published model version {version}; GET /v1/admin/models lists them.",
    )
