"""Building blocks of the OpenAPI document: schema and answer helpers, the shared error answers.

``backend.openapi`` assembles the document from these; they are plain dicts, nothing more.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ERROR_BODY",
    "STRING",
    "JsonObject",
    "error_responses",
    "json_answer",
    "json_request_body",
    "no_body",
    "operation",
    "ref",
    "required_object",
]

JsonObject = dict[str, Any]


def required_object(**properties: JsonObject) -> JsonObject:
    """An object schema in which every one of ``properties`` is required."""
    return {"type": "object", "required": list(properties), "properties": properties}


STRING: JsonObject = {"type": "string"}
ERROR_BODY: JsonObject = {
    **required_object(code=STRING, message=STRING),
    "properties": {"code": STRING, "message": STRING, "field": STRING},
}

_ERROR_TEXT = {
    400: "The body is not JSON (`malformed_json`).",
    401: "No credential, a malformed one, or a token no device holds (`unauthorized`).",
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
    401: (
        "WWW-Authenticate",
        'The challenge, `Bearer realm="edgepersona"` (`Basic` for /dashboard).',
    ),
    429: ("Retry-After", "Seconds until this device may upload again."),
    503: ("Retry-After", "Seconds to wait before retrying (database unavailable)."),
}


def ref(kind: str, name: str) -> JsonObject:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_answer(schema: JsonObject, description: str, **headers: str) -> JsonObject:
    """A JSON answer; ``headers`` names (``_`` for ``-``) and describes headers it sends."""
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


def operation(
    summary: str,
    tag: str,
    responses: dict[int, JsonObject],
    errors: tuple[int, ...],
    *,
    security: str | None = None,
    body: JsonObject | None = None,
    parameters: list[JsonObject] | None = None,
) -> JsonObject:
    """An operation whose ``errors`` statuses answer the shared error shape."""
    found: JsonObject = {"summary": summary, "tags": [tag], "parameters": parameters or []}
    found["security"] = [{security: []}] if security else []
    if body is not None:
        found["requestBody"] = body
    answers = {str(status): answer for status, answer in responses.items()}
    found["responses"] = answers | {str(s): ref("responses", f"Error{s}") for s in errors}
    return found


def no_body(description: str) -> JsonObject:
    return {"description": description}


def json_request_body(schema: JsonObject, *, required: bool = True) -> JsonObject:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def error_responses() -> JsonObject:
    """``components.responses``: ``ErrorNNN`` for every status an error is answered with."""
    responses = {
        f"Error{status}": json_answer(ref("schemas", "Error"), text)
        for status, text in _ERROR_TEXT.items()
    }
    for status, (name, text) in _ERROR_HEADERS.items():
        responses[f"Error{status}"]["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
        }
    return responses
