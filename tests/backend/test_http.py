"""The HTTP surface: every refusal is a JSON error with a 4xx (never a 500 for bad input)."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import httpx
import pytest
from flask import Flask, abort
from flask.testing import FlaskClient

from edgepersona.backend.db import engine, init_db
from edgepersona.backend.web import loads_strict
from edgepersona.sdk.features import FEATURES

from .conftest import MakeApp, register, valid_payload


def error_of(response: Any, status: int) -> dict[str, str]:
    """The error object of ``response``, after checking the status and the JSON shape."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    error: dict[str, str] = response.json["error"]
    assert set(error) <= {"code", "message", "field"}
    assert error["message"].endswith(".") and error["message"][0].isupper()
    return error


def post_raw(client: FlaskClient, auth: dict[str, str], body: bytes | str, **kw: Any) -> Any:
    kw.setdefault("content_type", "application/json")
    return client.post("/v1/aggregates", data=body, headers=auth, **kw)


# Malformed bodies -------------------------------------------------------------------------

MALFORMED = {
    "not json": (b"hello", "Expecting value"),
    "truncated": (b'{"upload_id": ', "Expecting value"),
    "NaN": (b'{"epsilon": NaN}', "NaN is not a JSON number"),
    "Infinity": (b"[Infinity]", "Infinity is not a JSON number"),
    "-Infinity": (b"[-Infinity]", "-Infinity is not a JSON number"),
    "overflowing float": (b"[1e999]", "too large for a double"),
    "overflowing int": (b"[" + b"9" * 400 + b"]", "400 digits is too large"),
    "latin-1": ('{"sdk_version": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "deep nesting": (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
    "empty": (b"", "Expecting value"),
}


@pytest.mark.parametrize(("body", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_a_400_naming_the_problem(
    client: FlaskClient, auth: dict[str, str], body: bytes, reason: str
) -> None:
    error = error_of(post_raw(client, auth, body), 400)
    assert error["code"] == "malformed_json"
    assert reason in error["message"]


def test_loads_strict_reads_what_json_dumps_writes() -> None:
    value = {"a": [1, -2.5, 1e308, "\u00e9", None, True], "b": {}}
    assert loads_strict(json.dumps(value).encode()) == value


def test_loads_strict_reads_every_finite_number_and_id_as_json_does() -> None:
    # Texts with and without the shapes that send it down the checked path (long exponents,
    # hex ids with "e" and digits in them, tiny numbers), read to the same values.
    rng = random.Random(3)
    numbers = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-320, 307) for _ in range(2000)]
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(200)] + ["5e123", "1e999"]
    for text in (json.dumps(numbers), json.dumps({"ids": ids, "n": numbers[:50]}), "1e300"):
        assert loads_strict(text.encode()) == json.loads(text)


# Every way a number can be too large for a double or too long, in every place it can stand.
OVERFLOWING = ["1e999", "1E+309", "2e0308", "-2e400", "0.01e312", "1" * 310, "9" * 309 + ".5"]


@pytest.mark.parametrize("number", OVERFLOWING)
@pytest.mark.parametrize("place", ["{}", "[{}]", '{{"a":{}}}', "[1, {}\n]", "[{} ]"])
def test_loads_strict_refuses_a_number_too_large_wherever_it_stands(
    number: str, place: str
) -> None:
    with pytest.raises(ValueError, match="too large"):
        loads_strict(place.format(number).encode())


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""]
)
def test_a_body_not_sent_as_json_is_a_415(
    client: FlaskClient, auth: dict[str, str], content_type: str
) -> None:
    body = json.dumps(valid_payload())
    error = error_of(post_raw(client, auth, body, content_type=content_type or None), 415)
    assert error["code"] == "unsupported_media_type"


def test_json_with_a_charset_parameter_is_fine(client: FlaskClient, auth: dict[str, str]) -> None:
    body = json.dumps(valid_payload())
    response = post_raw(client, auth, body, content_type="application/json; charset=utf-8")
    assert response.status_code == 201


