"""`edgepersona app`'s options that need no window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepersona.demo_app import cli
from edgepersona.sdk.cli import main


def test_android_source_writes_the_buildozer_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["app", "--android-source", str(tmp_path / "android")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "android" / "main.py")


def test_the_public_key_may_be_the_file_keygen_wrote(tmp_path: Path) -> None:
    key_file = tmp_path / "registry-key.pub.json"
    key_file.write_text(json.dumps({"alg": "ed25519", "key_id": "k1", "public_key": "QUJD"}))
    assert cli._public_key(str(key_file)) == "QUJD"
    assert cli._public_key("QUJD") == "QUJD"
    assert cli._public_key(None) is None


def test_an_unknown_persona_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["app", "--persona", "astronaut"])
    assert exit_.value.code == 2
    assert "invalid choice: 'astronaut'" in capsys.readouterr().err
