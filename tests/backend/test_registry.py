"""The model registry on SQLite and PostgreSQL: publish, promote, rollback, current, bundle.

``RegistryContract`` holds the storage-dependent tests (the same pattern as ``test_store``);
the refusals that never reach the database run once, on SQLite, below it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from edgepersona.backend import registry
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.errors import ConfigError
from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.backend.migrations import MIGRATIONS, migrate
from edgepersona.backend.rollout import in_rollout
from edgepersona.backend.schema import models, schema_version
from edgepersona.sdk._bundle import FILES, load_bundle
from edgepersona.sdk._signing import canonical_manifest, verify_manifest

from .conftest import MakeApp, register
from .test_http import error_of
from .test_store import device_id

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "sdk" / "default_bundle"
ADMIN_KEY = "admin-key-for-the-registry-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def default_files(**manifest_changes: Any) -> dict[str, bytes]:
    """The shipped default bundle, read from disk; keyword arguments replace manifest fields."""
    files = {name: (DEFAULT_BUNDLE / name).read_bytes() for name in FILES}
    if manifest_changes:
        manifest = json.loads(files["manifest.json"])
        manifest.update(manifest_changes)
        files["manifest.json"] = json.dumps(manifest).encode()
    return files


def second_files() -> dict[str, bytes]:
    """A valid bundle with other bytes than the default one: the playbook re-indented."""
    files = default_files()
    playbook = json.dumps(json.loads(files["playbook.json"]), indent=3).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["version"] = 2
    manifest["sha256"]["playbook.json"] = hashlib.sha256(playbook).hexdigest()
    return {**files, "playbook.json": playbook, "manifest.json": json.dumps(manifest).encode()}


def publish(client: FlaskClient, files: dict[str, bytes], headers: dict[str, str] = ADMIN) -> Any:
    parts = {name: (io.BytesIO(data), name) for name, data in files.items()}
    return client.post(
        "/v1/admin/models", data=parts, headers=headers, content_type="multipart/form-data"
    )


def promote(client: FlaskClient, version: int, percent: object) -> Any:
    return client.post(
        f"/v1/admin/models/{version}/promote", json={"percent": percent}, headers=ADMIN
    )


def stored_versions(app: Flask) -> list[int]:
    with engine(app).connect() as conn:
        return list(conn.execute(select(models.c.version).order_by(models.c.version)).scalars())


@pytest.fixture
def key_paths(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "registry-key.pem", tmp_path / "registry-key.pub.json"
    generate_keypair(private, public)
    return private, public


@pytest.fixture
def public_key(key_paths: tuple[Path, Path]) -> bytes:
    return load_public_key(key_paths[1])


@pytest.fixture
def app(make_app: MakeApp, key_paths: tuple[Path, Path]) -> Flask:
    """An app with the admin key and a signing key, on a migrated database."""
    created = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(key_paths[0]))
    with created.app_context():
        init_db()
    return created


class RegistryContract:
    """Registry behaviour every supported database must show."""

    def test_publish_signs_the_default_bundle_at_zero_percent(
        self, app: Flask, client: FlaskClient, auth: dict[str, str], public_key: bytes
    ) -> None:
        response = publish(client, default_files())
        assert response.status_code == 201, response.json
        manifest = response.json
        assert manifest["version"] == 1 and manifest["rollout"] == {"percent": 0}
        assert verify_manifest(manifest, [public_key]) is None
        assert response.headers["Location"] == "/v1/models/1/bundle"
        listed = client.get("/v1/admin/models", headers=ADMIN).json["models"]
        assert listed == [
            {
                "version": 1,
                "kind": "model",
                "source_version": None,
                "rollout_percent": 0,
                "created_at": app.config["CLOCK"].time(),
                "personas": [
                    p["name"]
                    for p in json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())["personas"]
                ],
            }
        ]
        assert client.get("/v1/models/current", headers=auth).status_code == 204

    def test_versions_strictly_increase(self, app: Flask, client: FlaskClient) -> None:
        assert publish(client, default_files()).status_code == 201
        error = error_of(publish(client, default_files()), 409)
        assert error["code"] == "version_not_newer" and "above 1" in error["message"]
        assert publish(client, default_files(version=7)).json["version"] == 7
        assert stored_versions(app) == [1, 7]
        assert [
            m["version"] for m in client.get("/v1/admin/models", headers=ADMIN).json["models"]
        ] == [7, 1]

    @pytest.mark.parametrize(
        ("tamper", "reason"),
        [
            (lambda f: {**f, "model.onnx": f["model.onnx"] + b"x"}, "model.onnx does not match"),
            (lambda f: {**f, "playbook.json": b"{}"}, "playbook.json does not match"),
            (lambda f: _rehashed_playbook(f, b'{"format": "nope"}'), "format must be"),
            (lambda f: {k: v for k, v in f.items() if k != "model.onnx"}, "model.onnx is missing"),
            (lambda f: default_files(schema_version=99), "feature schema 99"),
            (lambda f: default_files(expires_at="2026-01-01T00:00:00+00:00"), "expired"),
            (lambda f: default_files(version="2"), "version"),
            (lambda f: {**f, "extra.bin": b"1"}, "extra.bin"),
        ],
        ids=[
            "bad hash",
            "swapped playbook",
            "bad playbook",
            "missing",
            "schema",
            "expired",
            "text version",
            "extra file",
        ],
    )
    def test_a_tampered_bundle_is_refused_and_nothing_stored(
        self, app: Flask, client: FlaskClient, tamper: Any, reason: str
    ) -> None:
        error = error_of(publish(client, tamper(default_files())), 422)
        assert error["code"] == "invalid_bundle"
        assert reason in error["message"]
        assert stored_versions(app) == []

    def test_promote_to_30_percent_reaches_exactly_the_devices_in_its_buckets(
        self, app: Flask, client: FlaskClient, public_key: bytes
    ) -> None:
        publish(client, default_files())
        publish(client, second_files())
        assert promote(client, 1, 100).status_code == 200
        promoted = promote(client, 2, 30)
        assert promoted.json["rollout"] == {"percent": 30}
        assert verify_manifest(promoted.json, [public_key]) is None  # re-signed
        ids = [f"device-{i:03d}" for i in range(200)]
        with engine(app).connect() as conn:
            got = {d: registry.current_for(conn, d).version for d in ids}  # type: ignore[union-attr]
        expected = {d: 2 if in_rollout(d, 2, 30) else 1 for d in ids}
        assert got == expected
        assert 30 <= sum(v == 2 for v in got.values()) <= 90  # a sample, not all or none
        for _ in range(5):  # and over HTTP, for registered devices
            auth = register(client)
            answer = client.get("/v1/models/current", headers=auth).json
            assert answer["version"] == (2 if in_rollout(device_id(app, auth), 2, 30) else 1)

    def test_a_version_at_zero_percent_or_unknown_cannot_be_promoted_wrongly(
        self, app: Flask, client: FlaskClient
    ) -> None:
        publish(client, default_files())
        for percent in (101, -1, "30", True, 12.5, None):
            assert error_of(promote(client, 1, percent), 422)["code"] == "invalid_percent"
        extra = client.post(
            "/v1/admin/models/1/promote", json={"percent": 5, "x": 1}, headers=ADMIN
        )
        assert error_of(extra, 422)["code"] == "invalid_percent"
        assert error_of(promote(client, 9, 50), 404)["code"] == "unknown_version"
        assert (
            client.get("/v1/admin/models", headers=ADMIN).json["models"][0]["rollout_percent"] == 0
        )

    def test_rollback_publishes_the_old_files_as_a_higher_version(
        self, app: Flask, client: FlaskClient, auth: dict[str, str], public_key: bytes
    ) -> None:
        publish(client, default_files())
        publish(client, second_files())
        promote(client, 2, 100)
        assert client.get("/v1/models/current", headers=auth).json["version"] == 2
        response = client.post("/v1/admin/models/1/rollback", headers=ADMIN)
        assert response.status_code == 201, response.json
        manifest = response.json
        assert manifest["version"] == 3 and manifest["rollout"] == {"percent": 100}
        assert verify_manifest(manifest, [public_key]) is None
        assert client.get("/v1/models/current", headers=auth).json == manifest
        with engine(app).connect() as conn:
            old, new = registry.bundle_files(conn, 1), registry.bundle_files(conn, 3)
        assert old is not None and new is not None
        assert (
            new["model.onnx"] == old["model.onnx"] and new["playbook.json"] == old["playbook.json"]
        )
        listed = client.get("/v1/admin/models", headers=ADMIN).json["models"][0]
        assert (listed["kind"], listed["source_version"]) == ("rollback", 1)
        unknown = client.post("/v1/admin/models/42/rollback", headers=ADMIN)
        assert error_of(unknown, 404)["code"] == "unknown_version"
        assert stored_versions(app) == [1, 2, 3]

    def test_current_has_an_etag_and_answers_304_while_unchanged(
        self, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        publish(client, default_files())
        promote(client, 1, 100)
        first = client.get("/v1/models/current", headers=auth)
        etag = hashlib.sha256(canonical_manifest(first.json)).hexdigest()
        assert first.status_code == 200 and first.headers["ETag"] == f'"{etag}"'
        assert first.headers["Cache-Control"] == "private, no-cache"
        for match in (f'"{etag}"', f'W/"{etag}"', f'"other", "{etag}"', "*"):
            again = client.get("/v1/models/current", headers={**auth, "If-None-Match": match})
            assert again.status_code == 304 and again.data == b""
            assert again.headers["ETag"] == f'"{etag}"'
        stale = client.get("/v1/models/current", headers={**auth, "If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.json == first.json
        publish(client, second_files())
        promote(client, 2, 100)
        changed = client.get("/v1/models/current", headers={**auth, "If-None-Match": f'"{etag}"'})
        assert changed.status_code == 200 and changed.json["version"] == 2

    def test_a_promote_changes_the_etag_seen_by_every_worker(
        self, make_app: MakeApp, app: Flask, client: FlaskClient
    ) -> None:
        other_worker = make_app(
            ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=app.config["SIGNING_KEY_PATH"]
        )
        publish(client, default_files())
        promote(client, 1, 60)
        auth = register(client)
        while not in_rollout(device_id(app, auth), 1, 60):
            auth = register(client)
        before = other_worker.test_client().get("/v1/models/current", headers=auth)
        assert before.status_code == 200 and before.json["rollout"] == {"percent": 60}
        promote(client, 1, 100)  # the same version, re-signed with its new share
        after = other_worker.test_client().get(
            "/v1/models/current", headers={**auth, "If-None-Match": before.headers["ETag"]}
        )
        assert after.status_code == 200 and after.json["rollout"] == {"percent": 100}
        etag = hashlib.sha256(canonical_manifest(after.json)).hexdigest()
        assert after.headers["ETag"] == f'"{etag}"' != before.headers["ETag"]

    def test_the_downloaded_bundle_verifies_and_loads(
        self, client: FlaskClient, auth: dict[str, str], public_key: bytes, tmp_path: Path
    ) -> None:
        publish(client, default_files())
        response = client.get("/v1/models/1/bundle", headers=auth)
        assert response.status_code == 200 and response.mimetype == "application/zip"
        assert client.get("/v1/models/1/bundle", headers=auth).data == response.data
        path = tmp_path / "downloaded.zip"
        path.write_bytes(response.data)
        bundle = load_bundle(path)
        assert bundle.version == 1
        assert verify_manifest(bundle.manifest, [public_key]) is None
        missing = client.get("/v1/models/2/bundle", headers=auth)
        assert error_of(missing, 404)["code"] == "unknown_version"

    def test_a_version_1_database_is_upgraded_with_an_empty_registry(
        self, make_app: MakeApp
    ) -> None:
        app = make_app()
        with engine(app).begin() as conn:
            MIGRATIONS[0](conn)
            conn.execute(insert(schema_version).values(version=1))
        assert migrate(engine(app)) == 1  # the version it had; every later one then ran
        assert stored_versions(app) == []


class TestRegistrySQLite(RegistryContract):
    """The default database: a file in a temporary folder."""


class TestRegistryPostgreSQL(RegistryContract):
    """The real server; this session's own database, emptied before each test."""

    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


