"""The folder buildozer packages holds everything the app imports, and runs on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgepersona.demo_app.android import prepare

REPO = Path(__file__).resolve().parents[2]
CHECK = """
import sys, tempfile
from datetime import date
from pathlib import Path
sys.path.insert(0, {folder!r})
from edgepersona.demo_app.session import Session
import edgepersona.sdk, edgepersona.demo_app.app
session = Session(Path(tempfile.mkdtemp()), today=date(2026, 3, 18), seed=1)
session.choose({{"personalization": True, "location": True}})
print(edgepersona.sdk.__file__)
print(edgepersona.demo_app.app.__file__)
print(session.decide("home").variant)
"""


def test_the_android_folder_runs_the_app_from_its_own_copy(tmp_path: Path) -> None:
    main = prepare(tmp_path / "android")
    assert main.read_text().endswith("EdgePersonaApp().run()\n")
    package = tmp_path / "android" / "edgepersona"
    assert (package / "demo_app" / "kv" / "home.kv").is_file()
    assert (package / "sdk" / "default_bundle" / "model.onnx").is_file()
    assert not list(package.rglob("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(folder=str(tmp_path / "android"))],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"KIVY_HOME": str(tmp_path / "kivy"), "KIVY_NO_CONSOLELOG": "1"},
    )
    assert result.returncode == 0, result.stderr
    sdk_file, app_file, variant = result.stdout.split()
    assert sdk_file.startswith(str(package)) and app_file.startswith(str(package))
    assert variant == "commute"  # a commuter, 06:00 on a weekday


def test_buildozer_spec_packages_that_folder_without_onnxruntime() -> None:
    spec = (REPO / "buildozer.spec").read_text()
    assert "source.dir = build/android" in spec
    requirements = spec.split("requirements =", 1)[1].split("\n\n", 1)[0]
    names = {line.strip().rstrip(",").split("==")[0] for line in requirements.splitlines()}
    assert {"kivy", "plyer", "numpy", "httpx", "sqlite-utils", "sqlite3"} <= names
    assert "onnxruntime" not in names
    assert "ACCESS_FINE_LOCATION" in spec and "INTERNET" in spec
