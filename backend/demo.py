"""``edgepersona demo``: the whole loop on this machine, from nothing but the installed package.

1. A backend on a free loopback port (werkzeug's threaded server), on a SQLite file in a
   temporary directory, with a fresh signing key; the shipped model is published as v1.
2. A fleet of synthetic users of known personas (some decline sync) lives ``weeks`` weeks on
   the real SDK, each syncing at the end of every week (``edge_models.fleet``).
3. The backend retrains from the private uploads; the operator promotes the candidate.
4. The fleet lives one more week: devices pick the new bundle up (shadow, then swap).
5. A report: persona mix, agreement with the truth, offer acceptance, bytes uploaded per
   device, epsilon spent, model versions; printed, and written as HTML with charts.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from sklearn.metrics import adjusted_rand_score
from werkzeug.serving import make_server

from edgepersona.edge_models.fleet import DeviceReport, FleetConfig, fleet_members, run_fleet
from edgepersona.sdk import SyncSettings

from . import charts
from .app import create_app
from .db import engine, init_db
from .keys import generate_keypair, load_public_key

__all__ = ["DemoResult", "run_demo"]

ADMIN_KEY_BYTES = 24
SHADOW_DECISIONS = 5


@dataclass(frozen=True)
class DemoResult:
    summary: dict[str, Any]
    html_path: Path
    data_dir: Path


def run_demo(
    data_dir: Path,
    *,
    devices: int = 200,
    weeks: int = 4,
    seed: int = 0,
    decline_sync: float = 0.2,
    stage: Callable[[str, int], Callable[[int], None]] | None = None,
) -> DemoResult:
    """Run the loop in ``data_dir`` (which it fills); ``stage(label, total)`` gives progress."""
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    progress = stage or (lambda label, total: lambda done: None)
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=today.weekday(), weeks=weeks + 1)  # weeks behind today
    admin_key = secrets.token_urlsafe(ADMIN_KEY_BYTES)
    private, public = data_dir / "signing-key.pem", data_dir / "signing-key.pub.json"
    generate_keypair(private, public)
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{data_dir / 'backend.db'}",
            "ADMIN_API_KEY": admin_key,
            "SIGNING_KEY_PATH": str(private),
            "RATE_LIMIT_UPLOADS_PER_HOUR": 1000,
            "K_ANONYMITY_FLOOR": min(50, max(2, devices // 4)),
        }
    )
    with app.app_context():
        init_db()
    members = fleet_members(devices, seed=seed, decline_sync=decline_sync)
    with _serving(app) as url, httpx.Client(base_url=url, timeout=120) as admin:
        headers = {"Authorization": f"Bearer {admin_key}"}
        _publish_default(admin, headers)
        config = FleetConfig(
            data_dir / "devices",
            start,
            url,
            load_public_key(public),
            SyncSettings(shadow_decisions=SHADOW_DECISIONS),
        )
        lived = run_fleet(
            members, config, 0, weeks, progress=progress(f"devices, {weeks} weeks", devices)
        )
        done = progress("retrain", 1)
        retrained = admin.post("/v1/admin/retrain", json={"weeks": weeks + 2}, headers=headers)
        done(1)
        report = retrained.json()
        version = report.get("published_version")
        if retrained.status_code == 201 and version is not None:
            admin.post(
                f"/v1/admin/models/{version}/promote", json={"percent": 100}, headers=headers
            ).raise_for_status()
        picked = run_fleet(
            members,
            config,
            weeks,
            1,
            decisions_after=SHADOW_DECISIONS + 1,
            progress=progress("devices pick the model up", devices),
        )
    engine(app).dispose()
    summary = summarize(lived, picked, report, weeks, time.perf_counter() - started)
    html_path = data_dir / "report.html"
    html_path.write_text(render_html(summary))
    (data_dir / "report.json").write_text(json.dumps(summary, indent=1))
    return DemoResult(summary, html_path, data_dir)


def summarize(
    lived: Sequence[DeviceReport],
    picked: Sequence[DeviceReport],
    retrain_report: dict[str, Any],
    weeks: int,
    seconds: float,
) -> dict[str, Any]:
    """The demo's figures, from what the devices reported (pure)."""
    syncing = [r for r in lived if "sync" in r.consents]
    silent = [r for r in lived if "sync" not in r.consents]
    uploads = [q for r in syncing for q in r.requests if q.path == "/v1/aggregates"]
    truth = [r.truth for r in picked]
    return {
        "devices": len(lived),
        "weeks": weeks,
        "syncing_devices": len(syncing),
        "synced_every_week": sum(r.sync_statuses == ["synced"] * weeks for r in syncing),
        "non_consenting_requests": sum(len(r.requests) for r in silent),
        "persona_mix_truth": dict(Counter(truth)),
        "persona_mix_devices": dict(Counter(r.persona for r in picked)),
        "agreement_with_truth": {
            "before": round(adjusted_rand_score(truth, [r.persona for r in lived]), 3),
            "after": round(adjusted_rand_score(truth, [r.persona for r in picked]), 3),
        },
        "offer_acceptance": {
            "before": _rate(lived),
            "after": _rate(picked),
        },
        "upload_body_bytes_per_device_week": round(
            sum(len(q.body) for q in uploads) / max(len(uploads), 1), 1
        ),
        "upload_request_bytes_per_device_week": round(
            sum(q.wire_bytes for q in uploads) / max(len(uploads), 1), 1
        ),
        "epsilon_spent_per_device": round(
            sum(r.epsilon_spent for r in syncing) / max(len(syncing), 1), 3
        ),
        "model_versions": dict(Counter(str(r.model_version) for r in picked)),
        "retrain": {
            "published_version": retrain_report.get("published_version"),
            "gates": retrain_report.get("gates"),
            "error": retrain_report.get("error"),
        },
        "seconds": round(seconds, 1),
    }


