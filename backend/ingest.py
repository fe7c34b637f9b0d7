"""Aggregate ingest: ``POST /v1/aggregates``, a device's weekly noised upload.

The order of checks is part of the contract (docs/backend.md): a request without a valid token
gets 401 whatever its body (an oversized body is refused with 413 before it is read), then the
body is checked (415, 400, 422), then the rate limit (429). Only a valid upload counts against
the limit, and the aggregate, its outcomes and the rate-limit row are written in one transaction.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify

from . import store
from .db import get_db
from .errors import ApiError, PayloadError
from .metrics import metrics
from .payload import validate_upload
from .web import bearer_token_sha256, body_bytes, json_body, unknown_token

__all__ = ["bp"]

bp = Blueprint("ingest", __name__)


@bp.post("/v1/aggregates")
def upload() -> tuple[Response, int]:
    """Store a device's weekly aggregate once: 201 the first time, 200 for a replay."""
    config = current_app.config
    token_sha256 = bearer_token_sha256()
    # Read the whole body before taking any lock, so a slow client cannot hold one.
    raw = body_bytes()
    now = config["CLOCK"].time()
    db = get_db()
    with db.begin():
        device_id = store.lock_device(db, token_sha256)
        if device_id is None:
            raise unknown_token()
        try:
            upload = validate_upload(json_body(raw), now)
        except PayloadError as exc:
            g.rejected_field = exc.field
            where = "The payload" if exc.path == "payload" else f"Field {exc.path}"
            message = f"{where} is not valid: {exc.reason}."
            raise ApiError(422, "invalid_payload", message, field=exc.path) from None
        retry_after = store.rate_limit_retry_after(
            db, device_id, now, config["RATE_LIMIT_UPLOADS_PER_HOUR"]
        )
        if retry_after is not None:
            raise ApiError(
                429,
                "rate_limited",
                f"This device reached its limit of {config['RATE_LIMIT_UPLOADS_PER_HOUR']} "
                f"uploads per hour; retry in {retry_after} seconds.",
                headers={"Retry-After": str(retry_after)},
            )
        store.log_upload(db, device_id, now)
        if store.has_upload(db, device_id, upload.upload_id):
            status, code = "duplicate", 200
        else:
            store.insert_upload(db, device_id, upload, now)
            status, code = "accepted", 201
    metrics(current_app).inc(f"edgepersona_uploads_{status}_total")
    return jsonify(status=status), code


@bp.after_request
def _count_rejection(response: Response) -> Response:
    if response.status_code >= 400:
        metrics(current_app).inc(
            "edgepersona_upload_rejections_total",
            reason=g.get("error_code", f"http_{response.status_code}"),
            field=g.get("rejected_field", ""),
        )
    return response
