"""Aggregate ingest: ``POST /v1/aggregates``, a device's weekly noised upload.

The order of checks is part of the contract (docs/backend.md): a request without a valid token
gets 401 whatever its body (an oversized body is refused with 413 before it is read), then the
body is checked (415, 400, 422), then the rate limit (429). Only a valid upload counts against
the limit, a replay of a stored one is not charged again, and the aggregate (its outcomes
inside it) and the charge are written in one transaction.

The body is parsed and validated before the transaction (it needs no database), so the device
row is locked only for the write of a valid upload (``backend.upload_write``); the answers still
come in the contract's order, because a refused body is only reported once the token is known
to be good.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g

from . import store
from .db import engine, get_db
from .errors import ApiError, PayloadError
from .metrics import metrics
from .payload import Upload, validate_upload
from .upload_write import write_upload
from .web import bearer_token_sha256, body_bytes, json_body, unknown_token

__all__ = ["bp"]

bp = Blueprint("ingest", __name__)
_ANSWERS = {status: json.dumps({"status": status}) + "\n" for status in ("accepted", "duplicate")}


@bp.post("/v1/aggregates")
def upload() -> tuple[Response, int]:
    """Store a device's weekly aggregate once: 201 the first time, 200 for a replay."""
    config = current_app.config
    limit: int = config["RATE_LIMIT_UPLOADS_PER_HOUR"]
    token_sha256 = bearer_token_sha256()
    # Read the whole body before taking any lock, so a slow client cannot hold one.
    raw = body_bytes()
    now = config["CLOCK"].time()
    checked, rejected_field = _checked_upload(raw, now)
    if isinstance(checked, ApiError):
        if store.find_device(get_db(), token_sha256) is None:
            raise unknown_token()
        g.rejected_field = rejected_field
        raise checked
    written = write_upload(engine(), token_sha256, checked, now, limit, config["UPLOAD_FLUSH"])
    if written.status == "unknown_token":
        raise unknown_token()
    if written.status == "rate_limited":
        raise ApiError(
            429,
            "rate_limited",
            f"This device reached its limit of {limit} uploads per hour; "
            f"retry in {written.retry_after} seconds.",
            headers={"Retry-After": str(written.retry_after)},
        )
    status, code = ("accepted", 201) if written.status == "accepted" else ("duplicate", 200)
    metrics(current_app).inc(f"edgepersona_uploads_{status}_total")
    # The two answers are constant: written once, not serialised at every upload.
    return current_app.response_class(_ANSWERS[status], mimetype="application/json"), code


def _checked_upload(raw: bytes, now: float) -> tuple[Upload | ApiError, str]:
    """The valid upload in ``raw``, or the error to answer once the token is known to be good.

    The second item is the payload field a 422 names, for the rejection counter ("" if none).
    """
    try:
        return validate_upload(json_body(raw), now), ""
    except ApiError as exc:  # 415, 400
        return exc, ""
    except PayloadError as exc:
        where = "The payload" if exc.path == "payload" else f"Field {exc.path}"
        message = f"{where} is not valid: {exc.reason}."
        return ApiError(422, "invalid_payload", message, field=exc.path), exc.field


@bp.after_request
def _count_rejection(response: Response) -> Response:
    if response.status_code >= 400:
        metrics(current_app).inc(
            "edgepersona_upload_rejections_total",
            reason=g.get("error_code", f"http_{response.status_code}"),
            field=g.get("rejected_field", ""),
        )
    return response
