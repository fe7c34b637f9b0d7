"""Endpoints for operators and their tools: ``GET /healthz`` and ``GET /metrics``.

``/metrics`` is described in ``backend.metrics``; the human view is ``/dashboard``.

``/healthz`` is what a load balancer polls: it answers 200 only when this worker can reach the
database and the schema is the one this code expects, so a worker started before ``init-db``
ran, or cut off from PostgreSQL, is taken out of rotation instead of failing uploads.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from sqlalchemy.exc import SQLAlchemyError

from .db import engine
from .metrics import metrics
from .migrations import LATEST, current_version

__all__ = ["bp"]

bp = Blueprint("ops", __name__)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@bp.record_once
def _create_metrics(state: BlueprintSetupState) -> None:
    # When the app is created, so that a bad PROMETHEUS_MULTIPROC_DIR stops the service at
    # start-up rather than failing its first request.
    assert isinstance(state.app, Flask)
    metrics(state.app)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 ``{"status": "ok", "database": "ok"}``; 503 with the same keys and an error."""
    try:
        with engine().connect() as conn:
            version = current_version(conn)
    except SQLAlchemyError as exc:
        current_app.logger.warning("health check cannot reach the database: %s", exc)
        return _unavailable("unreachable", "This worker cannot reach its database.")
    if version != LATEST:
        return _unavailable(
            f"schema version {version}, expected {LATEST}",
            f"The database schema is at version {version}, this code needs {LATEST}; run init-db.",
        )
    return jsonify(status="ok", database="ok"), 200


@bp.get("/metrics")
def prometheus() -> Response:
    """Counters of every worker on this host and the registry's gauges (Prometheus text)."""
    return Response(metrics(current_app).render(), content_type=PROMETHEUS_CONTENT_TYPE)


def _unavailable(database: str, message: str) -> tuple[Response, int]:
    error = {"code": "database_unavailable", "message": message}
    return jsonify(status="unavailable", database=database, error=error), 503
