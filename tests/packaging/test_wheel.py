"""The wheel holds every module under the ``edgepersona`` namespace, and each one imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTS = {
    "sdk": "edgepersona.sdk",
    "edge_models": "edgepersona.edge_models",
    "backend": "edgepersona.backend",
    "demo_app": "edgepersona.demo_app",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in PARTS:
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
    )
    (built,) = out.glob("edgepersona-*.whl")
    return built


def source_modules() -> set[str]:
    modules = set()
    for folder, package in PARTS.items():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            modules.add(".".join([package, *parts]))
    return modules


def test_every_source_module_is_in_the_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in names
        if name.endswith(".py")
    }
    assert source_modules() <= in_wheel
    assert not any(name.startswith(("sdk/", "backend/", "tests/")) for name in names)
    assert "edgepersona/sdk/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edgepersona = edgepersona.sdk.cli:main" in text


def test_every_module_imports_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    modules = sorted(source_modules())
    script = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "bad = []\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    if not module.__file__.startswith({str(target)!r}):\n"
        "        bad.append((name, module.__file__))\n"
        "print(len(bad)); [print(b) for b in bad]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "0", result.stdout
