"""Settings: defaults, then EDGEPERSONA_* variables, then the test dict; checked at start-up."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from edgepersona.backend import create_app
from edgepersona.backend.app import INSTANCE_PATH
from edgepersona.backend.config import (
    ENV_PREFIX,
    SETTINGS,
    admin_key_matches,
    default_database_url,
    from_environ,
)
from edgepersona.backend.db import engine
from edgepersona.backend.errors import ConfigError
from edgepersona.sdk.clock import SystemClock

REPO = Path(__file__).resolve().parents[2]
KEY = "correct-horse-battery-staple"


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*(ENV_PREFIX + s for s in SETTINGS), "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["RATE_LIMIT_UPLOADS_PER_HOUR"] == 20
    assert app.config["K_ANONYMITY_FLOOR"] == 50
    assert app.config["UPLOAD_FLUSH"] == "each"
    assert app.config["ADMIN_API_KEY"] is None and app.config["ADMIN_API_KEY_SHA256"] is None
    assert isinstance(app.config["CLOCK"], SystemClock)
    assert INSTANCE_PATH.startswith(sys.prefix) and app.instance_path == INSTANCE_PATH
    assert default_database_url("/srv/ep") == "sqlite:////srv/ep/edgepersona.db"
    engine(app).dispose()


def test_the_environment_overrides_defaults_and_the_test_dict_overrides_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEPERSONA_RATE_LIMIT_UPLOADS_PER_HOUR", "7")
    monkeypatch.setenv("EDGEPERSONA_K_ANONYMITY_FLOOR", " 99 ")
    monkeypatch.setenv("EDGEPERSONA_UPLOAD_FLUSH", " Background ")
    monkeypatch.setenv("EDGEPERSONA_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    app = create_app({"K_ANONYMITY_FLOOR": 5})
    assert app.config["RATE_LIMIT_UPLOADS_PER_HOUR"] == 7
    assert app.config["K_ANONYMITY_FLOOR"] == 5
    assert app.config["UPLOAD_FLUSH"] == "background"
    assert app.config["DATABASE_URL"].endswith("env.db")
    engine(app).dispose()


def test_plain_database_url_is_honoured_and_the_prefixed_one_wins() -> None:
    assert from_environ({"DATABASE_URL": "sqlite:///a.db"}) == {"DATABASE_URL": "sqlite:///a.db"}
    both = {"DATABASE_URL": "sqlite:///a.db", "EDGEPERSONA_DATABASE_URL": "sqlite:///b.db"}
    assert from_environ(both) == {"DATABASE_URL": "sqlite:///b.db"}
    assert from_environ({"DATABASE_URL": ""}) == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////var/lib/ep.db", "sqlite:////var/lib/ep.db"),
    ],
)
def test_postgres_urls_use_psycopg_3(given: str, expected: str) -> None:
    app = create_app({"DATABASE_URL": given})
    assert app.config["DATABASE_URL"] == expected
    engine(app).dispose()


BAD = {
    "rate limit zero": ({"RATE_LIMIT_UPLOADS_PER_HOUR": 0}, "at least 1"),
    "rate limit text": ({"RATE_LIMIT_UPLOADS_PER_HOUR": "20"}, "an integer"),
    "rate limit bool": ({"RATE_LIMIT_UPLOADS_PER_HOUR": True}, "an integer"),
    "tiny body limit": ({"MAX_CONTENT_LENGTH": 10}, "at least 1024"),
    "k floor negative": ({"K_ANONYMITY_FLOOR": -1}, "K_ANONYMITY_FLOOR"),
    "mysql": ({"DATABASE_URL": "mysql://u@h/d"}, "a mysql database"),
    "not a url": ({"DATABASE_URL": "not a url"}, "not a database URL"),
    "empty url": ({"DATABASE_URL": ""}, "an SQLAlchemy database URL"),
    "short admin key": ({"ADMIN_API_KEY": "short"}, "at least 16 characters"),
    "clock without time": ({"CLOCK": object()}, "time()"),
    "flush sometimes": ({"UPLOAD_FLUSH": "sometimes"}, "accepted: background or each"),
    "flush bool": ({"UPLOAD_FLUSH": True}, "UPLOAD_FLUSH is True"),
}


@pytest.mark.parametrize(("config", "fragment"), BAD.values(), ids=BAD.keys())
def test_a_bad_setting_fails_at_start_up_naming_it(
    config: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        create_app(config)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="EDGEPERSONA_MAX_CONTENT_LENGTH='64k'"):
        from_environ({"EDGEPERSONA_MAX_CONTENT_LENGTH": "64k"})


def test_only_a_hash_of_the_admin_key_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEPERSONA_ADMIN_API_KEY", KEY)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert KEY not in repr(dict(app.config))
    assert admin_key_matches(app.config, KEY)
    assert not admin_key_matches(app.config, KEY + "x")
    assert not admin_key_matches({"ADMIN_API_KEY_SHA256": None}, KEY)
    engine(app).dispose()


def test_only_the_config_module_reads_the_environment() -> None:
    for path in (REPO / "backend").glob("*.py"):
        if path.name != "config.py":
            assert "os.environ" not in path.read_text(), path.name


def test_every_setting_is_documented() -> None:
    docs = (REPO / "docs" / "backend.md").read_text()
    for name in SETTINGS:
        assert f"`{ENV_PREFIX}{name}`" in docs, name
    assert "`DATABASE_URL`" in docs