def render_html(summary: dict[str, Any]) -> str:
    """A self-contained page (inline SVG, no network) of the summary."""
    personas = sorted(set(summary["persona_mix_truth"]) | set(summary["persona_mix_devices"]))
    mix = "".join(
        charts.columns(
            personas,
            [summary[key].get(p, 0) for p in personas],
            description=title,
            titles=[f"{p}: {summary[key].get(p, 0)} devices" for p in personas],
            colour=colour,
        )
        for key, title, colour in (
            ("persona_mix_truth", "true personas of the simulated users", charts.PALETTE[0]),
            ("persona_mix_devices", "personas the devices gave themselves", charts.PALETTE[1]),
        )
    )
    labels = ["ARI before", "ARI after", "accepted before", "accepted after"]
    values = [
        summary["agreement_with_truth"]["before"],
        summary["agreement_with_truth"]["after"],
        summary["offer_acceptance"]["before"],
        summary["offer_acceptance"]["after"],
    ]
    before_after = charts.columns(
        labels,
        values,
        description="agreement with the truth and offer acceptance, before and after",
        titles=[f"{label}: {value}" for label, value in zip(labels, values, strict=True)],
        colour=charts.PALETTE[4],
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    return (
        "<!doctype html><meta charset=utf-8><title>EdgePersona demo</title>"
        "<style>body{font:15px system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "th{text-align:left;padding:4px 12px 4px 0}td{font-family:monospace}</style>"
        "<h1>EdgePersona: the whole loop</h1>"
        f"<h2>Persona mix: truth and devices</h2>{mix}"
        f"<h2>Before and after retraining</h2>{before_after}"
        f"<h2>All figures</h2><table>{rows}</table>"
    )


def _rate(reports: Sequence[DeviceReport]) -> float:
    shown = sum(r.shown for r in reports)
    return round(sum(r.accepted for r in reports) / shown, 3) if shown else 0.0


def _publish_default(admin: httpx.Client, headers: dict[str, str]) -> None:
    folder = resources.files("edgepersona.sdk") / "default_bundle"
    files = {
        name: (name, (folder / name).read_bytes())
        for name in ("model.onnx", "playbook.json", "manifest.json")
    }
    admin.post("/v1/admin/models", files=files, headers=headers).raise_for_status()
    admin.post(
        "/v1/admin/models/1/promote", json={"percent": 100}, headers=headers
    ).raise_for_status()


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
