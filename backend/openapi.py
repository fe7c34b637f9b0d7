"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint of the service.

Built as a plain dict from the constants the validators use (``backend.payload``,
``sdk.features``), so a changed limit changes the document. Tests check that it lists exactly
the app's routes and agrees with ``validate_upload``; a fuzz test drives every endpoint from it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION

from .payload import (
    FEATURE_BOUNDS,
    MAX_COUNT,
    MAX_EPSILON,
    MAX_INT,
    MAX_OUTCOMES,
    MECHANISMS,
    OUTCOME_KEYS,
    PAYLOAD_KEYS,
)

__all__ = ["UPLOAD_V1_SCHEMA", "bp", "openapi_document"]

bp = Blueprint("openapi", __name__)

JsonObject = dict[str, Any]


def _object(**properties: JsonObject) -> JsonObject:
    """An object schema in which every one of ``properties`` is required."""
    return {"type": "object", "required": list(properties), "properties": properties}


_STRING: JsonObject = {"type": "string"}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
_COUNT = {"type": "number", "minimum": -MAX_COUNT, "maximum": MAX_COUNT}

#: The upload payload v1 as a JSON Schema (2020-12, the dialect of OpenAPI 3.1). Self-contained,
#: so it can be checked with ``jsonschema`` alone. Rules a schema cannot say (the week's date
#: range, one outcome per persona and offer) are ``validate_upload``'s alone.
UPLOAD_V1_SCHEMA: JsonObject = {
    "type": "object",
    "additionalProperties": False,
    "required": list(PAYLOAD_KEYS),
    "properties": {
        "upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "schema_version": {"type": "integer", "enum": [SCHEMA_VERSION]},
        "week": {
            "type": "string",
            "pattern": "^[0-9]{4}-W[0-9]{2}$",
            "description": "An ISO week from 52 weeks ago up to next week.",
        },
        "features": {
            "type": "array",
            "minItems": len(FEATURES),
            "maxItems": len(FEATURES),
            "prefixItems": [
                {"type": "number", "minimum": low, "maximum": high, "title": feature.name}
                for feature, (low, high) in zip(FEATURES, FEATURE_BOUNDS, strict=True)
            ],
            "items": False,
        },
        "epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_EPSILON},
        "mechanism": {"type": "string", "enum": list(MECHANISMS)},
        "model_version": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "outcomes": {
            "type": "array",
            "maxItems": MAX_OUTCOMES,
            "items": {
                **_object(persona=_ID, offer=_ID, accepted=_COUNT, dismissed=_COUNT),
                "required": list(OUTCOME_KEYS),
                "additionalProperties": False,
            },
        },
        "sdk_version": {"type": "string", "pattern": "^[A-Za-z0-9_.+-]{1,32}$"},
    },
}

_ERROR_BODY: JsonObject = {
    **_object(code=_STRING, message=_STRING),
    "properties": {"code": _STRING, "message": _STRING, "field": _STRING},
}
_ERROR_SCHEMA = _object(error=_ERROR_BODY)

_ERROR_TEXT = {
    400: "The body is not JSON (`malformed_json`).",
    401: "No bearer credential, a malformed one, or a token no device holds (`unauthorized`).",
    403: "A wrong admin key, a device token, or admin endpoints off (`forbidden`).",
    404: "No published model has this version (`unknown_version`).",
    409: "Refused by the registry (`version_not_newer`).",
    413: "The body is over the size limit (`payload_too_large`).",
    415: "The body was not sent with the expected media type (`unsupported_media_type`).",
    422: "The body breaks a rule; the message says which.",
    429: "This device used its hourly uploads (`rate_limited`); see `Retry-After`.",
    503: "The database is unavailable, or (admin writes) no usable signing key.",
}

# Headers some errors carry (never required: only some answers of a status send them).
_ERROR_HEADERS = {
    401: ("WWW-Authenticate", 'The challenge, `Bearer realm="edgepersona"`.'),
    429: ("Retry-After", "Seconds until this device may upload again."),
    503: ("Retry-After", "Seconds to wait before retrying (database unavailable)."),
}


def _ref(kind: str, name: str) -> JsonObject:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: JsonObject, description: str, **headers: str) -> JsonObject:
    answer: JsonObject = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


