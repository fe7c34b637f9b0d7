"""Every exception the backend raises on purpose, and how each becomes a JSON answer.

::

    BackendError        base: catch it to catch anything the backend raises on purpose
    ├── ApiError        an HTTP error answered as ``{"error": {"code", "message"}}``
    ├── PayloadError    an upload payload broke a rule (a ValueError; answered as 422)
    ├── ConfigError     a setting has a value the service cannot run with (a ValueError)
    ├── SchemaError     the database schema is newer than this code, or a migration failed
    ├── RegistryError   a model registry operation was refused; ``code`` says why
    └── SigningError    a signing key is missing, unsafe or malformed (``backend.keys``)

A client must never see a traceback or an HTML page: ``register_error_handlers`` turns every
error, including werkzeug's own (404, 405, 413...) and unexpected exceptions, into the same
JSON shape. Messages are plain sentences that say what was wrong and what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

__all__ = [
    "ApiError",
    "BackendError",
    "ConfigError",
    "PayloadError",
    "RegistryError",
    "SchemaError",
    "register_error_handlers",
]


class BackendError(Exception):
    """Base of every exception the backend raises on purpose."""


class ApiError(BackendError):
    """An HTTP error with a stable machine-readable ``code`` and a sentence for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


class PayloadError(BackendError, ValueError):
    """An upload payload was refused; nothing of it was stored.

    ``field`` is the top-level key at fault (``"payload"`` for the body as a whole or an
    unknown key), ``path`` the exact place (``"outcomes[3].offer"``), ``reason`` what was wrong
    and what is accepted.
    """

    def __init__(self, field: str, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.field = field
        self.path = path
        self.reason = message


class ConfigError(BackendError, ValueError):
    """A setting from the environment or the test config cannot be used."""


class SchemaError(BackendError):
    """The database cannot be brought to the schema this code expects."""


class RegistryError(BackendError):
    """A publish, promote or rollback was refused and nothing was stored.

    ``code`` is one of ``invalid_bundle`` (a device would refuse the bundle),
    ``version_not_newer``, ``unknown_version`` or ``invalid_percent``; the message says what
    was wrong and what is accepted.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Codes and sentences for the errors werkzeug raises around our views; any other HTTP error
# keeps werkzeug's name (as snake_case) and description, which are plain sentences too.
_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    404: ("not_found", "There is no endpoint at {method} {path}."),
    405: ("method_not_allowed", "{method} is not allowed on {path}."),
    413: (
        "payload_too_large",
        "The request body is larger than the {limit} bytes this service accepts.",
    ),
    500: ("internal_error", "The server failed to answer this request; the failure was logged."),
}


def _error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[Response, int]:
    """The one JSON error shape; also notes the code on ``g`` for metrics."""
    body: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    g.error_code = code
    response = jsonify(error=body)
    response.headers.update(headers or {})
    return response, status


def _api_error(exc: ApiError) -> tuple[Response, int]:
    return _error_response(exc.status, exc.code, exc.message, field=exc.field, headers=exc.headers)


# The status of each refusal of the model registry.
_REGISTRY_STATUS = {
    "invalid_bundle": 422,
    "invalid_percent": 422,
    "unknown_version": 404,
    "version_not_newer": 409,
}


def _registry_error(exc: RegistryError) -> tuple[Response, int]:
    return _error_response(_REGISTRY_STATUS[exc.code], exc.code, exc.message)


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    if status in _HTTP_ERRORS:
        code, template = _HTTP_ERRORS[status]
        message = template.format(
            method=request.method, path=request.path, limit=request.max_content_length
        )
    else:
        code, message = exc.name.lower().replace(" ", "_"), exc.description or f"{exc.name}."
    # Keep the headers werkzeug attached (Allow on a 405, WWW-Authenticate on a 401...).
    headers = {
        name: value
        for name, value in exc.get_response().headers.items()
        if name not in ("Content-Type", "Content-Length")
    }
    return _error_response(status, code, message, headers=headers)


def _database_unavailable(exc: OperationalError) -> tuple[Response, int]:
    # A database that is down, restarting or (SQLite) locked past the busy timeout: the
    # request may succeed later, so say so instead of answering a bare 500.
    current_app.logger.warning("database unavailable: %s", exc)
    return _error_response(
        503,
        "database_unavailable",
        "The database is unavailable right now; retry in a few seconds.",
        headers={"Retry-After": "5"},
    )


def _unexpected(exc: Exception) -> tuple[Response, int]:
    current_app.logger.exception("unhandled exception on %s %s", request.method, request.path)
    code, message = _HTTP_ERRORS[500]
    return _error_response(500, code, message)


def register_error_handlers(app: Flask) -> None:
    """Answer every error of ``app`` as JSON; call once from the application factory."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(RegistryError, _registry_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
