"""``edgepersona replay``: feed a recorded trace through the SDK and print what it knows."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._progress import Progress
from ._replay import replay

_EXAMPLE = """example:
  edgepersona replay docs/traces/sample_day.csv --tz Europe/Paris
  edgepersona replay phone.jsonl.gz --data-dir ./device --json > report.json

The trace is CSV with a header or JSON Lines, one signal per row (docs/trace-format.md).
Without --data-dir the replay uses a temporary database that is deleted afterwards."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay a recorded trace through the SDK and print what the device knows",
        description="Replay a recorded trace through the SDK's public API, as live signals.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trace", type=Path, help="trace file (.csv, .jsonl, optionally .gz)")
    parser.add_argument("--tz", help="IANA zone for rows without a tz (default: this machine's)")
    parser.add_argument("--data-dir", type=Path, help="keep the device database in this directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    size = args.trace.stat().st_size if args.trace.is_file() else None
    bar = Progress(f"replaying {args.trace.name}", size)
    try:
        if args.data_dir is not None:
            report = replay(args.trace, args.data_dir, tz=args.tz, progress=bar.update)
        else:
            with tempfile.TemporaryDirectory(prefix="edgepersona-replay-") as tmp:
                report = replay(args.trace, Path(tmp), tz=args.tz, progress=bar.update)
                report.data_dir = None
    finally:
        bar.close()
    result = report.as_dict()
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_summary(result)
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    counts = ", ".join(f"{kind} {n:,}" for kind, n in result["counts"].items())
    print(f"trace        {result['trace']}")
    print(f"ingested     {result['ingested']:,} rows ({counts})")
    print(f"duplicates   {result['duplicates']:,} repeated rows skipped")
    print(f"rejected     {result['rejected_count']:,} rows")
    for item in result["rejected"][:10]:
        print(f"  line {item['line']}: {item['reason']}")
    if result["rejected_count"] > 10:
        print(f"  ... {result['rejected_count'] - 10:,} more (use --json for up to 1000)")
    span = result["span"]
    print(f"span         {span['start']} .. {span['end']}")
    print(f"days         {len(result['daily_counts'])} with stored signals")
    rate = f" ({result['rows_per_s']:,} rows/s)" if result["rows_per_s"] else ""
    print(f"time         {result['seconds']:.2f} s{rate}")
    if result["consent_granted_by_replay"]:
        granted = ", ".join(result["consent_granted_by_replay"])
        print(f"consent      granted for this replay: {granted}")
    for place in result["places"]:
        hours = place["dwell_s"] / 3600
        print(
            f"place        {place['label']:<6} #{place['id']} at {place['lat']:.4f},"
            f"{place['lon']:.4f}: {place['visit_count']} visits, {hours:.1f} h"
        )
    persona = result["persona"]
    if persona:
        mix = ", ".join(
            f"{pid} {p:.0%}"
            for pid, p in sorted(persona["probabilities"].items(), key=lambda kv: -kv[1])
        )
        print(f"persona      {persona['name']} (model v{result['model_version']}): {mix}")
    moment = result["moment"]
    if moment:
        print(f"moment       {moment['local_time']}: {moment['time_of_day']}, at {moment['place']}")
    standout = sorted(result["features"].items(), key=lambda kv: -abs(kv[1]))[:6]
    if standout:
        print("features     " + ", ".join(f"{name} {value:.2f}" for name, value in standout))
    if result["data_dir"]:
        print(f"database     {result['data_dir']}")
