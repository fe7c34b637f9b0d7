"""What devices fetch from the registry: ``GET /v1/models/current`` and a version's bundle.

``/v1/models/current`` answers the signed manifest this device should run (rollout-aware),
with an ``ETag`` (the SHA-256 of the canonical manifest) so a device that polls gets a bodiless
304 while nothing changed, and 204 when no version is rolled out to it: nothing to do, keep
the bundle it has. Any published version's bundle can be downloaded by any registered device:
the files are the same for every device and are not secret; the rollout decides what a
device is told to run, not what it may read.
"""

from __future__ import annotations

import io
import zipfile

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import Connection

from . import registry, store
from .db import get_db
from .errors import ApiError
from .metrics import metrics
from .web import bearer_token_sha256, unknown_token

__all__ = ["bp", "bundle_zip"]

bp = Blueprint("models", __name__)
# A fixed timestamp in every zip entry, so one version's zip is the same bytes every time.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@bp.get("/v1/models/current")
def current() -> Response:
    """200 and the manifest this device should run; 304 if unchanged; 204 if there is none."""
    token_sha256 = bearer_token_sha256()
    db = get_db()
    with db.begin():
        served = registry.current_for(db, _device_id(db, token_sha256))
    if served is None:
        _count_manifest("204", "none")
        return _empty(204)
    unchanged = request.if_none_match.contains_weak(served.etag)
    _count_manifest("304" if unchanged else "200", str(served.version))
    response = _empty(304) if unchanged else jsonify(served.manifest())
    response.set_etag(served.etag)
    # The answer depends on who asks: no shared cache may keep it, and a device revalidates.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/v1/models/<int(max=2147483647):version>/bundle")
def bundle(version: int) -> Response:
    """The zip of ``model.onnx``, ``playbook.json`` and the signed ``manifest.json``."""
    token_sha256 = bearer_token_sha256()
    db = get_db()
    with db.begin():
        _device_id(db, token_sha256)
        files = registry.bundle_files(db, version)
    if files is None:
        raise ApiError(
            404,
            "unknown_version",
            f"There is no published model version {version}; "
            "GET /v1/models/current names the one to fetch.",
        )
    metrics(current_app).inc("edgepersona_model_bundles_served_total", version=str(version))
    return Response(
        bundle_zip(files),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="edgepersona-model-{version}.zip"'},
    )


def bundle_zip(files: dict[str, bytes]) -> bytes:
    """The files as a zip, entries in a fixed order and with fixed times (same bytes each time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), files[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _device_id(db: Connection, token_sha256: str) -> str:
    device_id = store.find_device(db, token_sha256)
    if device_id is None:
        raise unknown_token()
    return device_id


def _count_manifest(status: str, version: str) -> None:
    metrics(current_app).inc(
        "edgepersona_model_manifests_served_total", status=status, version=version
    )


def _empty(status: int) -> Response:
    response = Response(status=status)
    del response.headers["Content-Type"]  # no body, so no media type
    return response
