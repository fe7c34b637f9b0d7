"""``edgepersona backend``: run the sync service, make its signing key, create its tables.

A thin shell: each command builds the app with ``create_app`` (settings from the
environment, see docs/backend.md; flags only override), calls one function, and prints a
backend error as one line instead of a traceback. Flask and gunicorn are imported only when
a backend command runs: every ``edgepersona`` command loads this module to build its help.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["register"]

_EXAMPLE = """example:
  export EDGEPERSONA_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/edgepersona
  edgepersona backend keygen --out /etc/edgepersona
  edgepersona backend init-db
  edgepersona backend serve --host 0.0.0.0 --port 8000 --workers 4

Settings come from EDGEPERSONA_* environment variables (docs/backend.md)."""
_SERVE_EXAMPLE = """example:
  edgepersona backend serve --port 8000 --workers 4   # gunicorn
  edgepersona backend serve --debug                   # Flask's reloading dev server

The tables are created or upgraded first, as init-db does."""
_KEYGEN_EXAMPLE = """example:
  edgepersona backend keygen --out /etc/edgepersona
  edgepersona backend keygen --private key.pem --public key.pub.json

An existing key file is never overwritten: devices pin the public key."""
_RETRAIN_EXAMPLE = """example:
  edgepersona backend retrain                   # last 4 weeks, the current model's personas
  edgepersona backend retrain --weeks 8 --k 6 --json

A candidate that passes the gates is registered at 0% rollout; promote it with
edgepersona models promote VERSION --percent 10. The report is stored either way."""
_INIT_DB_EXAMPLE = """example:
  edgepersona backend init-db
  edgepersona backend init-db --database-url sqlite:////var/lib/edgepersona/backend.db"""
PRIVATE_NAME = "registry-key.pem"
PUBLIC_NAME = "registry-key.pub.json"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "backend",
        help="run the sync service, make its signing key, create its tables",
        description="Operate the sync service (the Flask backend).",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = _add(actions, "serve", "create or upgrade the tables, then serve under gunicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (2)")
    serve.add_argument("--debug", action="store_true", help="Flask's dev server, not gunicorn")
    serve.set_defaults(run=_guarded(run_serve))
    keygen = _add(actions, "keygen", "make the registry's Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, help=f"directory for {PRIVATE_NAME}, {PUBLIC_NAME}")
    keygen.add_argument("--private", type=Path, help="private key file (instead of --out)")
    keygen.add_argument("--public", type=Path, help="public key file (instead of --out)")
    keygen.set_defaults(run=_guarded(run_keygen))
    init = _add(actions, "init-db", "create or upgrade the tables; safe to repeat")
    init.set_defaults(run=_guarded(run_init_db))
    again = _add(actions, "retrain", "retrain from the stored aggregates; register at 0%% rollout")
    again.add_argument("--weeks", type=int, default=4, help="ISO weeks of aggregates (4)")
    again.add_argument("--k", type=int, help="personas (default: the current model's)")
    again.add_argument("--json", action="store_true", help="print the report as JSON")
    again.add_argument("--signing-key", type=Path, help="override EDGEPERSONA_SIGNING_KEY_PATH")
    again.set_defaults(run=_guarded(run_retrain))
    for sub in (serve, init, again):
        sub.add_argument("--database-url", help="override EDGEPERSONA_DATABASE_URL")


def run_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from .app import create_app

    class GunicornApplication(BaseApplication):
        """Gunicorn with its settings from our flags; each worker builds its own app."""

        def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
            self._factory = factory
            self._options = options
            super().__init__()

        def load_config(self) -> None:
            for name, value in self._options.items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return self._factory()

    overrides = _overrides(args)
    _migrate(create_app(overrides))
    if args.debug:
        create_app(overrides).run(host=args.host, port=args.port, debug=True)
        return 0
    # No control socket: gunicorn 27 would otherwise write one under ~/.gunicorn, and nothing
    # here manages the server through it (signals and the process manager do).
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "control_socket_disable": True,
    }
    GunicornApplication(lambda: create_app(overrides), options).run()
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from .errors import BackendError
    from .keys import generate_keypair

    if args.out is not None and args.private is None and args.public is None:
        private, public = args.out / PRIVATE_NAME, args.out / PUBLIC_NAME
    elif args.out is None and args.private is not None and args.public is not None:
        private, public = args.private, args.public
    else:
        raise BackendError("give either --out DIR or both --private PATH and --public PATH")
    key_id = generate_keypair(private, public)
    print(f"key id       {key_id}")
    print(f"private key  {private}  (mode 0600: keep it on the server)")
    print(f"public key   {public}  (pin it in the app: EdgePersona.open(public_key=...))")
    print(f"setting      EDGEPERSONA_SIGNING_KEY_PATH={private.resolve()}")
    return 0


