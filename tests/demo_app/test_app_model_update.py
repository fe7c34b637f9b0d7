"""A model the backend publishes reaches the app without a restart: downloaded by sync,
verified against the pinned key, run in shadow for some decisions, then adopted, and the home
screen follows at once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
from flask import Flask

from edgepersona.backend.keys import generate_keypair
from edgepersona.demo_app.settings import AppSettings

from .net import ADMIN_KEY, Network, PhoneClock, backend
from .ui import go, jump, screen, start

SERVER = "http://sync.test"


def bundle_files(version: int) -> dict[str, bytes]:
    """The shipped bundle as a new version whose commute layout leads with podcasts."""
    shipped = resources.files("edgepersona.sdk") / "default_bundle"
    files = {name: (shipped / name).read_bytes() for name in ("model.onnx", "manifest.json")}
    playbook = json.loads((shipped / "playbook.json").read_text())
    playbook["surfaces"]["home"]["layouts"]["commute"]["cards"] = ["podcasts", "traffic", "news"]
    files["playbook.json"] = json.dumps(playbook, indent=1, sort_keys=True).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["version"] = version
    manifest["sha256"]["playbook.json"] = hashlib.sha256(files["playbook.json"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, PhoneClock]]:
    folder = tmp_path_factory.mktemp("registry")
    generate_keypair(folder / "key.pem", folder / "key.pub.json")
    public_key = json.loads((folder / "key.pub.json").read_text())["public_key"]
    clock = PhoneClock()
    with backend(folder, clock, SIGNING_KEY_PATH=str(folder / "key.pem")) as app:
        yield app, public_key, clock


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any], registry: tuple[Flask, str, PhoneClock]) -> Any:
    app, public_key, clock = registry
    settings = AppSettings(backend_url=SERVER, public_key=public_key)
    started = start_app(transport=Network(app), settings=settings)
    clock.app = started.app
    start(started)
    return started


def publish(app: Flask, version: int) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=SERVER) as admin:
        parts = {name: (name, data) for name, data in bundle_files(version).items()}
        assert admin.post("/v1/admin/models", files=parts, headers=headers).status_code == 201
        promoted = admin.post(f"/v1/admin/models/{version}/promote", json={"percent": 100},
                              headers=headers)  # fmt: skip
        assert promoted.status_code == 200, promoted.text


def test_a_published_model_is_tried_in_shadow_then_shown_without_restart(
    driver: Any, registry: tuple[Flask, str, PhoneClock], shot: Any
) -> None:
    jump(driver, 8)
    assert screen(driver, "home").card_ids() == ["traffic", "podcasts", "news", "offers"]
    publish(registry[0], 2)
    settings = go(driver, "settings")
    driver.tap(settings.ids.sync_now)
    driver.until(lambda: not driver.app.busy)
    assert driver.app.session.last_sync.model.startswith("shadow v2 0/")
    assert "Trying v2 alongside" in settings.model_text
    assert settings.model_text.startswith("Model in use: v1, built into the app.")
    shot(driver)
    # The shadow runs beside v1 on the decisions the app makes anyway: each screen shown.
    status = driver.app.session.model_status()
    for _ in range(status["shadow"]["of"]):
        driver.app.navigate("offers")
        if driver.app.session.model_status()["version"] == 2:
            break
    home = go(driver, "home")
    assert home.card_ids() == ["podcasts", "traffic", "news"]
    settings = go(driver, "settings")
    assert settings.model_text == "Model in use: v2, downloaded."
    assert settings.history_text.splitlines()[0].startswith("v2 adopted 17 Mar")
    shot(driver)
