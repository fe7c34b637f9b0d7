"""docs/backend.md agrees with the code: payload keys, limits, error codes, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from edgepersona.backend.metrics import METRICS
from edgepersona.backend.payload import MAX_OUTCOMES, OUTCOME_KEYS, PAYLOAD_KEYS
from edgepersona.sdk.features import FEATURES

from .conftest import valid_payload

# Every code the service answers with; test_http and test_registry provoke each of them.
ERROR_CODES = {
    "forbidden",
    "gates_failed",
    "invalid_retrain_options",
    "too_few_devices",
    "training_refused",
    "invalid_bundle",
    "invalid_percent",
    "signing_key_unavailable",
    "unknown_version",
    "version_not_newer",
    "malformed_json",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_payload",
    "rate_limited",
    "internal_error",
    "database_unavailable",
}
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "backend.md").read_text()


def test_every_payload_key_has_a_row() -> None:
    documented = re.findall(r"^\| `(\w+)` \| ", DOCS.split("### Upload payload")[1], re.M)
    assert documented[: len(PAYLOAD_KEYS)] == list(PAYLOAD_KEYS)
    for key in OUTCOME_KEYS:
        assert f'"{key}"' in DOCS
    assert f"exactly {len(FEATURES)} finite numbers" in DOCS
    assert f"at most {MAX_OUTCOMES} objects" in DOCS


def test_every_metric_and_error_code_is_listed() -> None:
    for name in METRICS:
        assert f"`{name}`" in DOCS, name
    table = DOCS.split("### Errors")[1].split("###")[0]
    assert set(re.findall(r"^\| \d{3} \| `(\w+)`", table, re.M)) == ERROR_CODES


def test_the_error_example_is_what_the_service_answers(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    (example,) = re.findall(r"```json\n(.*?)```", DOCS, flags=re.S)
    features = valid_payload()["features"]
    features[3] = 6000.0
    response = client.post("/v1/aggregates", json=valid_payload(features=features), headers=auth)
    assert response.json == json.loads(example)


def test_every_endpoint_has_a_row(app: Flask) -> None:
    table = DOCS.split("## Endpoints")[1].split("###")[0]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"<\1>", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            assert f"| `{method} {path}` |" in table, (method, path)