def run_init_db(args: argparse.Namespace) -> int:
    from .app import create_app
    from .migrations import LATEST

    before = _migrate(create_app(_overrides(args)))
    if before == LATEST:
        print(f"Database already at schema version {LATEST}.")
    else:
        print(f"Database upgraded from schema version {before} to {LATEST}.")
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    """The same retraining as ``POST /v1/admin/retrain``, on the configured database."""
    from . import retrain
    from .app import create_app
    from .db import engine
    from .errors import BackendError
    from .keys import load_private_key

    app = create_app(_overrides(args))
    if app.config["SIGNING_KEY_PATH"] is None:
        raise BackendError(
            "no signing key: run 'edgepersona backend keygen --out DIR' and set "
            "EDGEPERSONA_SIGNING_KEY_PATH to its .pem file"
        )
    key = load_private_key(Path(app.config["SIGNING_KEY_PATH"]))
    refused: retrain.RetrainError | None = None
    try:
        report = retrain.retrain(
            engine(app),
            weeks=args.weeks,
            k=args.k,
            floor=app.config["K_ANONYMITY_FLOOR"],
            private_key=key,
            now=app.config["CLOCK"].time(),
        )
    except retrain.RetrainError as exc:
        refused, report = exc, exc.report
    finally:
        engine(app).dispose()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    if refused is not None:
        print(
            f"edgepersona backend retrain: refused ({refused.code}): {refused.message}",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        print(
            f"registered version {report['published_version']} at 0% rollout; "
            f"promote it with: edgepersona models promote {report['published_version']} "
            "--percent 10"
        )
    return 0


def _migrate(app: Flask) -> int:
    """Run the migrations; the engine is closed after, so no connection crosses a fork."""
    from .db import engine, init_db

    try:
        with app.app_context():
            return init_db()
    finally:
        engine(app).dispose()


def _overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    overrides: dict[str, Any] = {}
    if args.database_url is not None:
        overrides["DATABASE_URL"] = args.database_url
    if getattr(args, "signing_key", None) is not None:
        overrides["SIGNING_KEY_PATH"] = str(args.signing_key)
    return overrides or None


def _add(actions: Any, name: str, summary: str) -> argparse.ArgumentParser:
    examples = {
        "serve": _SERVE_EXAMPLE,
        "keygen": _KEYGEN_EXAMPLE,
        "init-db": _INIT_DB_EXAMPLE,
        "retrain": _RETRAIN_EXAMPLE,
    }
    parser: argparse.ArgumentParser = actions.add_parser(
        name,
        help=summary,
        description=(summary[0].upper() + summary[1:] + ".").replace("%%", "%"),
        epilog=examples[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with backend errors printed as one line (they are not SDK errors)."""

    def guarded(args: argparse.Namespace) -> int:
        from .errors import BackendError

        try:
            return run(args)
        except BackendError as exc:
            print(f"edgepersona backend {args.action}: error: {exc}", file=sys.stderr)
            return 1

    guarded.__doc__ = run.__doc__
    return guarded
