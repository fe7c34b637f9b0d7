"""The backend's settings: defaults, then ``EDGEPERSONA_*`` environment variables, then a test dict.

This is the only module that reads ``os.environ``. Every setting is documented in
``docs/backend.md`` (a test checks that each name in ``SETTINGS`` is there). Values are checked
once, when the app is created, so a typo in a deployment fails at start-up with a sentence
naming the variable, not at the first request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any, get_args

from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from edgepersona.sdk.clock import SystemClock

from .errors import ConfigError
from .upload_write import Flush

__all__ = [
    "ENV_PREFIX",
    "SETTINGS",
    "admin_api_key_from_environ",
    "admin_key_matches",
    "configure",
    "default_database_url",
    "from_environ",
]

ENV_PREFIX = "EDGEPERSONA_"
# Integer settings and the smallest value each accepts.
_INT_MINIMUMS = {
    "MAX_CONTENT_LENGTH": 1024,
    "RATE_LIMIT_UPLOADS_PER_HOUR": 1,
    "K_ANONYMITY_FLOOR": 1,
}
# Settings that take one of a few words, and the words.
_CHOICES = {"UPLOAD_FLUSH": get_args(Flush)}
SETTINGS = ("DATABASE_URL", *_INT_MINIMUMS, *_CHOICES, "ADMIN_API_KEY", "SIGNING_KEY_PATH")
MIN_ADMIN_KEY_LENGTH = 16
_DEFAULT_DB_FILE = "edgepersona.db"


def default_database_url(instance_path: str) -> str:
    """The SQLite file used when no ``DATABASE_URL`` is set: in Flask's instance folder."""
    return "sqlite:///" + os.path.join(instance_path, _DEFAULT_DB_FILE)


def _defaults(instance_path: str) -> dict[str, Any]:
    return {
        "DATABASE_URL": default_database_url(instance_path),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        "RATE_LIMIT_UPLOADS_PER_HOUR": 20,
        "K_ANONYMITY_FLOOR": 50,
        # Whether an upload is answered only once it is on disk ("each"), or once committed,
        # its flush following within a fraction of a second ("background"): docs/backend.md.
        "UPLOAD_FLUSH": "each",
        "ADMIN_API_KEY": None,
        "SIGNING_KEY_PATH": None,  # the registry's Ed25519 private key (PEM, mode 0600)
        "CLOCK": SystemClock(),  # tests pass a ManualClock; nothing in the backend sleeps
    }


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given by ``environ``, parsed; unset ones are left out.

    ``EDGEPERSONA_DATABASE_URL`` wins over the plain ``DATABASE_URL`` that platforms such as
    Heroku or Render set, so a shared environment can still point this service elsewhere.
    """
    settings: dict[str, Any] = {}
    if environ.get("DATABASE_URL"):
        settings["DATABASE_URL"] = environ["DATABASE_URL"]
    for name in SETTINGS:
        raw = environ.get(ENV_PREFIX + name)
        if raw is None:
            continue
        if name in _INT_MINIMUMS:
            try:
                settings[name] = int(raw.strip())
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}{name}={raw!r} is not a whole number; "
                    f"accepted: an integer of at least {_INT_MINIMUMS[name]}"
                ) from None
        else:
            settings[name] = raw
    return settings


def configure(app: Flask, test_config: Mapping[str, Any] | None) -> None:
    """Load defaults, the environment, then ``test_config`` into ``app.config``, and check them."""
    app.config.from_mapping(_defaults(app.instance_path))
    app.config.update(from_environ(os.environ))
    if test_config is not None:
        app.config.update(test_config)
    _check(app.config)


def admin_api_key_from_environ() -> str | None:
    """``EDGEPERSONA_ADMIN_API_KEY`` as set for a client (``edgepersona models``), or None."""
    return os.environ.get(ENV_PREFIX + "ADMIN_API_KEY") or None


def admin_key_matches(config: Mapping[str, Any], presented: str) -> bool:
    """Whether ``presented`` is the admin API key; always False when no key is configured."""
    expected = config.get("ADMIN_API_KEY_SHA256")
    if expected is None:
        return False
    return hmac.compare_digest(_sha256(presented), expected)


def _check(config: dict[str, Any]) -> None:
    for name, minimum in _INT_MINIMUMS.items():
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} is {value!r}; accepted: an integer of at least {minimum}")
    for name, words in _CHOICES.items():
        value = config[name]
        if isinstance(value, str) and value.strip().lower() in words:
            config[name] = value.strip().lower()
        else:
            raise ConfigError(f"{name} is {value!r}; accepted: {' or '.join(words)}")
    config["DATABASE_URL"] = _database_url(config["DATABASE_URL"])
    # Keep only a hash of the admin key, so a config dump or a debugger shows nothing usable.
    key = config["ADMIN_API_KEY"]
    config["ADMIN_API_KEY"] = None
    config["ADMIN_API_KEY_SHA256"] = None if key is None else _admin_key_hash(key)
    config["SIGNING_KEY_PATH"] = _signing_key_path(config["SIGNING_KEY_PATH"])
    if not callable(getattr(config["CLOCK"], "time", None)):
        raise ConfigError("CLOCK must have a time() method returning Unix seconds")


def _database_url(url: object) -> str:
    """Checked and normalised: bare PostgreSQL URLs use psycopg 3, the driver we install."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"DATABASE_URL is {url!r}; accepted: an SQLAlchemy database URL")
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url[len(bare) :]
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL is not a database URL; accepted: sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"DATABASE_URL names a {backend} database; accepted: sqlite or postgresql"
        )
    return url


def _signing_key_path(path: object) -> str | None:
    """Kept as a string; the file itself is read (and its mode checked) when a request signs."""
    if path is None:
        return None
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(
            f"SIGNING_KEY_PATH is {path!r}; accepted: the path of the registry's private key file"
        )
    return path


def _admin_key_hash(key: object) -> str:
    if not isinstance(key, str) or len(key) < MIN_ADMIN_KEY_LENGTH:
        raise ConfigError(
            f"ADMIN_API_KEY is too short; accepted: at least {MIN_ADMIN_KEY_LENGTH} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return _sha256(key)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
