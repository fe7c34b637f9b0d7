"""/openapi.json is a valid OpenAPI document that matches the routes and the payload rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from edgepersona.backend.errors import PayloadError
from edgepersona.backend.openapi import UPLOAD_V1_SCHEMA
from edgepersona.backend.payload import FEATURE_BOUNDS, validate_upload
from edgepersona.sdk.features import FEATURES

from ..conftest import T0
from .conftest import valid_payload

OUTCOME = {"offer": "o", "accepted": 1.0, "dismissed": 0.0}


def _document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert isinstance(response.json, dict)
    return response.json


def test_the_document_is_valid_openapi(client: FlaskClient) -> None:
    document = _document(client)
    assert document["openapi"].startswith("3.1.")
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert {name: scheme["scheme"] for name, scheme in schemes.items()} == {
        "deviceToken": "bearer",
        "adminKey": "bearer",
    }


def test_the_document_has_exactly_the_apps_routes(app: Flask, client: FlaskClient) -> None:
    documented = {
        (path, method.upper())
        for path, operations in _document(client)["paths"].items()
        for method in operations
    }
    routed = {
        (re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_every_error_answer_has_the_shared_shape(client: FlaskClient) -> None:
    document = _document(client)
    error = {"$ref": "#/components/schemas/Error"}
    for name, answer in document["components"]["responses"].items():
        assert answer["content"]["application/json"]["schema"] == error, name
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in operation["responses"]:
                assert status in {"200", "201", "204", "304", "409", "503"} or (
                    operation["responses"][status]["$ref"].endswith(f"/Error{status}")
                ), (path, method, status)


def _schema_accepts(payload: Any) -> bool:
    return Draft202012Validator(UPLOAD_V1_SCHEMA).is_valid(payload)


def _validator_accepts(payload: Any) -> bool:
    try:
        validate_upload(payload, T0)
    except PayloadError:
        return False
    return True


def test_the_payload_schema_is_well_formed() -> None:
    Draft202012Validator.check_schema(UPLOAD_V1_SCHEMA)
    assert len(UPLOAD_V1_SCHEMA["properties"]["features"]["prefixItems"]) == len(FEATURES)


def test_the_payload_schema_accepts_a_valid_payload() -> None:
    payload = valid_payload()
    assert _validator_accepts(payload)
    assert _schema_accepts(payload)


def _too_high_feature() -> list[float]:
    features = valid_payload()["features"]
    features[3] = FEATURE_BOUNDS[3][1] * 1.01
    return features


@pytest.mark.parametrize(
    "overrides",
    [
        {"upload_id": "A" * 32},
        {"upload_id": "0" * 31},
        {"schema_version": 2},
        {"week": "2026-10"},
        {"features": [0.0] * (len(FEATURES) - 1)},
        {"features": _too_high_feature()},
        {"features": ["1"] * len(FEATURES)},
        {"epsilon": 0},
        {"epsilon": 10.5},
        {"epsilon": True},
        {"mechanism": "exponential"},
        {"model_version": -1},
        {"model_version": 2**31},
        {"outcomes": [OUTCOME] * 201},
        {"outcomes": [{**OUTCOME, "extra": 1}]},
        {"outcomes": [{**OUTCOME, "offer": "bad offer"}]},
        {"outcomes": [{**OUTCOME, "accepted": 10001}]},
        {"sdk_version": ""},
        {"smuggled": "data"},
    ],
    ids=repr,
)
def test_the_payload_schema_refuses_what_the_validator_refuses(overrides: dict[str, Any]) -> None:
    payload = valid_payload(**overrides)
    assert not _validator_accepts(payload)
    assert not _schema_accepts(payload)


@pytest.mark.parametrize("missing", list(UPLOAD_V1_SCHEMA["required"]))
def test_every_key_is_required_by_both(missing: str) -> None:
    payload = valid_payload()
    del payload[missing]
    assert not _validator_accepts(payload)
    assert not _schema_accepts(payload)


@pytest.mark.parametrize("body", [None, [], "payload", 3])
def test_a_body_that_is_not_an_object_is_refused_by_both(body: Any) -> None:
    assert not _validator_accepts(body)
    assert not _schema_accepts(body)
