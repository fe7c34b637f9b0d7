"""``edgepersona backend`` and the registry commands of ``edgepersona models``, end to end.

The models commands run against the real app in-process (``httpx.WSGITransport``); ``serve``
runs as a real process on a real port.
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask

from edgepersona.edge_models.cli import AdminRequestError, list_models, promote, publish, rollback
from edgepersona.sdk._bundle import FILES
from edgepersona.sdk.cli import build_parser, main

from .conftest import MakeApp
from .test_registry import ADMIN_KEY, DEFAULT_BUNDLE


@pytest.fixture
def admin_app(make_app: MakeApp, tmp_path: Path, database_url: str) -> Flask:
    """An app with admin and signing keys, its tables made by ``edgepersona backend``."""
    private = tmp_path / "keys" / "registry-key.pem"
    assert main(["backend", "keygen", "--out", str(private.parent)]) == 0
    assert main(["backend", "init-db", "--database-url", database_url]) == 0
    return make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))


def client_of(app: Flask, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url="http://backend.test",
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def admin(admin_app: Flask) -> Iterator[httpx.Client]:
    with client_of(admin_app) as client:
        yield client


def test_keygen_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backend", "keygen", "--out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    private, public = (
        tmp_path / "keys" / "registry-key.pem",
        tmp_path / "keys" / "registry-key.pub.json",
    )
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert f"EDGEPERSONA_SIGNING_KEY_PATH={private.resolve()}" in out
    assert "key id" in out and str(public) in out


def test_keygen_with_explicit_paths_and_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = ["--private", str(tmp_path / "a.pem"), "--public", str(tmp_path / "a.pub.json")]
    assert main(["backend", "keygen", *paths]) == 0
    capsys.readouterr()
    assert main(["backend", "keygen", *paths]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgepersona backend keygen: error: ") and "already exists" in err
    assert err.count("\n") == 1
    assert main(["backend", "keygen", "--private", str(tmp_path / "b.pem")]) == 1
    assert "--out DIR or both --private PATH and --public PATH" in capsys.readouterr().err


def test_init_db_creates_then_reports_the_schema(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backend", "init-db", "--database-url", database_url]) == 0
    assert "upgraded from schema version 0" in capsys.readouterr().out
    assert main(["backend", "init-db", "--database-url", database_url]) == 0
    assert "already at schema version" in capsys.readouterr().out


def test_init_db_refuses_a_bad_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backend", "init-db", "--database-url", "mysql://x@y/z"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "edgepersona backend init-db: error: DATABASE_URL names a mysql database; "
        "accepted: sqlite or postgresql\n"
    )


def test_publish_list_promote_rollback(
    admin: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list_models(admin) == 0
    assert capsys.readouterr().out == "no published versions\n"
    assert publish(admin, DEFAULT_BUNDLE) == 0
    assert "published   version 1 at 0% rollout" in capsys.readouterr().out
    assert promote(admin, 1, 30) == 0
    assert capsys.readouterr().out == "version 1 now goes to 30% of devices\n"
    assert rollback(admin, 1) == 0
    assert capsys.readouterr().out == "version 2 re-publishes version 1 at 100% of devices\n"
    assert list_models(admin) == 0
    header, newest, oldest = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["version", "kind", "rollout"]
    assert newest.split()[:5] == ["2", "rollback", "of", "1", "100%"]
    assert oldest.split()[:3] == ["1", "model", "30%"]
    assert header.index("rollout") + len("rollout") == newest.index("100%") + len("100%")


def test_publish_takes_a_zip(
    admin: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name in FILES:
            archive.write(DEFAULT_BUNDLE / name, name)
    assert publish(admin, bundle) == 0
    assert "version 1" in capsys.readouterr().out
    with pytest.raises(AdminRequestError, match="not a bundle"):
        publish(admin, tmp_path / "missing")


def test_server_errors_are_one_line_with_the_servers_message(admin_app: Flask) -> None:
    wrong = client_of(admin_app, key="not-the-admin-key-at-all")
    with wrong, pytest.raises(AdminRequestError) as refused:
        list_models(wrong)
    assert str(refused.value) == (
        "The bearer credential is not the admin API key; device tokens cannot call admin "
        "endpoints. (HTTP 403 forbidden)"
    )
    with client_of(admin_app) as admin, pytest.raises(AdminRequestError, match="unknown_version"):
        promote(admin, 7, 30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_backend_exits_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["models", "list", "--url", url, "--api-key", ADMIN_KEY]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"edgepersona models: error: the backend is not reachable at {url}")
    assert err.count("\n") == 1


def test_models_commands_need_an_admin_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EDGEPERSONA_ADMIN_API_KEY", raising=False)
    assert main(["models", "list"]) == 1
    assert "pass --api-key or set EDGEPERSONA_ADMIN_API_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_migrates_and_answers_health_checks(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "EDGEPERSONA_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}"}
    script = Path(sys.executable).parent / "edgepersona"
    command = [script, "backend", "serve", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0].decode()
                assert time.monotonic() < deadline, "serve did not answer within 20 s"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok"}
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    assert server.returncode == 0, output
    assert "gunicorn" in output.lower()


def test_every_admin_flag_is_parsed() -> None:
    args = build_parser().parse_args(["models", "promote", "3", "--percent", "30"])
    assert isinstance(args, argparse.Namespace)
    assert (args.version, args.percent, args.url) == (3, 30, "http://127.0.0.1:8000")


def test_retrain_below_the_floor_is_refused_and_reported(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backend", "keygen", "--out", str(tmp_path / "keys")]) == 0
    key = tmp_path / "keys" / "registry-key.pem"
    assert main(["backend", "init-db", "--database-url", database_url]) == 0
    capsys.readouterr()
    code = main(
        ["backend", "retrain", "--database-url", database_url, "--signing-key", str(key), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "refused (too_few_devices)" in captured.err
    assert '"published_version": null' in captured.out


def test_retrain_without_a_signing_key_says_how_to_make_one(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backend", "retrain", "--database-url", database_url]) == 1
    assert "edgepersona backend keygen" in capsys.readouterr().err