def _operation(
    summary: str,
    tag: str,
    responses: dict[int, JsonObject],
    errors: tuple[int, ...],
    *,
    security: str | None = None,
    body: JsonObject | None = None,
    parameters: list[JsonObject] | None = None,
) -> JsonObject:
    operation: JsonObject = {"summary": summary, "tags": [tag], "parameters": parameters or []}
    operation["security"] = [{security: []}] if security else []
    if body is not None:
        operation["requestBody"] = body
    answers = {str(status): answer for status, answer in responses.items()}
    operation["responses"] = answers | {str(s): _ref("responses", f"Error{s}") for s in errors}
    return operation


def _said(description: str) -> JsonObject:
    return {"description": description}  # an answer without a body


def _json_body(schema: JsonObject, *, required: bool = True) -> JsonObject:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_UINT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": _UINT}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
_MANIFEST, _REPORT = _ref("schemas", "Manifest"), _ref("schemas", "RetrainReport")
_BUNDLE_FILES = ("model.onnx", "playbook.json", "manifest.json")
_BINARY = {"type": "string", "format": "binary"}
_PUBLISH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": _object(**dict.fromkeys(_BUNDLE_FILES, _BINARY))}
    },
}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
_PROMOTE_BODY = _json_body({**_object(percent=_PERCENT), "additionalProperties": False})
_RETRAIN_OPTIONS = {
    "weeks": {"type": "integer", "minimum": 1, "maximum": 52},
    "k": {"type": "integer", "minimum": 2, "maximum": 12},
}
_RETRAIN_BODY = _json_body(
    {"type": "object", "additionalProperties": False, "properties": _RETRAIN_OPTIONS},
    required=False,
)
_REFUSED = {"allOf": [_ref("schemas", "Error"), {"type": "object", "required": ["report"]}]}
_RETRAINS = _object(retrains={"type": "array", "items": _REPORT})


def _paths() -> JsonObject:
    device, admin, ok = "deviceToken", "adminKey", (503,)
    status = _ref("schemas", "UploadStatus")
    current = _json(
        _MANIFEST,
        "The manifest.",
        ETag="The quoted SHA-256 of the canonical manifest.",
        Cache_Control="`private, no-cache`.",
    )
    zipped = {"description": "The bundle zip.", "content": {"application/zip": {"schema": _BINARY}}}
    text = {"description": "Prometheus text 0.0.4.", "content": {"text/plain": {"schema": {}}}}
    health = _ref("schemas", "Health")
    return {
        "/v1/devices": {
            "post": _operation(
                "Register a device; its token is shown once.",
                "devices",
                {201: _json(_ref("schemas", "Registration"), "The device and its token.")},
                ok,
            )
        },
        "/v1/devices/me": {
            "delete": _operation(
                "Erase every row of the calling device, then the device.",
                "devices",
                {204: _said("Erased; the token no longer works.")},
                (401, 503),
                security=device,
            )
        },
        "/v1/aggregates": {
            "post": _operation(
                "Upload this week's noised aggregate (payload v1), once per upload_id.",
                "ingest",
                {
                    200: _json(status, "A replay; nothing stored twice."),
                    201: _json(status, "Stored."),
                },
                (400, 401, 413, 415, 422, 429, 503),
                security=device,
                body=_json_body(_ref("schemas", "UploadV1")),
            )
        },
        "/v1/models/current": {
            "get": _operation(
                "The signed manifest this device should run.",
                "models",
                {
                    200: current,
                    204: _said("No version is rolled out to this device; keep your bundle."),
                    304: _said("The manifest matches If-None-Match."),
                },
                (401, 503),
                security=device,
                parameters=[_IF_NONE_MATCH],
            )
        },
        "/v1/models/{version}/bundle": {
            "get": _operation(
                "The zip of model.onnx, playbook.json and the signed manifest.json.",
                "models",
                {200: zipped},
                (401, 404, 503),
                security=device,
                parameters=[_VERSION],
            )
        },
        "/v1/admin/models": {
            "get": _operation(
                "Every published version, newest first.",
                "admin",
                {200: _json(_ref("schemas", "ModelList"), "The versions.")},
                (401, 403, 503),
                security=admin,
            ),
            "post": _operation(
                "Publish a bundle at 0% rollout.",
                "admin",
                {201: _json(_MANIFEST, "The signed manifest.", Location="Its bundle.")},
                (401, 403, 409, 413, 415, 422, 503),
                security=admin,
                body=_PUBLISH_BODY,
            ),
        },
        "/v1/admin/models/{version}/promote": {
            "post": _operation(
                "Roll a version out to a share of devices; lowering it halts a rollout.",
                "admin",
                {200: _json(_MANIFEST, "The re-signed manifest.")},
                (400, 401, 403, 404, 413, 415, 422, 503),
                security=admin,
                parameters=[_VERSION],
                body=_PROMOTE_BODY,
            )
        },
        "/v1/admin/models/{version}/rollback": {
            "post": _operation(
                "Publish a version's files again as a new, higher version at 100%.",
                "admin",
                {201: _json(_MANIFEST, "The new version's signed manifest.")},
                (401, 403, 404, 409, 422, 503),
                security=admin,
                parameters=[_VERSION],
            )
        },
        "/v1/admin/retrain": {
            "post": _operation(
                "Retrain from the stored aggregates; the candidate is registered at 0%.",
                "admin",
                {
                    201: _json(_REPORT, "The evaluation report.", Location="Its bundle."),
                    409: _json(_REFUSED, "Refused; the report is kept."),
                },
                (400, 401, 403, 413, 415, 422, 503),
                security=admin,
                body=_RETRAIN_BODY,
            )
        },
        "/v1/admin/retrains": {
            "get": _operation(
                "Every stored retrain report, newest first.",
                "admin",
                {200: _json(_RETRAINS, "The reports.")},
                (401, 403, 503),
                security=admin,
            )
        },
        "/healthz": {
            "get": _operation(
                "Whether this worker can serve: database reachable, schema current.",
                "ops",
                {200: _json(health, "Ready."), 503: _json(health, "Not ready; see error.")},
                (),
            )
        },
        "/metrics": {"get": _operation("This worker's counters.", "ops", {200: text}, ())},
        "/openapi.json": {
            "get": _operation(
                "This document.", "ops", {200: _json({"type": "object"}, "OpenAPI 3.1.")}, ()
            )
        },
    }


