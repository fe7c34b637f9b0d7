"""Benchmark of persona quality: prints one JSON object.

- ``on_device``: adjusted Rand index of the personas that the SDK's default bundle assigns to a
  held-out synthetic population (a seed the bundle never saw, replayed through the SDK exactly
  as on phones) against their true personas, plus plain accuracy;
- ``model_bytes`` of the default bundle's ONNX model;
- ``build``: seconds to rebuild the default bundle (``edgepersona models build-default``)
  into a temporary directory, and whether the bytes equal the shipped ones (reproducibility).

Goals: ARI at least 0.8; model at most 64 KB.
Usage: python bench/personas.py [--devices 200] [--weeks 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sklearn.metrics import adjusted_rand_score

from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR, TRACE_START, build_default
from edgepersona.edge_models.population import population, write_trace
from edgepersona.sdk import replay

HELD_OUT_SEED = 777_001


def on_device(devices: int, weeks: int) -> dict[str, object]:
    fleet = population(devices, seed=HELD_OUT_SEED)
    truth, assigned = [], []
    with tempfile.TemporaryDirectory(prefix="ep-bench-personas-") as tmp:
        for device in fleet:
            folder = Path(tmp) / device.device_id
            folder.mkdir()
            write_trace(device, folder / "trace.csv", start=TRACE_START, weeks=weeks)
            report = replay(folder / "trace.csv", folder / "device", tz=device.tz)
            truth.append(device.persona_id)
            assigned.append(report.persona["id"] if report.persona else "none")
    return {
        "devices": devices,
        "weeks": weeks,
        "adjusted_rand_index": round(adjusted_rand_score(truth, assigned), 4),
        "accuracy": round(sum(t == a for t, a in zip(truth, assigned, strict=True)) / devices, 4),
    }


def build() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ep-bench-build-") as tmp:
        started = time.perf_counter()
        report = build_default(Path(tmp))
        seconds = time.perf_counter() - started
        same = all(
            (Path(tmp) / name).read_bytes() == (DEFAULT_BUNDLE_DIR / name).read_bytes()
            for name in ("model.onnx", "playbook.json", "manifest.json")
        )
    return {
        "seconds": round(seconds, 1),
        "devices": report["devices"],
        "weeks": report["weeks"],
        "identical_to_shipped_bundle": same,
        "training_ari_vs_truth": report["adjusted_rand_index_vs_truth"],
        "held_out_agreement": report["held_out_agreement"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--weeks", type=int, default=3)
    args = parser.parse_args()
    quality = on_device(args.devices, args.weeks)
    model_bytes = (DEFAULT_BUNDLE_DIR / "model.onnx").stat().st_size
    result = {
        "benchmark": "personas",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "on_device": quality,
        "model_bytes": model_bytes,
        "build": build(),
        "goals": {"adjusted_rand_index_min": 0.8, "model_bytes_max": 64 * 1024},
    }
    result["goals_met"] = {
        "ari": quality["adjusted_rand_index"] >= 0.8,  # type: ignore[operator]
        "model_size": model_bytes <= 64 * 1024,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
