"""A new model bundle is picked up without a restart; a bad one is refused and changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from .ui import go, jump, screen, start


def bundle_v2(folder: Path, *, tamper: bool = False) -> Path:
    """The shipped bundle with another commute layout, as version 2."""
    shipped = resources.files("edgepersona.sdk") / "default_bundle"
    folder.mkdir()
    (folder / "model.onnx").write_bytes((shipped / "model.onnx").read_bytes())
    playbook = json.loads((shipped / "playbook.json").read_text())
    playbook["surfaces"]["home"]["layouts"]["commute"]["cards"] = ["podcasts", "traffic", "quiz"]
    text = json.dumps(playbook, indent=1, sort_keys=True).encode()
    (folder / "playbook.json").write_bytes(text)
    manifest = json.loads((shipped / "manifest.json").read_text())
    manifest["version"] = 2
    manifest["sha256"]["playbook.json"] = hashlib.sha256(text).hexdigest()
    if tamper:
        (folder / "playbook.json").write_bytes(text.replace(b"quiz", b"quip"))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    started = start_app()
    start(started)
    jump(started, 8)
    return started


def load(driver: Any, path: Path) -> Any:
    settings = go(driver, "settings")
    settings.ids.bundle.text = str(path)
    driver.tap(settings.ids.load_bundle)
    return settings


def test_a_new_bundle_changes_the_home_screen_at_once(
    driver: Any, tmp_path: Path, shot: Any
) -> None:
    assert screen(driver, "home").card_ids() == ["traffic", "podcasts", "news", "offers"]
    settings = load(driver, bundle_v2(tmp_path / "v2"))
    assert driver.app.message == "Model v2 in use."
    assert settings.model_text.startswith("Model in use: v2")
    home = go(driver, "home")
    assert home.card_ids() == ["podcasts", "traffic", "quiz"]
    assert home.ids.cards.children[0].heading == "Quiz"  # a card the app did not know
    shot(driver)


def test_a_tampered_bundle_is_refused(driver: Any, tmp_path: Path, shot: Any) -> None:
    settings = load(driver, bundle_v2(tmp_path / "bad", tamper=True))
    assert driver.app.message.startswith("Bundle refused: ")
    assert "playbook.json" in driver.app.message
    assert settings.model_text.startswith("Model in use: v2")
    assert go(driver, "home").card_ids() == ["podcasts", "traffic", "quiz"]
    shot(driver)