def _schemas() -> JsonObject:
    string, integer = _STRING, {"type": "integer", "minimum": 0}
    listed = _object(
        version=integer,
        kind={"type": "string", "enum": ["model", "rollback"]},
        source_version={"type": ["integer", "null"]},
        rollout_percent=_PERCENT,
        created_at={"type": "number"},
    )
    return {
        "Error": _ERROR_SCHEMA,
        "UploadV1": UPLOAD_V1_SCHEMA,
        "UploadStatus": _object(status={"type": "string", "enum": ["accepted", "duplicate"]}),
        "Registration": _object(
            device_id={"type": "string", "pattern": "^[0-9a-f]{32}$"},
            token={"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
        ),
        # A signed model manifest (docs/backend.md, Model bundle); the SDK checks the rest.
        "Manifest": _object(version=integer, rollout={"type": "object"}, signature={}),
        "ModelList": _object(models={"type": "array", "items": listed}),
        "RetrainReport": {"type": "object", "description": "A retrain's evaluation report."},
        "Health": {
            **_object(status={"type": "string", "enum": ["ok", "unavailable"]}, database=string),
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "database": string,
                "error": _ERROR_BODY,
            },
        },
    }


def openapi_document() -> JsonObject:
    """The OpenAPI 3.1 document of the service, a fresh dict on every call."""
    responses = {
        f"Error{status}": _json(_ref("schemas", "Error"), text)
        for status, text in _ERROR_TEXT.items()
    }
    for status, (name, text) in _ERROR_HEADERS.items():
        responses[f"Error{status}"]["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EdgePersona sync service",
            "version": "1",
            "description": "Devices' weekly noised aggregates in, signed persona models out. "
            "See docs/backend.md. Every error is answered as "
            '`{"error": {"code", "message"}}`.',
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "deviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token POST /v1/devices answered.",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's EDGEPERSONA_ADMIN_API_KEY.",
                },
            },
            "schemas": _schemas(),
            "responses": responses,
        },
    }


@bp.get("/openapi.json")
def document() -> Response:
    """The OpenAPI document of this service."""
    return jsonify(openapi_document())
