"""The application factory: ``create_app(test_config)`` builds one configured Flask app.

Nothing is read or connected at import time, and nothing lives in module globals, so tests
build as many apps as they like and any number of gunicorn workers can each build their own:
all shared state (devices, uploads, the rate limit) is in the database.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request

from . import admin, dashboard, db, devices, ingest, models, openapi, ops
from .config import configure, default_database_url
from .errors import register_error_handlers
from .metrics import metrics

__all__ = ["INSTANCE_PATH", "create_app"]

# Where Flask puts the instance folder of an installed package. Flask cannot find it on its
# own for the editable install's namespace mapping, so it is spelled out, the same everywhere.
INSTANCE_PATH = os.path.join(sys.prefix, "var", "edgepersona.backend-instance")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """A Flask app configured from defaults, then ``EDGEPERSONA_*`` variables, then ``test_config``.

    Settings are listed in ``docs/backend.md``; a bad value raises ``ConfigError`` here, not
    at the first request. Create the tables with ``flask --app edgepersona.backend init-db``.
    """
    app = Flask("edgepersona.backend", instance_path=INSTANCE_PATH)
    configure(app, test_config)
    if app.config["DATABASE_URL"] == default_database_url(app.instance_path):
        os.makedirs(app.instance_path, exist_ok=True)
    db.init_app(app)
    register_error_handlers(app)
    for blueprint in (devices.bp, ingest.bp, models.bp, admin.bp, dashboard.bp, ops.bp, openapi.bp):
        app.register_blueprint(blueprint)
    app.after_request(_count_request)
    return app


def _count_request(response: Response) -> Response:
    metrics(current_app).inc(
        "edgepersona_http_requests_total",
        endpoint=request.endpoint or "unmatched",
        method=request.method,
        status=str(response.status_code),
    )
    return response
