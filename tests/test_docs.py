"""The README and the CLI agree with the code: commands documented, examples run as shown."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgepersona.sdk.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `edgepersona (\w[\w-]*)", README, flags=re.MULTILINE))
    assert set(subcommands()) == documented


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_has_help_with_an_example(name: str) -> None:
    text = subcommands()[name].format_help()
    assert "example" in text.lower()


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "edgepersona"  # where pip puts console scripts
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for name in subcommands():
        assert name in result.stdout


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_sdk_example_runs_as_shown(tmp_path: Path) -> None:
    (example,) = python_blocks(README)
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "{'location.no_consent': 1}" in result.stdout


def test_readme_install_and_test_commands_are_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "ci:install" in README and "ci:test" in README
    assert "readme_block install" in ci and "readme_block test" in ci
