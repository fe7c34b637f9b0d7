"""Benchmark of sync (issue 5): prints one JSON object.

- ``wire``: exact bytes each request leaves the device with (request line + headers, and body,
  counted apart) when real SDK devices live synthetic weeks and ``sync()`` with the real
  backend on 127.0.0.1 (SQLite, werkzeug's threaded server, a model v2 rolled out to all):
  the first sync (registration, upload, manifest, bundle download) and the steady-state week
  (one upload and one manifest poll answered 304), with where the upload body's bytes go;
- ``sync_time``: p50/p99 wall time of a steady-state ``sync()`` on loopback, and the part of
  it spent in the two HTTP exchanges;
- ``fleet``: for 1,000 and 10,000 devices at epsilon 1.0, each upload built by the SDK's own
  ``build_payload`` from a true feature vector of the synthetic population: the error of the
  fleet mean vector recovered from the noised uploads, in units of each feature's range
  (mean over features and max), beside the theory ``sqrt(2) * scale / sqrt(n)``; and the
  errors of the persona shares and per-persona mean vectors recovered from the
  randomized-response labels (``edgepersona.backend.ldp``), which retraining relies on.

Goals: every steady-state weekly upload body at most 1,024 bytes (the figure the goal applies
to; the whole request with its headers, and the week's total on the wire, are reported beside
it with their own flags); the fleet mean's error smaller at 10,000 devices than at 1,000.
Usage: python bench/sync.py [--quick] [--devices 20] [--weeks 26] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _sync_devices import run_devices, timing_figures, wire_figures
from _sync_fleet import (
    devices_for,
    fleet_figures,
    persona_mean_standard_error,
    replayed_vectors,
)
from _sync_loopback import loopback_backend, socket_check

from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.sdk import ManualClock
from edgepersona.sdk._uploads import encode
from edgepersona.sdk.privacy import (
    FEATURE_SHARE,
    PERSONA_SHARE,
    feature_noise_scale,
    keep_probability,
)

TRACE_START = dt.date(2026, 9, 7)  # a Monday
UPLOAD_GOAL_BYTES = 1024
ERROR_TARGET = 0.05  # a fleet statistic within 5% of the feature's range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (~30 s) to try it out")
    parser.add_argument("--devices", type=int, default=20, help="SDK devices syncing")
    parser.add_argument("--weeks", type=int, default=26, help="weeks each device lives")
    parser.add_argument("--sizes", default="1000,10000", help="fleet sizes for the error")
    parser.add_argument("--replayed", type=int, default=300, help="phones replayed for vectors")
    parser.add_argument("--repeats", type=int, default=5, help="noise draws per fleet size")
    parser.add_argument("--epsilon", type=float, default=1.0, help="weekly privacy budget")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.weeks, args.replayed, args.repeats = 5, 3, 40, 2
    sizes = [int(n) for n in args.sizes.split(",")]

    manifest = json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())
    labels = [p["id"] for p in manifest["personas"]]
    offers = sorted(json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())["offers"])

    with tempfile.TemporaryDirectory(prefix="ep-bench-sync-") as tmp:
        clock = ManualClock(0.0)
        with loopback_backend(Path(tmp), clock) as backend:
            run = run_devices(Path(tmp), backend, args.devices, args.weeks, TRACE_START, seed=51)
    base, base_personas = replayed_vectors(args.replayed, seed=52)
    fleet = fleet_figures(sizes, base, base_personas, labels, offers, args.epsilon, args.repeats)

    wire = wire_figures(run.samples)
    last = next(s.upload for s in reversed(run.samples) if s.upload is not None)
    wire["counting_checked_on_a_raw_socket"] = socket_check(encode(last["payload"]).encode())
    steady = wire["steady_state_week"]
    small, large = str(min(sizes)), str(max(sizes))
    scale = feature_noise_scale(args.epsilon)
    result: dict[str, Any] = {
        "benchmark": "sync",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "versions": {
            name: version(name)
            for name in ("httpx", "httpcore", "h11", "flask", "werkzeug", "sqlalchemy", "numpy")
        },
        "setup": {
            "devices": args.devices,
            "weeks_per_device": args.weeks,
            "trace_start": TRACE_START.isoformat(),
            "rows_fed": run.rows_fed,
            "rows_refused": run.rows_refused,
            "server": "create_app on SQLite, werkzeug threaded server on 127.0.0.1",
            "model": "v2 published and promoted to 100% before the first sync",
            "bytes": "request line + headers as h11 writes them, body; no TCP/IP or TLS",
        },
        "wire": wire,
        "sync_time": timing_figures(run),
        "fleet": {
            "epsilon": args.epsilon,
            "feature_noise_scale_range_units": round(scale, 4),
            "feature_share_of_epsilon": FEATURE_SHARE,
            "persona_keep_probability": round(
                keep_probability(PERSONA_SHARE * args.epsilon, len(labels)), 4
            ),
            "personas": len(labels),
            "replayed_devices": args.replayed,
            "repeats": args.repeats,
            "errors_in_feature_range_units": fleet,
            f"devices_for_fleet_mean_standard_error_{ERROR_TARGET}": devices_for(
                2**0.5 * scale, ERROR_TARGET
            ),
            f"devices_for_persona_mean_standard_error_{ERROR_TARGET}": devices_for(
                persona_mean_standard_error(1, len(labels), args.epsilon), ERROR_TARGET
            ),
        },
        "goals": {
            "weekly_upload_body_bytes_max": UPLOAD_GOAL_BYTES,
            "fleet_mean_error_shrinks_from_1k_to_10k": True,
        },
    }
    result["goals_met"] = {
        "weekly_upload_body": steady["upload_body_bytes"]["max"] <= UPLOAD_GOAL_BYTES,
        "fleet_mean_error_shrinks": fleet[large]["fleet_mean_mae"]["median"]
        < fleet[small]["fleet_mean_mae"]["median"],
    }
    result["also_checked"] = {
        "weekly_upload_request_with_headers_le_1024": steady["upload_request_bytes"]["max"]
        <= UPLOAD_GOAL_BYTES,
        "weekly_sent_total_le_1024": steady["sent_bytes_per_device_week"]["max"]
        <= UPLOAD_GOAL_BYTES,
        "persona_mean_error_shrinks": fleet[large]["persona_mean_mae"]["median"]
        < fleet[small]["persona_mean_mae"]["median"],
        "every_steady_week_is_one_upload_and_one_304": steady[
            "device_weeks_with_exactly_one_upload_and_one_304_poll"
        ]
        == steady["device_weeks"],
        "upload_body_equals_sdk_last_upload_bytes": steady[
            "upload_body_equals_sdk_last_upload_bytes"
        ],
        "byte_counting_equals_socket": wire["counting_checked_on_a_raw_socket"]["equal"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
