"""``edgepersona models``: build persona model bundles and manage the backend's registry.

``list``, ``publish``, ``promote`` and ``rollback`` call the backend's admin HTTP API. Each is
a function of an ``httpx.Client`` (tests pass one on an in-process transport); ``run_admin``
builds the client from the flags. Flask is never imported here: the backend's config module
is loaded only to read the admin key from the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from edgepersona.sdk._bundle import FILES
from edgepersona.sdk.errors import EdgePersonaError

__all__ = ["AdminRequestError", "list_models", "promote", "publish", "register", "rollback"]

_EXAMPLE = """example:
  edgepersona models build-default            # rebuild sdk/default_bundle reproducibly
  edgepersona models build-default --devices 120 --weeks 2 --out /tmp/bundle --json
  export EDGEPERSONA_ADMIN_API_KEY=...        # the backend's admin key
  edgepersona models publish sdk/default_bundle --url https://sync.example
  edgepersona models promote 3 --percent 30
  edgepersona models rollback 2
  edgepersona models list"""
DEFAULT_URL = "http://127.0.0.1:8000"


class AdminRequestError(EdgePersonaError):
    """The backend refused an admin request, or could not be reached; the message says why."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "models",
        help="build and inspect persona model bundles",
        description="Build and inspect persona model bundles.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build-default",
        help="rebuild the default bundle from a seeded synthetic population",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--devices", type=int, default=300, help="synthetic devices (300)")
    build.add_argument("--weeks", type=int, default=3, help="weeks of trace per device (3)")
    build.add_argument("--seed", type=int, help="population seed (the fixed default)")
    build.add_argument("--out", type=Path, help="bundle directory (the SDK's default bundle)")
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    build.set_defaults(run=run_build_default)
    listing = _admin_parser(actions, "list", "list the registry's published versions")
    publish_ = _admin_parser(actions, "publish", "publish a bundle, rolled out to no device yet")
    publish_.add_argument("bundle", type=Path, help="bundle directory or .zip")
    promote_ = _admin_parser(actions, "promote", "set the share of devices that get a version")
    promote_.add_argument("version", type=int, help="published version")
    promote_.add_argument("--percent", type=int, required=True, help="0 to 100")
    rollback_ = _admin_parser(actions, "rollback", "re-publish a version's files for everyone")
    rollback_.add_argument("version", type=int, help="published version to go back to")
    for sub in (listing, publish_, promote_, rollback_):
        sub.set_defaults(run=run_admin)


def _admin_parser(actions: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ", through the admin API.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"backend address ({DEFAULT_URL})")
    parser.add_argument("--api-key", help="admin API key (default: $EDGEPERSONA_ADMIN_API_KEY)")
    return parser


def run_admin(args: argparse.Namespace) -> int:
    with httpx.Client(base_url=args.url, headers=_auth(args.api_key), timeout=60) as client:
        if args.action == "list":
            return list_models(client)
        if args.action == "publish":
            return publish(client, args.bundle)
        if args.action == "promote":
            return promote(client, args.version, args.percent)
        return rollback(client, args.version)


def list_models(client: httpx.Client) -> int:
    """Print the published versions, newest first, as a table."""
    found = _request(client, "GET", "/v1/admin/models")["models"]
    if not found:
        print("no published versions")
        return 0
    rows = [("version", "kind", "rollout", "created (UTC)", "personas")]
    for model in found:
        kind = model["kind"]
        if model.get("source_version") is not None:
            kind += f" of {model['source_version']}"
        created = datetime.fromtimestamp(model["created_at"], timezone.utc)
        personas = ", ".join(model["personas"]) if model.get("personas") else "-"
        when = created.strftime("%Y-%m-%d %H:%M")
        rows.append((str(model["version"]), kind, f"{model['rollout_percent']}%", when, personas))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  "
            f"{row[3]:<{widths[3]}}  {row[4]}"
        )
    return 0


def publish(client: httpx.Client, bundle: Path) -> int:
    """Upload the bundle at ``bundle`` (a directory or a .zip); it starts at 0%."""
    files = {name: (name, data) for name, data in _bundle_files(bundle).items()}
    manifest = _request(client, "POST", "/v1/admin/models", files=files)
    personas = ", ".join(p["id"] for p in manifest.get("personas", []))
    print(f"published   version {manifest['version']} at 0% rollout")
    print(f"personas    {personas}")
    print(f"next        edgepersona models promote {manifest['version']} --percent 10")
    return 0


def promote(client: httpx.Client, version: int, percent: int) -> int:
    """Set the share of devices that get ``version``; lowering it halts a rollout."""
    path = f"/v1/admin/models/{version}/promote"
    manifest = _request(client, "POST", path, json={"percent": percent})
    print(f"version {manifest['version']} now goes to {manifest['rollout']['percent']}% of devices")
    return 0


def rollback(client: httpx.Client, version: int) -> int:
    """Publish ``version``'s files again as a new version at 100%."""
    manifest = _request(client, "POST", f"/v1/admin/models/{version}/rollback")
    print(
        f"version {manifest['version']} re-publishes version {version} "
        f"at {manifest['rollout']['percent']}% of devices"
    )
    return 0


def _auth(api_key: str | None) -> dict[str, str]:
    if api_key is None:
        from edgepersona.backend.config import admin_api_key_from_environ

        api_key = admin_api_key_from_environ()
    if api_key is None:
        raise AdminRequestError(
            "no admin API key; pass --api-key or set EDGEPERSONA_ADMIN_API_KEY (the backend's key)"
        )
    return {"Authorization": f"Bearer {api_key}"}


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise AdminRequestError(
            f"the backend is not reachable at {client.base_url} ({exc}); is it running? "
            "(start it with: edgepersona backend serve)"
        ) from None
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        message = f"{error['message']} (HTTP {response.status_code} {error['code']})"
    except (ValueError, KeyError, TypeError):
        message = f"the backend answered HTTP {response.status_code}: {response.text[:200]!r}"
    raise AdminRequestError(message)


def _bundle_files(bundle: Path) -> dict[str, bytes]:
    try:
        if bundle.is_dir():
            return {name: (bundle / name).read_bytes() for name in FILES}
        with zipfile.ZipFile(bundle) as archive:
            return {name: archive.read(name) for name in FILES}
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise AdminRequestError(
            f"{bundle} is not a bundle ({exc}); accepted: a directory or .zip holding "
            + ", ".join(FILES)
        ) from None


def run_build_default(args: argparse.Namespace) -> int:
    from edgepersona.sdk._progress import Progress

    from .bundle import DEFAULT_BUNDLE_DIR, DEFAULT_SEED, build_default

    bar = Progress("replaying synthetic devices", args.devices)
    try:
        report = build_default(
            args.out or DEFAULT_BUNDLE_DIR,
            devices=args.devices,
            weeks=args.weeks,
            seed=DEFAULT_SEED if args.seed is None else args.seed,
            progress=bar.update,
        )
    finally:
        bar.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"bundle      {report['bundle']}")
        for persona, size in zip(report["personas"], report["cluster_sizes"], strict=True):
            print(f"persona     {persona['id']:<20} {persona['name']:<28} {size} devices")
        print(
            f"ARI vs truth {report['adjusted_rand_index_vs_truth']}   held-out agreement "
            f"{report['held_out_agreement']}   model {report['model_bytes']} bytes"
        )
        print(f"gates       {report['gates']}   {report['seconds']} s")
    return 0 if all(report["gates"].values()) else 1
