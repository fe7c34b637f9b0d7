"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint of the service.

Built as a plain dict from the constants the validators use (``backend.payload``,
``sdk.features``), so a changed limit changes the document. Tests check that it lists exactly
the app's routes and agrees with ``validate_upload``; a fuzz test drives every endpoint from it.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION

from .apidoc import (
    ERROR_BODY,
    STRING,
    JsonObject,
    error_responses,
    json_answer,
    json_request_body,
    no_body,
    operation,
    ref,
    required_object,
)
from .payload import (
    FEATURE_BOUNDS,
    MAX_COUNT,
    MAX_EPSILON,
    MAX_INT,
    MAX_OUTCOMES,
    MECHANISMS,
    MIN_EPSILON,
    OUTCOME_KEYS,
    PAYLOAD_KEYS,
)

__all__ = ["UPLOAD_V1_SCHEMA", "bp", "openapi_document"]

bp = Blueprint("openapi", __name__)

_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
_COUNT = {"type": "number", "minimum": -MAX_COUNT, "maximum": MAX_COUNT}

#: The upload payload v1 as a JSON Schema (2020-12, the dialect of OpenAPI 3.1). Self-contained,
#: so it can be checked with ``jsonschema`` alone. Rules a schema cannot say (the week's date
#: range, one outcome per offer) are ``validate_upload``'s alone.
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
        "epsilon": {"type": "number", "minimum": MIN_EPSILON, "maximum": MAX_EPSILON},
        "mechanism": {"type": "string", "enum": list(MECHANISMS)},
        "model_version": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "persona": _ID,
        "outcomes": {
            "type": "array",
            "maxItems": MAX_OUTCOMES,
            "items": {
                **required_object(offer=_ID, accepted=_COUNT, dismissed=_COUNT),
                "required": list(OUTCOME_KEYS),
                "additionalProperties": False,
            },
        },
        "sdk_version": {"type": "string", "pattern": "^[A-Za-z0-9_.+-]{1,32}$"},
    },
}

_ERROR_SCHEMA = required_object(error=ERROR_BODY)
_UINT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": _UINT}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
_MANIFEST, _REPORT = ref("schemas", "Manifest"), ref("schemas", "RetrainReport")
_BUNDLE_FILES = ("model.onnx", "playbook.json", "manifest.json")
_BINARY = {"type": "string", "format": "binary"}
_PUBLISH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": required_object(**dict.fromkeys(_BUNDLE_FILES, _BINARY))}
    },
}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
_PROMOTE_BODY = json_request_body(
    {**required_object(percent=_PERCENT), "additionalProperties": False}
)
_RETRAIN_OPTIONS = {
    "weeks": {"type": "integer", "minimum": 1, "maximum": 52},
    "k": {"type": "integer", "minimum": 2, "maximum": 12},
}
_RETRAIN_BODY = json_request_body(
    {"type": "object", "additionalProperties": False, "properties": _RETRAIN_OPTIONS},
    required=False,
)
_REFUSED = {"allOf": [ref("schemas", "Error"), {"type": "object", "required": ["report"]}]}
_RETRAINS = required_object(retrains={"type": "array", "items": _REPORT})


