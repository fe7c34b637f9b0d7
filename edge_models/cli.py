"""``edgepersona models``: build and inspect persona model bundles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_EXAMPLE = """example:
  edgepersona models build-default            # rebuild sdk/default_bundle reproducibly
  edgepersona models build-default --devices 120 --weeks 2 --out /tmp/bundle --json"""


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
