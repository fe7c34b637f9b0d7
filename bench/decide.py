"""Benchmark of on-device decisions: prints one JSON object.

- ``decide``: p50/p99 of ``EdgePersona.decide("home", offers)`` with 90 days of history
  stored (a synthetic commuter replayed through the SDK), the clock moving between calls;
- ``model_call``: one-row persona inference alone, onnxruntime (1 thread, reused session)
  and the pure-numpy evaluator of the same graph;
- the reference, measured in the same run: scikit-learn's ``predict_proba`` on the fitted
  classifier that the ONNX model was exported from.

Goals: decide p99 under 500 µs; our model call at least 8x faster than scikit-learn's.
Usage: python bench/decide.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import onnxruntime
import sklearn

from edgepersona.edge_models.bundle import fleet_vectors
from edgepersona.edge_models.population import population, write_trace
from edgepersona.edge_models.training import export_onnx, train
from edgepersona.sdk import EdgePersona, ManualClock, replay
from edgepersona.sdk._inference import PersonaModel

OFFERS = [
    "coffee_to_go",
    "lunch_deal",
    "streaming_trial",
    "game_bundle",
    "transit_pass",
    "weekend_trip",
    "flash_sale",
    "food_delivery",
]


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    samples_ns.sort()
    n = len(samples_ns)
    return {
        "calls": n,
        "p50_us": samples_ns[n // 2] / 1000,
        "p99_us": samples_ns[int(n * 0.99)] / 1000,
        "max_us": samples_ns[-1] / 1000,
    }


def time_calls(fn: Callable[[], object], calls: int) -> dict[str, float]:
    for _ in range(min(2000, calls)):
        fn()
    timer = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = timer()
        fn()
        samples.append(timer() - start)
    return percentiles(samples)


def decide_figures(tmp: Path, calls: int) -> dict[str, object]:
    device = next(d for d in population(40, seed=11) if d.persona_id == "commuter")
    trace = tmp / "history.csv"
    rows = write_trace(device, trace, start=date(2026, 1, 5), weeks=13)
    report = replay(trace, tmp / "device", tz=device.tz)
    end = max(report.end or 0.0, 0.0)
    clock = ManualClock(end)
    with EdgePersona.open(tmp / "device", "bench", clock=clock, tz=device.tz, seed=1) as sdk:
        stored = sdk.export()
        history_days = len({r["day"] for r in stored["rollups"]["daily"]})
        sdk.decide("home", OFFERS)  # loads the bundle, warms caches

        def one() -> object:
            clock.advance(1.0)
            return sdk.decide("home", OFFERS)

        figures = time_calls(one, calls)
        persona = sdk.persona()
    return {
        **figures,
        "trace_rows": rows,
        "history_days": history_days,
        "persona": persona.id if persona else None,
    }


def model_figures(calls: int) -> dict[str, object]:
    fleet = population(150, seed=5)
    vectors = fleet_vectors(fleet, 2)
    trained = train(vectors, k=5, seed=5)
    onnx_bytes = export_onnx(trained, version=1)
    row = vectors[:1].astype(np.float32)
    ort_model = PersonaModel.from_bytes(onnx_bytes, engine="onnxruntime")
    numpy_model = PersonaModel.from_bytes(onnx_bytes, engine="numpy")
    one_row = row[0]
    ours = time_calls(lambda: ort_model.predict_proba(one_row), calls)
    numpy_figures = time_calls(lambda: numpy_model.predict_proba(one_row), calls)
    sklearn_figures = time_calls(lambda: trained.pipeline.predict_proba(row), calls)
    return {
        "onnxruntime": ours,
        "numpy_evaluator": numpy_figures,
        "sklearn_predict_proba": sklearn_figures,
        "speedup_vs_sklearn_p50": round(sklearn_figures["p50_us"] / ours["p50_us"], 1),
        "model_bytes": len(onnx_bytes),
        "max_abs_diff_onnxruntime_vs_numpy": float(
            np.max(
                np.abs(
                    ort_model.predict_proba(vectors.astype(np.float32))
                    - numpy_model.predict_proba(vectors.astype(np.float32))
                )
            )
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ep-bench-decide-") as tmp:
        decide = decide_figures(Path(tmp), args.calls)
    model = model_figures(args.calls)
    result = {
        "benchmark": "decide",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "decide": decide,
        "model_call": model,
        "goals": {"decide_p99_us_max": 500, "model_speedup_vs_sklearn_min": 8},
    }
    result["goals_met"] = {
        "decide_p99": decide["p99_us"] < 500,  # type: ignore[operator]
        "model_speedup": model["speedup_vs_sklearn_p50"] >= 8,  # type: ignore[operator]
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
