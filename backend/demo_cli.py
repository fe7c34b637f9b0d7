"""``edgepersona demo``: run the whole loop here and report (heavy imports only when it runs)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgepersona.sdk.cli import positive_int

__all__ = ["register"]

_EXAMPLE = """example:
  edgepersona demo                          # 200 devices, 4 weeks, in a temporary directory
  edgepersona demo --devices 50 --weeks 2 --seed 3 --keep ./demo-run

It starts the backend on a free loopback port over SQLite, runs a fleet of simulated phones
through the real SDK (some decline sync), syncs, retrains, promotes, lets the devices adopt
the new signed model, then prints the report and writes report.html (charts) and report.json."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole loop (devices, privacy, sync, retrain, signed push) and report",
        description="Run the whole EdgePersona loop on this machine and report on it.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=positive_int, default=200, help="fleet size (200)")
    parser.add_argument("--weeks", type=positive_int, default=4, help="weeks before retraining (4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet (0)")
    parser.add_argument(
        "--decline-sync", type=float, default=0.2, help="share of users declining sync (0.2)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the data (databases, devices, report) in DIR instead of deleting it",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from edgepersona.sdk._progress import Progress

    from .demo import run_demo

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="edgepersona-demo-"))
    bars: list[Progress] = []

    def stage(label: str, total: int) -> Any:
        if bars:
            bars[-1].close()
        bars.append(Progress(label, total))
        return bars[-1].update

    try:
        result = run_demo(
            data_dir,
            devices=args.devices,
            weeks=args.weeks,
            seed=args.seed,
            decline_sync=args.decline_sync,
            stage=stage,
        )
        if bars:
            bars[-1].close()
        report_dir = data_dir if args.keep else Path(tempfile.mkdtemp(prefix="edgepersona-report-"))
        if not args.keep:
            shutil.copy(result.html_path, report_dir / "report.html")
            shutil.copy(data_dir / "report.json", report_dir / "report.json")
        summary = result.summary
        if args.json:
            print(json.dumps({**summary, "report": str(report_dir / "report.html")}, indent=1))
        else:
            _print(summary, report_dir / "report.html")
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def _print(summary: dict[str, Any], html: Path) -> None:
    lines = [
        f"fleet        {summary['devices']} devices, {summary['weeks']} weeks, "
        f"{summary['syncing_devices']} syncing ({summary['synced_every_week']} every week), "
        f"{summary['non_consenting_requests']} requests from the others",
        "personas     "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["persona_mix_devices"].items())),
        f"agreement    with the truth (ARI) {summary['agreement_with_truth']['before']} before "
        f"retraining, {summary['agreement_with_truth']['after']} after",
        f"offers       accepted {summary['offer_acceptance']['before']:.1%} before, "
        f"{summary['offer_acceptance']['after']:.1%} after",
        f"privacy      {summary['upload_body_bytes_per_device_week']:.0f} bytes of payload "
        f"({summary['upload_request_bytes_per_device_week']:.0f} with HTTP headers) per device "
        f"and week; epsilon {summary['epsilon_spent_per_device']} spent per device",
        "models       "
        + ", ".join(f"v{k}: {v} devices" for k, v in sorted(summary["model_versions"].items())),
        f"retrain      published v{summary['retrain']['published_version']}"
        if summary["retrain"]["published_version"]
        else f"retrain      refused: {summary['retrain']['error']}",
        f"time         {summary['seconds']} s",
        f"report       {html}",
    ]
    print("\n".join(lines), file=sys.stdout)