def test_wrong_types_are_a_422_naming_the_field(client: FlaskClient, auth: dict[str, str]) -> None:
    for body, field in (
        ([], "payload"),
        (valid_payload(features="0.5"), "features"),
        (valid_payload(epsilon="1"), "epsilon"),
        (valid_payload(outcomes=[{"offer": 1}]), "outcomes[0]"),
        (valid_payload(schema_version=2), "schema_version"),
        (valid_payload(features=[0.5] * 3), "features"),
    ):
        error = error_of(client.post("/v1/aggregates", json=body, headers=auth), 422)
        assert (error["code"], error["field"]) == ("invalid_payload", field)
        where = "The payload" if field == "payload" else f"Field {field}"
        assert error["message"].startswith(f"{where} is not valid: ")


# Size limit -------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413(client: FlaskClient, auth: dict[str, str]) -> None:
    body = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
    error = error_of(post_raw(client, auth, body), 413)
    assert error["code"] == "payload_too_large"
    assert "65536 bytes" in error["message"]


@pytest.mark.parametrize(("size", "status"), [(64 * 1024 - 1, 422), (64 * 1024, 413), (10**6, 413)])
def test_a_chunked_body_is_held_to_the_limit_too(
    client: FlaskClient, auth: dict[str, str], size: int, status: int
) -> None:
    # No Content-Length: werkzeug would stop at the limit and hand over a truncated body.
    response = client.post(
        "/v1/aggregates",
        input_stream=io.BytesIO(b"[" + b" " * (size - 2) + b"]"),
        content_type="application/json",
        headers={**auth, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it
    )
    assert response.status_code == status, response.json
    assert response.request.content_length is None


def test_the_largest_valid_upload_fits_the_default_limit(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    longest = -1234.5678901234567  # as many characters as a double takes in JSON
    payload = valid_payload(
        features=[f.low - 10 * (f.high - f.low) + 1e-9 for f in FEATURES],
        outcomes=[
            {
                "offer": f"{i:064d}",
                "accepted": longest,
                "dismissed": longest,
            }
            for i in range(200)
        ],
        persona="p" * 64,
        sdk_version="9" * 32,
    )
    body = json.dumps(payload).encode()
    assert 25_000 < len(body) < 64 * 1024
    assert post_raw(client, auth, body).status_code == 201


def test_the_limit_is_a_setting(make_app: MakeApp) -> None:
    app = make_app(MAX_CONTENT_LENGTH=2048)
    with app.app_context():
        init_db()
    client = app.test_client()
    body = json.dumps(valid_payload(sdk_version="1" * 32, outcomes=[])).encode()
    assert len(body) < 2048
    assert post_raw(client, register(client), body).status_code == 201
    assert post_raw(client, register(client), b" " * 2049).status_code == 413


# Authentication ---------------------------------------------------------------------------

UNAUTHORIZED = {
    "no header": ({}, False),
    "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, True),
    "no token": ({"Authorization": "Bearer "}, True),
    "short token": ({"Authorization": "Bearer abc"}, True),
    "bad characters": ({"Authorization": "Bearer " + "*" * 43}, True),
    "unknown token": ({"Authorization": "Bearer " + "A" * 43}, True),
}


@pytest.mark.parametrize(("headers", "invalid"), UNAUTHORIZED.values(), ids=UNAUTHORIZED.keys())
@pytest.mark.parametrize(
    ("method", "path"), [("post", "/v1/aggregates"), ("delete", "/v1/devices/me")]
)
def test_a_missing_or_wrong_token_is_a_401_with_a_challenge(
    client: FlaskClient, headers: dict[str, str], invalid: bool, method: str, path: str
) -> None:
    response = getattr(client, method)(path, json=valid_payload(), headers=headers)
    assert error_of(response, 401)["code"] == "unauthorized"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="edgepersona"')
    assert ('error="invalid_token"' in challenge) is invalid


def test_a_wrong_token_wins_over_a_bad_body(client: FlaskClient) -> None:
    response = post_raw(client, {"Authorization": "Bearer " + "A" * 43}, b"NaN")
    assert response.status_code == 401


def test_the_scheme_is_case_insensitive(client: FlaskClient, auth: dict[str, str]) -> None:
    lower = {"Authorization": auth["Authorization"].replace("Bearer", "bearer")}
    assert client.post("/v1/aggregates", json=valid_payload(), headers=lower).status_code == 201


# Routing and unexpected failures ----------------------------------------------------------


def test_unknown_paths_and_methods_are_json(client: FlaskClient) -> None:
    assert error_of(client.get("/v1/nothing"), 404)["code"] == "not_found"
    not_allowed = client.get("/v1/aggregates")
    assert error_of(not_allowed, 405)["code"] == "method_not_allowed"
    assert "POST" in not_allowed.headers["Allow"]
    assert error_of(client.put("/healthz"), 405)["message"] == "PUT is not allowed on /healthz."


def test_an_unexpected_exception_is_a_500_without_internals(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    response = app.test_client().get("/boom")
    error = error_of(response, 500)
    assert error["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)


def test_any_other_http_error_keeps_werkzeugs_name_and_sentence(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/range")
    def out_of_range() -> str:
        abort(416)

    error = error_of(app.test_client().get("/range"), 416)
    assert error["code"] == "requested_range_not_satisfiable"


def test_an_unreachable_database_is_a_503_not_a_500(make_app: MakeApp) -> None:
    app = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json["database"] == "unreachable"  # type: ignore[index]
    assert health.json["error"]["code"] == "database_unavailable"  # type: ignore[index]
    refused = client.post("/v1/devices")
    assert error_of(refused, 503)["code"] == "database_unavailable"
    assert refused.headers["Retry-After"] == "5"


# Health and metrics -----------------------------------------------------------------------


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok", "database": "ok"})


def test_metrics_count_requests_uploads_and_rejections(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    payload = valid_payload()
    client.post("/v1/aggregates", json=payload, headers=auth)
    client.post("/v1/aggregates", json=payload, headers=auth)
    client.post("/v1/aggregates", json=valid_payload(epsilon=0), headers=auth)
    post_raw(client, auth, b"NaN")
    client.post("/v1/aggregates", json=payload)
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = set(response.get_data(as_text=True).splitlines())
    for expected in (
        "edgepersona_uploads_accepted_total 1",
        "edgepersona_uploads_duplicate_total 1",
        'edgepersona_upload_rejections_total{field="epsilon",reason="invalid_payload"} 1',
        'edgepersona_upload_rejections_total{field="",reason="malformed_json"} 1',
        'edgepersona_upload_rejections_total{field="",reason="unauthorized"} 1',
        'edgepersona_http_requests_total{endpoint="ingest.upload",method="POST",status="201"} 1',
        'edgepersona_http_requests_total{endpoint="devices.register",method="POST",status="201"} 1',
        'edgepersona_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1',
        "# TYPE edgepersona_upload_rejections_total counter",
    ):
        assert expected in lines


def test_metrics_belong_to_one_app(make_app: MakeApp) -> None:
    first, second = make_app(), make_app()
    first.test_client().get("/nowhere")
    text = second.test_client().get("/metrics").get_data(as_text=True)
    assert "unmatched" not in text


# The SDK's way in -------------------------------------------------------------------------


def test_a_device_session_over_httpx_wsgi_transport(app: Flask) -> None:
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://backend") as http:
        registered = http.post("/v1/devices")
        assert registered.status_code == 201
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        payload = valid_payload()
        assert http.post("/v1/aggregates", json=payload).json() == {"status": "accepted"}
        assert http.post("/v1/aggregates", json=payload).status_code == 200
        nan = http.post(
            "/v1/aggregates",
            content=b'{"epsilon": NaN}',
            headers={"Content-Type": "application/json"},
        )
        assert nan.status_code == 400 and nan.json()["error"]["code"] == "malformed_json"
        assert http.delete("/v1/devices/me").status_code == 204
        assert http.post("/v1/aggregates", json=payload).status_code == 401
    engine(app).dispose()
