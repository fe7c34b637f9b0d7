"""Model updates from the backend: check, download, verify, run in shadow, then swap.

A bundle offered by the server is accepted only if, in this order (cheapest first, and
nothing is downloaded for a manifest that already fails): its manifest's Ed25519 signature
verifies against a pinned key; its version is newer than the one in use and than any
candidate; it has not expired; this SDK is new enough for it; the download fits
``max_bundle_bytes``; the zip's own manifest is the signed manifest (no mix and match); every
file's hash matches, and the model runs on a canned input with sane outputs (``_bundle``).
A refused version is recorded with its reason and not fetched again, except when the
refusal was this device's own: a bundle it could not keep (disk full) is fetched again at the
next check. A download that never arrived (an error status such as 429 or 503, a network
error) refuses nothing: ``sync()`` backs off as for the manifest poll and asks again.

An accepted bundle is kept in ``<data_dir>/bundles/<version>.zip`` and runs in shadow: for
the next ``shadow_decisions`` personalized decisions its top persona is computed beside the
one in use and the agreement is recorded; then it replaces the current bundle in one
reference swap, so ``decide()`` never waits and never sees half a bundle. A restart during
the shadow period starts that count again. At open, the adopted bundle is read back and
checked again (hashes, signature); if that fails the SDK falls back to the bundle it ships.

Every change of state is one transaction (the ETag with the history entry and the shadow or
adopted version), so a write that fails (disk full: ``StoreError``) leaves the previous state
whole. A swap is written before it is made: if the write fails the candidate stays in shadow
and the next decision tries again, and ``decide()`` keeps serving the bundle in use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import sqlite3
import zipfile
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import httpx
import numpy as np

from ._bundle import FILES, MAX_FILE_BYTES, Bundle, from_files
from ._decisions import Decider
from ._signing import verify_manifest
from ._store import Store, put_settings
from ._version import SDK_VERSION
from .clock import Clock
from .errors import ModelError, StoreError

__all__ = ["ModelUpdater", "RefusedError"]

HISTORY_KEPT = 50
NOT_KEPT = "cannot keep the bundle on this device"  # a refusal to retry: the device's fault
_Entry = tuple[float, int | None, str, str | None]  # a history row: ts, version, event, reason


class RefusedError(Exception):
    """A bundle offered by the server was refused; the message is the recorded reason."""


class ModelUpdater:
    """The device's side of ``/v1/models``: one per ``EdgePersona``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        decider: Decider,
        public_keys: Sequence[bytes],
        shadow_decisions: int,
        max_bundle_bytes: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._decider = decider
        self._keys = tuple(public_keys)
        self._shadow_decisions = shadow_decisions
        self._max_bytes = max_bundle_bytes
        self._folder = store.data_dir / "bundles"
        self._candidate: Bundle | None = None
        self._seen = 0
        self._compared = 0
        self._agreed = 0
        self._download: dict[str, Any] = {"state": "idle"}
        # What the last check() concluded, set before it is stored, so that a failed write
        # can still report it.
        self.outcome = "not checked"
        # Refusals whose history entry could not be written (disk full): written first by the
        # next change that can be, so the reason reaches the history once there is room.
        self._unrecorded: list[_Entry] = []

    # -- at open --------------------------------------------------------------------------

    def restore(self) -> None:
        """Serve the adopted bundle again and resume a shadow run, if they still verify."""
        for key, resume in (("model.adopted", self._decider.swap), ("model.shadow", self._shadow)):
            version = self._store.setting(key)
            if version is None:
                continue
            try:
                bundle = self._read_kept(int(version))
            except (RefusedError, ModelError, OSError, ValueError) as exc:
                self._write({key: None}, (int(version), "rejected", f"at start: {exc}"))
                continue
            resume(bundle)

    # -- checking the server --------------------------------------------------------------

    def check(self, client: httpx.Client, headers: dict[str, str]) -> str:
        """Ask for the current manifest and act on it; a one-line outcome for ``SyncResult``.

        Raises ``httpx.HTTPError`` for network trouble and ``httpx.HTTPStatusError`` when the
        manifest poll or the download is not answered 200 (the caller backs off); neither
        refuses the version, so the next check tries it again.
        """
        if self._candidate is not None:
            self.outcome = (
                f"shadow v{self._candidate.version} {self._seen}/{self._shadow_decisions}"
            )
            return self.outcome
        etag = self._store.setting("model.etag")
        response = client.get(
            "/v1/models/current", headers={**headers, **({"If-None-Match": etag} if etag else {})}
        )
        if response.status_code in (204, 304):
            self.outcome = "unchanged"
            return self.outcome
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"/v1/models/current answered {response.status_code}",
                request=response.request,
                response=response,
            )
        new_etag = response.headers.get("ETag")
        try:
            manifest = response.json()
            version = self._check_manifest(manifest)
        except (RefusedError, ValueError) as exc:
            return self._refuse(_version_of(response), str(exc), new_etag)
        self._download = {"state": "downloading", "version": version, "bytes": 0}
        try:
            bundle, data = self._fetch(client, headers, manifest, version)
            self._keep(version, data)
        except RefusedError as exc:
            return self._refuse(version, str(exc), new_etag)
        except httpx.HTTPError as exc:  # the server's or the network's trouble, not the bundle's
            self._download = {"state": "failed", "version": version, "reason": str(exc)}
            raise
        try:
            self._write(
                {"model.etag": new_etag, "model.shadow": str(version)}, (version, "shadow", None)
            )
        except StoreError as exc:  # not recorded, so not kept: fetched again next time
            with contextlib.suppress(OSError):
                (self._folder / f"{version}.zip").unlink()
            self.outcome = f"not kept v{version}: {exc}"
            self._download = {"state": "failed", "version": version, "reason": str(exc)}
            raise
        self.outcome = f"shadow v{version} 0/{self._shadow_decisions}"
        self._shadow(bundle)
        self._download = {"state": "verified", "version": version, "bytes": len(data)}
        return self.outcome

    def _check_manifest(self, manifest: Any) -> int:
        if not self._keys:
            raise RefusedError("no public key is pinned (EdgePersona.open(public_key=...))")
        problem = verify_manifest(manifest, self._keys)
        if problem is not None:
            raise RefusedError(problem)
        version = manifest.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise RefusedError("the manifest's version is not an integer")
        current = self._decider.bundle()
        in_use = current.version if current is not None else 0
        if version <= in_use:
            raise RefusedError(f"version {version} is not newer than v{in_use} in use (rollback)")
        if self._refused_before(version):
            raise RefusedError(f"version {version} was refused before")
        expires = _timestamp(manifest.get("expires_at"))
        if expires is None or expires <= self._clock.time():
            raise RefusedError(f"the manifest expired at {manifest.get('expires_at')!r:.40}")
        if _version_tuple(str(manifest.get("min_sdk_version", "0"))) > _version_tuple(SDK_VERSION):
            raise RefusedError(
                f"needs SDK {manifest.get('min_sdk_version')!r:.20}, this is {SDK_VERSION}"
            )
        return version

    def _fetch(
        self, client: httpx.Client, headers: dict[str, str], manifest: dict[str, Any], version: int
    ) -> tuple[Bundle, bytes]:
        chunks = []
        size = 0
        with client.stream("GET", f"/v1/models/{version}/bundle", headers=headers) as response:
            if response.status_code != 200:
                # Nothing was received, so there is nothing to refuse: the round backs off
                # (honouring Retry-After) and the next check downloads it again.
                raise httpx.HTTPStatusError(
                    f"the bundle download answered {response.status_code}",
                    request=response.request,
                    response=response,
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self._max_bytes:
                raise RefusedError(f"the bundle is {declared} bytes, over {self._max_bytes}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise RefusedError(f"the download went past {self._max_bytes} bytes")
                chunks.append(chunk)
                self._download["bytes"] = size
        data = b"".join(chunks)
        bundle = self._verify(data, f"bundle v{version}")
        if bundle.manifest != manifest:
            raise RefusedError(
                "the bundle's manifest is not the signed manifest offered (mix and match)"
            )
        return bundle, data

    def _verify(self, data: bytes, origin: str) -> Bundle:
        files = _unzip(data)
        try:
            bundle = from_files(files, origin)
        except ModelError as exc:
            raise RefusedError(str(exc)) from None
        problem = verify_manifest(bundle.manifest, self._keys)
        if problem is not None:
            raise RefusedError(f"{origin}: {problem}")
        return bundle

    # -- shadow and swap ------------------------------------------------------------------

    def _shadow(self, bundle: Bundle) -> None:
        self._candidate, self._seen, self._compared, self._agreed = bundle, 0, 0, 0
        self._decider.shadow = self._observe

    def _observe(self, features: tuple[float, ...] | None, top: str | None) -> None:
        """One decision served; compared when it was personalized (else only counted)."""
        candidate = self._candidate
        if candidate is None:
            return
        if features is not None:
            probabilities = candidate.model.predict_proba(np.asarray(features, dtype=np.float32))
            self._agreed += candidate.persona_ids[int(np.argmax(probabilities))] == top
            self._compared += 1
        self._seen += 1
        if self._seen >= self._shadow_decisions:
            self._adopt(candidate)

    def _adopt(self, bundle: Bundle) -> None:
        agreement = self._agreed / self._compared if self._compared else None
        reason = (
            f"after {self._seen} decisions, none personalized"
            if agreement is None
            else f"agreed on {agreement:.0%} of {self._compared} personalized decisions"
        )
        try:
            previous = self._store.setting("model.adopted")
            self._write(
                {"model.adopted": str(bundle.version), "model.shadow": None},
                (bundle.version, "adopted", reason),
            )
        except StoreError as exc:  # stay in shadow; the next decision tries again
            self._download = {**self._download, "adopt_error": str(exc)}
            return
        self._decider.shadow = None
        self._candidate = None
        self._decider.swap(bundle)
        self._download.pop("adopt_error", None)
        if previous is not None and previous != str(bundle.version):
            with contextlib.suppress(OSError):  # the new one is the last good bundle now
                (self._folder / f"{previous}.zip").unlink()

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``EdgePersona.model_status()`` reports."""
        current = self._decider.bundle()
        candidate = self._candidate
        rows = self._store.read_committed(
            lambda db: db.execute(
                "SELECT version, event, reason, ts FROM bundle_history ORDER BY id DESC LIMIT ?",
                (HISTORY_KEPT,),
            ).fetchall()
        )
        return {
            "version": current.version if current is not None else None,
            "source": "downloaded" if self._store.setting("model.adopted") else "built-in",
            "shadow": None
            if candidate is None
            else {
                "version": candidate.version,
                "decisions": self._seen,
                "of": self._shadow_decisions,
                "agreement": self._agreed / self._compared if self._compared else None,
            },
            "download": dict(self._download),
            "history": [{"version": v, "event": e, "reason": r, "at": ts} for v, e, r, ts in rows],
        }

    # -- storage --------------------------------------------------------------------------

    def _refuse(self, version: int | None, reason: str, etag: str | None) -> str:
        self.outcome = f"rejected v{version}: {reason}"
        self._download = {"state": "rejected", "version": version, "reason": reason}
        # Remember the ETag of a refused manifest: the next poll gets a 304, not the same
        # bundle again; a new publication changes the ETag and is looked at afresh. A bundle
        # this device could not keep is not at fault: it is fetched again next time.
        settings = {} if reason.startswith(NOT_KEPT) else {"model.etag": etag}
        self._write(settings, (version, "rejected", reason), keep_if_failed=True)
        return self.outcome

    def _refused_before(self, version: int) -> bool:
        return bool(
            self._store.read_committed(
                lambda db: db.execute(
                    "SELECT 1 FROM bundle_history WHERE version = ? AND event = 'rejected' "
                    "AND substr(COALESCE(reason, ''), 1, ?) != ?",
                    (version, len(NOT_KEPT), NOT_KEPT),
                ).fetchone()
            )
        )

    def _keep(self, version: int, data: bytes) -> None:
        """Write the zip so it survives a crash whole or not at all (temp file, fsync, rename)."""
        final = self._folder / f"{version}.zip"
        temporary = final.with_suffix(".part")
        try:
            self._folder.mkdir(exist_ok=True)
            with open(temporary, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise RefusedError(f"{NOT_KEPT}: {exc.strerror}") from None

    def _read_kept(self, version: int) -> Bundle:
        return self._verify((self._folder / f"{version}.zip").read_bytes(), f"kept v{version}")

    def _write(
        self,
        settings: Mapping[str, str | None],
        history: tuple[int | None, str, str | None],
        keep_if_failed: bool = False,
    ) -> None:
        """Change settings and add a history entry in one transaction (with any unrecorded).

        ``keep_if_failed``: the entry states a fact that stands even if it cannot be written
        now (a refusal), so it is kept for the next write rather than lost.
        """
        entries = [*self._unrecorded, (self._clock.time(), *history)]
        try:
            self._store.write(partial(_changed, settings=settings, entries=entries))
        except StoreError:
            if keep_if_failed:
                self._unrecorded = entries[-HISTORY_KEPT:]
            raise
        self._unrecorded = []


def _changed(
    conn: sqlite3.Connection, settings: Mapping[str, str | None], entries: list[_Entry]
) -> None:
    put_settings(conn, settings)
    conn.executemany(
        "INSERT INTO bundle_history (ts, version, event, reason) VALUES (?, ?, ?, ?)", entries
    )


def _unzip(data: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {}
            for info in archive.infolist():
                if info.filename not in FILES:
                    continue
                if info.file_size > MAX_FILE_BYTES:
                    raise RefusedError(f"{info.filename} would unpack to {info.file_size} bytes")
                files[info.filename] = archive.read(info)[: MAX_FILE_BYTES + 1]
            return files
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise RefusedError(f"the bundle is not a readable zip ({exc})") from None


def _version_of(response: httpx.Response) -> int | None:
    with contextlib.suppress(ValueError, AttributeError):
        version = response.json().get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            return version
    return None


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
