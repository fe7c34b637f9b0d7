"""Operator endpoints of the model registry, under ``/v1/admin``, behind the admin API key.

Every request must carry ``Authorization: Bearer <admin API key>``: none gives 401, anything
else (a wrong key, a device token, or any key while ``EDGEPERSONA_ADMIN_API_KEY`` is unset)
gives 403. A bundle is published as ``multipart/form-data`` with one file part per bundle file,
named ``model.onnx``, ``playbook.json`` and ``manifest.json`` (``curl -F model.onnx=@...``):
no base64 inflation, and the parts are the files exactly as ``models build`` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select

from edgepersona.sdk._bundle import MAX_FILE_BYTES

from . import registry, retrain
from .config import admin_key_matches
from .db import engine, get_db
from .errors import ApiError
from .keys import SigningError, load_private_key
from .schema import models
from .web import bearer_credential, body_bytes, json_body

__all__ = ["PUBLISH_MAX_BYTES", "bp"]

bp = Blueprint("admin", __name__)
# The three files at the size a device accepts at most, plus room for the multipart framing.
PUBLISH_MAX_BYTES = 3 * MAX_FILE_BYTES + 64 * 1024
KEYGEN_HINT = (
    "'edgepersona backend keygen --out DIR' (from Python: "
    "edgepersona.backend.keys.generate_keypair)"
)


@bp.before_request
def _require_admin_key() -> None:
    presented = bearer_credential(
        "This endpoint needs an 'Authorization: Bearer <admin API key>' header; the key is "
        "the server's EDGEPERSONA_ADMIN_API_KEY."
    )
    if current_app.config["ADMIN_API_KEY_SHA256"] is None:
        raise ApiError(
            403,
            "forbidden",
            "Admin endpoints are off on this server; set EDGEPERSONA_ADMIN_API_KEY to turn "
            "them on.",
        )
    if not admin_key_matches(current_app.config, presented):
        raise ApiError(
            403,
            "forbidden",
            "The bearer credential is not the admin API key; device tokens cannot call "
            "admin endpoints.",
        )


@bp.get("/v1/admin/models")
def list_models() -> Response:
    """Every published version, newest first, with the names of its personas."""
    db = get_db()
    with db.begin():
        found = registry.list_models(db)
        manifests = {
            version: manifest
            for version, manifest in db.execute(select(models.c.version, models.c.manifest))
        }
    for model in found:
        personas = json.loads(manifests[model["version"]])["personas"]
        model["personas"] = [persona["name"] for persona in personas]
    return jsonify(models=found)


@bp.post("/v1/admin/models")
def publish() -> tuple[Response, int]:
    """Publish the uploaded bundle at 0% rollout: 201 and its signed manifest."""
    key = _signing_key()
    request.max_content_length = PUBLISH_MAX_BYTES
    if request.mimetype != "multipart/form-data":
        shown = request.mimetype or "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The body was sent as {shown}; send multipart/form-data with the file parts "
            "model.onnx, playbook.json and manifest.json.",
        )
    files = {name: part.read() for name, part in request.files.items()}
    db = get_db()
    with db.begin():
        manifest = registry.publish(db, files, key, current_app.config["CLOCK"].time())
    response = jsonify(manifest)
    response.headers["Location"] = f"/v1/models/{manifest['version']}/bundle"
    return response, 201


@bp.post("/v1/admin/models/<int(max=2147483647):version>/promote")
def promote(version: int) -> Response:
    """Set the share of devices that get ``version``: JSON ``{"percent": 0..100}``."""
    key = _signing_key()
    body = json_body(body_bytes())
    if not isinstance(body, dict) or set(body) != {"percent"}:
        raise ApiError(
            422,
            "invalid_percent",
            'The body must be a JSON object with only the key "percent", such as {"percent": 30}.',
        )
    db = get_db()
    with db.begin():
        manifest = registry.promote(db, version, body["percent"], key)
    return jsonify(manifest)


@bp.post("/v1/admin/models/<int(max=2147483647):version>/rollback")
def rollback(version: int) -> tuple[Response, int]:
    """Publish ``version``'s files again as a new, higher version for every device (201)."""
    key = _signing_key()
    db = get_db()
    with db.begin():
        manifest = registry.rollback(db, version, key, current_app.config["CLOCK"].time())
    return jsonify(manifest), 201


@bp.post("/v1/admin/retrain")
def run_retrain() -> tuple[Response, int]:
    """Retrain from the stored aggregates; 201 and the report, or 409 with it when refused.

    Optional JSON body ``{"weeks": 1..52, "k": 2..12}``. The report is stored either way.
    """
    key = _signing_key()
    weeks, k = _retrain_options(body_bytes())
    try:  # on the engine: it reads without the write lock, then writes briefly
        report = retrain.retrain(
            engine(),
            weeks=weeks,
            k=k,
            floor=current_app.config["K_ANONYMITY_FLOOR"],
            private_key=key,
            now=current_app.config["CLOCK"].time(),
        )
    except retrain.RetrainError as refused:
        g.error_code = refused.code
        response = jsonify(
            error={"code": refused.code, "message": refused.message}, report=refused.report
        )
        return response, 409
    response = jsonify(report)
    response.headers["Location"] = f"/v1/models/{report['published_version']}/bundle"
    return response, 201


@bp.get("/v1/admin/retrains")
def list_retrains() -> Response:
    """Every stored retrain report, newest first."""
    db = get_db()
    with db.begin():
        found = retrain.list_retrains(db)
    return jsonify(retrains=found)


_RETRAIN_LIMITS = {"weeks": (1, 52), "k": (2, 12)}


def _retrain_options(raw: bytes) -> tuple[int, int | None]:
    """``weeks`` and ``k`` from an optional JSON body; 422 ``invalid_retrain_options``."""
    if not raw.strip():
        return retrain.DEFAULT_WEEKS, None
    body = json_body(raw)
    accepted = 'a JSON object with optional integers "weeks" (1..52) and "k" (2..12)'
    if not isinstance(body, dict) or set(body) - set(_RETRAIN_LIMITS):
        raise ApiError(
            422, "invalid_retrain_options", f'The body must be {accepted}, such as {{"weeks": 4}}.'
        )
    for name, (low, high) in _RETRAIN_LIMITS.items():
        value = body.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ApiError(
                422,
                "invalid_retrain_options",
                f"{name} is {value!r:.40}; accepted: a whole number from {low} to {high}.",
                field=name,
            )
    return body.get("weeks", retrain.DEFAULT_WEEKS), body.get("k")


def _signing_key() -> Ed25519PrivateKey:
    path = current_app.config["SIGNING_KEY_PATH"]
    if path is None:
        raise ApiError(
            503,
            "signing_key_unavailable",
            "No signing key is configured, so nothing can be published or changed; create one "
            f"with {KEYGEN_HINT} and set EDGEPERSONA_SIGNING_KEY_PATH to the .pem file.",
        )
    try:
        return load_private_key(Path(path))
    except SigningError as exc:
        raise ApiError(
            503, "signing_key_unavailable", f"The signing key cannot be used: {exc}."
        ) from None
