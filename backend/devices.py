"""Device registration and erasure: ``POST /v1/devices`` and ``DELETE /v1/devices/me``.

A device proves who it is with a bearer token made here from 32 random bytes. Only the token's
SHA-256 is stored, so a leaked database does not let anyone upload as a device; a lost token
cannot be recovered, and the device simply registers again.
"""

from __future__ import annotations

import secrets
import uuid

from flask import Blueprint, Response, current_app, jsonify

from . import store
from .db import get_db
from .web import bearer_token_sha256, hash_token, unknown_token

__all__ = ["bp"]

bp = Blueprint("devices", __name__)


@bp.post("/v1/devices")
def register() -> tuple[Response, int]:
    """Create a device; answer its id and the only copy of its token (201)."""
    device_id = uuid.uuid4().hex
    token = secrets.token_urlsafe(32)
    db = get_db()
    with db.begin():
        store.create_device(db, device_id, hash_token(token), current_app.config["CLOCK"].time())
    return jsonify(device_id=device_id, token=token), 201


@bp.delete("/v1/devices/me")
def erase() -> Response:
    """Delete every row held for the calling device, then the device; its token dies with it."""
    token_sha256 = bearer_token_sha256()
    db = get_db()
    with db.begin():
        device_id = store.lock_device(db, token_sha256)
        if device_id is None:
            raise unknown_token()
        store.erase_device(db, device_id)
    gone = Response(status=204)
    del gone.headers["Content-Type"]  # no body, so no media type
    return gone
