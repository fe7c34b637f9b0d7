"""Schemathesis drives every endpoint of /openapi.json against the SQLite app, in process.

No answer may be a 5xx other than the documented 503s, and every answer must have a documented
status and match its documented schema. A device token and the admin key are sent, so the
authenticated paths are exercised past their 401/403; a published, rolled-out model gives the
model endpoints something to answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_wsgi
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from edgepersona.backend.db import init_db
from edgepersona.backend.keys import generate_keypair

from .conftest import WEEK_OF_T0, MakeApp, register
from .test_registry import ADMIN, ADMIN_KEY, default_files, promote, publish

WEEK = re.compile(r"[0-9]{4}-W[0-9]{2}")
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def fuzzed_app(make_app: MakeApp, tmp_path: Path) -> Flask:
    """An app with admin and signing keys and model version 1 rolled out to every device."""
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    app = make_app(
        ADMIN_API_KEY=ADMIN_KEY,
        SIGNING_KEY_PATH=str(private),
        RATE_LIMIT_UPLOADS_PER_HOUR=100_000,
    )
    with app.app_context():
        init_db()
    client = app.test_client()
    assert publish(client, default_files()).status_code == 201
    assert promote(client, 1, 100).status_code == 200
    return app


@pytest.fixture
def device_auth(fuzzed_app: Flask) -> dict[str, str]:
    return register(fuzzed_app.test_client())


@pytest.fixture
def api_schema(fuzzed_app: Flask) -> schemathesis.BaseSchema:
    return from_wsgi("/openapi.json", fuzzed_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_endpoint_answers_as_documented(
    case: Case, fuzzed_app: Flask, device_auth: dict[str, str]
) -> None:
    if case.path.startswith("/v1/admin/"):
        headers = ADMIN
    elif case.operation.method.upper() == "DELETE":
        # Erasing the shared device would turn every later device call into a 401.
        headers = register(fuzzed_app.test_client())
    else:
        headers = device_auth
    # A well-formed but random ISO week is almost never within a year of the clock; move it
    # to the clock's week so that accepted and duplicate uploads are reached too.
    body = case.body
    week = body.get("week") if isinstance(body, dict) else None
    if case.path == "/v1/aggregates" and isinstance(week, str) and WEEK.fullmatch(week):
        body["week"] = WEEK_OF_T0
    case.call_and_validate(headers=headers, checks=CHECKS)
