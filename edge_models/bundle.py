"""Building model bundles, and the reproducible default bundle that ships in the SDK.

Feature vectors come from the SDK itself: each synthetic device's trace is replayed through
``edgepersona.sdk.replay`` (the same code as on a phone), so training sees exactly what a
device computes. The default bundle is rebuilt by ``edgepersona models build-default`` with
a fixed seed and fixed timestamps, so the same code gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgepersona.sdk import replay
from edgepersona.sdk.features import FEATURE_NAMES, SCHEMA_VERSION

from .personas import PERSONAS
from .population import Device, population, write_trace
from .training import Persona, Trained, agreement_with_truth, export_onnx, train

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "sdk" / "default_bundle"
DEFAULT_SEED = 20260301
TRACE_START = date(2026, 2, 2)  # a Monday; fixed so the default bundle is reproducible
FIXED_CREATED_AT = "2026-03-01T00:00:00+00:00"
FIXED_EXPIRES_AT = "2036-03-01T00:00:00+00:00"
MIN_SDK_VERSION = "0.1.0"


def default_playbook() -> dict[str, Any]:
    text = resources.files("edgepersona.edge_models").joinpath("playbook_default.json")
    return dict(json.loads(text.read_text()))


def device_vector(device: Device, weeks: int, start: date = TRACE_START) -> list[float]:
    """Replay one device's synthetic trace through the SDK; its feature vector at the end."""
    with tempfile.TemporaryDirectory(prefix="ep-train-") as tmp:
        trace = Path(tmp) / "trace.csv"
        write_trace(device, trace, start=start, weeks=weeks)
        report = replay(trace, Path(tmp) / "device", tz=device.tz)
        return [report.features[name] for name in FEATURE_NAMES]


def fleet_vectors(
    devices: Sequence[Device],
    weeks: int,
    *,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Feature vectors of ``devices`` (in order), computed in ``workers`` processes."""
    rows: list[list[float]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, vector in enumerate(
            pool.map(device_vector, devices, [weeks] * len(devices), chunksize=4), start=1
        ):
            rows.append(vector)
            if progress is not None:
                progress(done)
    return np.asarray(rows, dtype=np.float64)


def prototypes(vectors: np.ndarray, truth: Sequence[str]) -> tuple[Persona, ...]:
    """The archetypes' mean vectors, as the "previous model" of the very first training:
    clusters inherit the archetype ids and names that the playbook is written for."""
    result = []
    for archetype in PERSONAS:
        members = vectors[[t == archetype.id for t in truth]]
        if len(members):
            centroid = tuple(float(v) for v in members.mean(axis=0))
            result.append(Persona(archetype.id, archetype.name, (), centroid))
    return tuple(result)


def write_bundle(
    trained: Trained,
    out_dir: Path,
    *,
    version: int,
    playbook: dict[str, Any],
    created_at: str,
    expires_at: str,
    rollout_percent: int = 100,
    spreads: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Write model.onnx, playbook.json and manifest.json (unsigned); return the manifest.

    ``spreads`` (persona id: per-feature standard deviation of its members) are kept in the
    manifest for retraining from private uploads, which cannot estimate them
    (``private_training``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    model = export_onnx(trained, version=version)
    playbook_bytes = (json.dumps(playbook, indent=1, sort_keys=True) + "\n").encode()
    manifest = {
        "format": "edgepersona-bundle/1",
        "version": version,
        "schema_version": SCHEMA_VERSION,
        "personas": [
            {
                "id": p.id,
                "name": p.name,
                "traits": list(p.traits),
                "centroid": [round(v, 6) for v in p.centroid],
                **(
                    {"spread": [round(float(v), 6) for v in spreads[p.id]]}
                    if spreads and p.id in spreads
                    else {}
                ),
            }
            for p in trained.personas
        ],
        "sha256": {
            "model.onnx": hashlib.sha256(model).hexdigest(),
            "playbook.json": hashlib.sha256(playbook_bytes).hexdigest(),
        },
        "created_at": created_at,
        "expires_at": expires_at,
        "min_sdk_version": MIN_SDK_VERSION,
        "rollout": {"percent": rollout_percent},
        "signature": None,
    }
    (out_dir / "model.onnx").write_bytes(model)
    (out_dir / "playbook.json").write_bytes(playbook_bytes)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def build_default(
    out_dir: Path = DEFAULT_BUNDLE_DIR,
    *,
    devices: int = 300,
    weeks: int = 3,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Rebuild the default bundle from a synthetic population; returns a build report."""
    started = time.perf_counter()
    fleet = population(devices, seed=seed)
    truth = [d.persona_id for d in fleet]
    vectors = fleet_vectors(fleet, weeks, progress=progress)
    trained = train(vectors, k=len(PERSONAS), previous=prototypes(vectors, truth), seed=seed)
    spreads = {
        p.id: vectors[trained.labels == i].std(axis=0) for i, p in enumerate(trained.personas)
    }
    manifest = write_bundle(
        trained,
        out_dir,
        version=1,
        playbook=default_playbook(),
        created_at=FIXED_CREATED_AT,
        expires_at=FIXED_EXPIRES_AT,
        spreads=spreads,
    )
    model_bytes = (out_dir / "model.onnx").stat().st_size
    return {
        "bundle": str(out_dir),
        "devices": devices,
        "weeks": weeks,
        "personas": [
            {"id": p.id, "name": p.name, "traits": list(p.traits)} for p in trained.personas
        ],
        "cluster_sizes": list(trained.cluster_sizes),
        "adjusted_rand_index_vs_truth": round(agreement_with_truth(trained.labels, truth), 4),
        "held_out_agreement": round(trained.agreement, 4),
        "model_bytes": model_bytes,
        "gates": trained.gates(model_bytes),
        "sha256": manifest["sha256"],
        "seconds": round(time.perf_counter() - started, 1),
    }
