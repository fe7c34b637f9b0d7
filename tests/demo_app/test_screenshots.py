"""The screenshot tour draws every screen; `edgepersona app --screenshots DIR` is one command."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgepersona.demo_app.screenshots import SHOTS

REPO = Path(__file__).resolve().parents[2]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_committed_screenshots_are_the_tours() -> None:
    committed = sorted(p.stem for p in (REPO / "docs" / "screenshots").glob("*.png"))
    assert committed == sorted(name for name, _ in SHOTS)
    for name, _ in SHOTS:
        assert png_size(REPO / "docs" / "screenshots" / f"{name}.png") == (800, 1600)


@pytest.mark.slow
def test_one_command_makes_the_screenshots_without_a_display(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    script = Path(sys.executable).parent / "edgepersona"
    result = subprocess.run(
        [script, "app", "--screenshots", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / f"{name}.png") for name, _ in SHOTS]
    assert png_size(tmp_path / "home-morning.png") == (800, 1600)
