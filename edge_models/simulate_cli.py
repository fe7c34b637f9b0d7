"""``edgepersona simulate``: drive a fleet of simulated phones against a running backend.

For rehearsing a release (publish at a small percentage, watch the fleet adopt it) and for
load: each device runs the real SDK over the last ``--weeks`` weeks of a synthetic user and
syncs at the end of each week, exactly as a phone would.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edgepersona.sdk.cli import positive_int

__all__ = ["register"]

_EXAMPLE = """example:
  edgepersona simulate --backend http://127.0.0.1:8000 --devices 500 --weeks 2
  edgepersona simulate --backend https://sync.example.com --public-key registry-key.pub.json \\
      --devices 100 --weeks 1 --decline-sync 0.3 --json

The weeks simulated end with last week, so the backend accepts every upload. Without
--public-key the devices upload but refuse any model the backend offers."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "simulate",
        help="drive a fleet of simulated phones (the real SDK) against a running backend",
        description="Run simulated devices through the real SDK against a backend.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", required=True, metavar="URL", help="the backend's URL")
    parser.add_argument("--devices", type=positive_int, default=100, help="fleet size (100)")
    parser.add_argument("--weeks", type=positive_int, default=1, help="weeks per device (1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet (0)")
    parser.add_argument(
        "--decline-sync", type=float, default=0.2, help="share of users declining sync (0.2)"
    )
    parser.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help="the backend's public key file (edgepersona backend keygen), to accept models",
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="processes (2)")
    parser.add_argument("--data-dir", type=Path, help="keep the devices' databases here")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from edgepersona.sdk._progress import Progress

    from .fleet import FleetConfig, fleet_members, run_fleet

    public_key = None
    if args.public_key is not None:
        document = json.loads(args.public_key.read_text())
        public_key = base64.b64decode(document["public_key"])
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="edgepersona-simulate-"))
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=today.weekday(), weeks=args.weeks)
    members = fleet_members(args.devices, seed=args.seed, decline_sync=args.decline_sync)
    config = FleetConfig(root, start, args.backend, public_key)
    bar = Progress(f"{args.devices} devices, {args.weeks} weeks", args.devices)
    started = time.perf_counter()
    try:
        reports = run_fleet(
            members, config, 0, args.weeks, workers=args.workers, progress=bar.update
        )
    finally:
        bar.close()
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - started
    uploads = [q for r in reports for q in r.requests if q.path == "/v1/aggregates"]
    summary = {
        "backend": args.backend,
        "devices": len(reports),
        "syncing_devices": sum("sync" in r.consents for r in reports),
        "sync_results": dict(Counter(s for r in reports for s in r.sync_statuses)),
        "uploads_sent": len(uploads),
        "bytes_per_upload": round(sum(q.wire_bytes for q in uploads) / max(len(uploads), 1), 1),
        "model_versions": dict(Counter(str(r.model_version) for r in reports)),
        "personas": dict(Counter(str(r.persona) for r in reports)),
        "seconds": round(seconds, 1),
        "uploads_per_second": round(len(uploads) / seconds, 1) if seconds else None,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for key, value in summary.items():
            print(f"{key:<17} {value}")
    return 0 if summary["sync_results"].get("offline", 0) < len(reports) else 1