def _paths() -> JsonObject:
    device, admin, ok = "deviceToken", "adminKey", (503,)
    status = ref("schemas", "UploadStatus")
    current = json_answer(
        _MANIFEST,
        "The manifest.",
        ETag="The quoted SHA-256 of the canonical manifest.",
        Cache_Control="`private, no-cache`.",
    )
    zipped = {"description": "The bundle zip.", "content": {"application/zip": {"schema": _BINARY}}}
    text = {"description": "Prometheus text 0.0.4.", "content": {"text/plain": {"schema": {}}}}
    health = ref("schemas", "Health")
    return {
        "/v1/devices": {
            "post": operation(
                "Register a device; its token is shown once.",
                "devices",
                {201: json_answer(ref("schemas", "Registration"), "The device and its token.")},
                ok,
            )
        },
        "/v1/devices/me": {
            "delete": operation(
                "Erase every row of the calling device, then the device.",
                "devices",
                {204: no_body("Erased; the token no longer works.")},
                (401, 503),
                security=device,
            )
        },
        "/v1/aggregates": {
            "post": operation(
                "Upload this week's noised aggregate (payload v1), once per upload_id.",
                "ingest",
                {
                    200: json_answer(status, "A replay; nothing stored twice."),
                    201: json_answer(status, "Stored."),
                },
                (400, 401, 413, 415, 422, 429, 503),
                security=device,
                body=json_request_body(ref("schemas", "UploadV1")),
            )
        },
        "/v1/models/current": {
            "get": operation(
                "The signed manifest this device should run.",
                "models",
                {
                    200: current,
                    204: no_body("No version is rolled out to this device; keep your bundle."),
                    304: no_body("The manifest matches If-None-Match."),
                },
                (401, 503),
                security=device,
                parameters=[_IF_NONE_MATCH],
            )
        },
        "/v1/models/{version}/bundle": {
            "get": operation(
                "The zip of model.onnx, playbook.json and the signed manifest.json.",
                "models",
                {200: zipped},
                (401, 404, 503),
                security=device,
                parameters=[_VERSION],
            )
        },
        "/v1/admin/models": {
            "get": operation(
                "Every published version, newest first.",
                "admin",
                {200: json_answer(ref("schemas", "ModelList"), "The versions.")},
                (401, 403, 503),
                security=admin,
            ),
            "post": operation(
                "Publish a bundle at 0% rollout.",
                "admin",
                {201: json_answer(_MANIFEST, "The signed manifest.", Location="Its bundle.")},
                (401, 403, 409, 413, 415, 422, 503),
                security=admin,
                body=_PUBLISH_BODY,
            ),
        },
        "/v1/admin/models/{version}/promote": {
            "post": operation(
                "Roll a version out to a share of devices; lowering it halts a rollout.",
                "admin",
                {200: json_answer(_MANIFEST, "The re-signed manifest.")},
                (400, 401, 403, 404, 413, 415, 422, 503),
                security=admin,
                parameters=[_VERSION],
                body=_PROMOTE_BODY,
            )
        },
        "/v1/admin/models/{version}/rollback": {
            "post": operation(
                "Publish a version's files again as a new, higher version at 100%.",
                "admin",
                {201: json_answer(_MANIFEST, "The new version's signed manifest.")},
                (401, 403, 404, 409, 422, 503),
                security=admin,
                parameters=[_VERSION],
            )
        },
        "/v1/admin/retrain": {
            "post": operation(
                "Retrain from the stored aggregates; the candidate is registered at 0%.",
                "admin",
                {
                    201: json_answer(_REPORT, "The evaluation report.", Location="Its bundle."),
                    409: json_answer(_REFUSED, "Refused; the report is kept."),
                },
                (400, 401, 403, 413, 415, 422, 503),
                security=admin,
                body=_RETRAIN_BODY,
            )
        },
        "/v1/admin/retrains": {
            "get": operation(
                "Every stored retrain report, newest first.",
                "admin",
                {200: json_answer(_RETRAINS, "The reports.")},
                (401, 403, 503),
                security=admin,
            )
        },
        "/healthz": {
            "get": operation(
                "Whether this worker can serve: database reachable, schema current.",
                "ops",
                {
                    200: json_answer(health, "Ready."),
                    503: json_answer(health, "Not ready; see error."),
                },
                (),
            )
        },
        "/metrics": {"get": operation("Every worker's counters, gauges.", "ops", {200: text}, ())},
        "/dashboard": {
            "get": operation(
                "The operator page (HTML): HTTP Basic, any user, the admin key as password; "
                "or the admin key as bearer. Off (403) without an admin key.",
                "ops",
                {200: {"description": "The page.", "content": {"text/html": {"schema": STRING}}}},
                (401, 403, 503),
                security=admin,
            )
        },
        "/openapi.json": {
            "get": operation(
                "This document.", "ops", {200: json_answer({"type": "object"}, "OpenAPI 3.1.")}, ()
            )
        },
    }


def _schemas() -> JsonObject:
    string, integer = STRING, {"type": "integer", "minimum": 0}
    listed = required_object(
        version=integer,
        kind={"type": "string", "enum": ["model", "rollback"]},
        source_version={"type": ["integer", "null"]},
        rollout_percent=_PERCENT,
        created_at={"type": "number"},
        personas={"type": "array", "items": string, "description": "Persona names, in order."},
    )
    return {
        "Error": _ERROR_SCHEMA,
        "UploadV1": UPLOAD_V1_SCHEMA,
        "UploadStatus": required_object(
            status={"type": "string", "enum": ["accepted", "duplicate"]}
        ),
        "Registration": required_object(
            device_id={"type": "string", "pattern": "^[0-9a-f]{32}$"},
            token={"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
        ),
        # A signed model manifest (docs/backend.md, Model bundle); the SDK checks the rest.
        "Manifest": required_object(version=integer, rollout={"type": "object"}, signature={}),
        "ModelList": required_object(models={"type": "array", "items": listed}),
        "RetrainReport": {"type": "object", "description": "A retrain's evaluation report."},
        "Health": {
            **required_object(
                status={"type": "string", "enum": ["ok", "unavailable"]}, database=string
            ),
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "database": string,
                "error": ERROR_BODY,
            },
        },
    }


def openapi_document() -> JsonObject:
    """The OpenAPI 3.1 document of the service, a fresh dict on every call."""
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
            "responses": error_responses(),
        },
    }


@bp.get("/openapi.json")
def document() -> Response:
    """The OpenAPI document of this service."""
    return jsonify(openapi_document())