def _rehashed_playbook(files: dict[str, bytes], playbook: bytes) -> dict[str, bytes]:
    """A bundle whose playbook is replaced *and* whose manifest hash is updated to match."""
    manifest = json.loads(files["manifest.json"])
    manifest["sha256"]["playbook.json"] = hashlib.sha256(playbook).hexdigest()
    return {**files, "playbook.json": playbook, "manifest.json": json.dumps(manifest).encode()}


# Refusals before any registry work (SQLite only) --------------------------------------------

ADMIN_CALLS = [
    ("GET", "/v1/admin/models"),
    ("POST", "/v1/admin/models"),
    ("POST", "/v1/admin/models/1/promote"),
    ("POST", "/v1/admin/models/1/rollback"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_admin_endpoints_refuse_missing_and_wrong_keys_and_device_tokens(
    app: Flask, client: FlaskClient, auth: dict[str, str], method: str, path: str
) -> None:
    missing = client.open(path, method=method)
    assert error_of(missing, 401)["code"] == "unauthorized"
    assert "admin API key" in missing.json["error"]["message"]
    for headers in (auth, {"Authorization": f"Bearer {ADMIN_KEY}x"}):
        refused = client.open(path, method=method, headers=headers)
        assert error_of(refused, 403)["code"] == "forbidden"


def test_admin_endpoints_are_off_without_an_admin_key(make_app: MakeApp) -> None:
    app = make_app()
    with app.app_context():
        init_db()
    error = error_of(app.test_client().get("/v1/admin/models", headers=ADMIN), 403)
    assert "EDGEPERSONA_ADMIN_API_KEY" in error["message"]


def test_a_device_cannot_publish(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    assert error_of(publish(client, default_files(), headers=auth), 403)["code"] == "forbidden"
    assert stored_versions(app) == []


def test_device_endpoints_need_a_device_token(app: Flask, client: FlaskClient) -> None:
    for path in ("/v1/models/current", "/v1/models/1/bundle"):
        assert error_of(client.get(path), 401)["code"] == "unauthorized"
        assert error_of(client.get(path, headers=ADMIN), 401)["code"] == "unauthorized"
        unknown = {"Authorization": "Bearer " + "A" * 43}
        assert "register again" in error_of(client.get(path, headers=unknown), 401)["message"]


def test_without_a_usable_signing_key_publishing_is_a_503_saying_how_to_make_one(
    make_app: MakeApp, key_paths: tuple[Path, Path]
) -> None:
    app = make_app(ADMIN_API_KEY=ADMIN_KEY)
    with app.app_context():
        init_db()
    error = error_of(publish(app.test_client(), default_files()), 503)
    assert error["code"] == "signing_key_unavailable"
    assert (
        "generate_keypair" in error["message"]
        and "EDGEPERSONA_SIGNING_KEY_PATH" in error["message"]
    )
    os.chmod(key_paths[0], 0o644)
    loose = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(key_paths[0]))
    error = error_of(loose.test_client().post("/v1/admin/models/1/rollback", headers=ADMIN), 503)
    assert "chmod 600" in error["message"]
    assert stored_versions(app) == []


def test_publish_takes_multipart_only_and_bundles_larger_than_the_upload_limit(
    app: Flask, client: FlaskClient
) -> None:
    as_json = client.post("/v1/admin/models", json={"model.onnx": ""}, headers=ADMIN)
    error = error_of(as_json, 415)
    assert error["code"] == "unsupported_media_type" and "multipart/form-data" in error["message"]
    padded = {**default_files(), "padding.bin": b"0" * (2 * app.config["MAX_CONTENT_LENGTH"])}
    assert "padding.bin" in error_of(publish(client, padded), 422)["message"]  # not a 413
    assert stored_versions(app) == []


def test_the_signing_key_path_setting_is_checked(make_app: MakeApp) -> None:
    with pytest.raises(ConfigError, match="SIGNING_KEY_PATH"):
        make_app(SIGNING_KEY_PATH="  ")
    assert make_app(SIGNING_KEY_PATH=Path("k.pem")).config["SIGNING_KEY_PATH"] == "k.pem"


def test_current_for_is_none_on_an_empty_registry(app: Flask) -> None:
    with engine(app).connect() as conn:
        assert registry.current_for(conn, "anyone") is None
        assert conn.execute(select(func.count()).select_from(models)).scalar_one() == 0
