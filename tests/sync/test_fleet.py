"""The closed loop, end to end, over real HTTP, on SQLite and on PostgreSQL.

A fleet of 300 synthetic users of known personas runs the real SDK for three weeks, some
declining sync; the backend retrains from their private uploads; the operator promotes the
candidate; at their next sync the devices pick it up (shadow, then swap) and their persona
assignments are compared with the truth. Every request the fleet sent is inspected: nothing
beyond the documented payload fields, no coordinate, app id or place id, and not one request
from a device without the sync purpose.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import adjusted_rand_score

from edgepersona.backend.payload import OUTCOME_KEYS, PAYLOAD_KEYS
from edgepersona.edge_models.fleet import (
    DeviceReport,
    FleetConfig,
    fleet_members,
    payloads,
    run_fleet,
)
from edgepersona.edge_models.population import trace_rows
from edgepersona.sdk import ManualClock, SyncSettings

from .conftest import ADMIN, Backend

DEVICES = 300
WEEKS = 3
START = date(2026, 3, 2)  # a Monday; T0 of the suite is this day
SETTINGS = SyncSettings(shadow_decisions=5)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'backend.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_closed_loop_over_http(backend: Backend, clock: ManualClock, tmp_path: Path) -> None:
    run = fleet_run(backend, clock, tmp_path)
    check_the_loop(run, backend)
    check_what_left_the_devices(run)


def fleet_run(backend: Backend, clock: ManualClock, tmp_path: Path) -> dict[str, Any]:
    """Three weeks of the fleet, a retrain, a promotion and the pick-up; what happened."""
    members = fleet_members(DEVICES, seed=5, decline_sync=0.2, decline_personalization=0.0)
    end_of_fleet = datetime(2026, 3, 23, 2, tzinfo=timezone.utc).timestamp()
    clock.set(end_of_fleet)  # the server's now: the fleet's weeks are just behind it
    backend.publish(_default_bundle_files())  # the operator registers the shipped model
    backend.promote(1, 100)
    config = FleetConfig(tmp_path / "fleet", START, backend.url, backend.public_key, SETTINGS)
    lived = run_fleet(members, config, 0, WEEKS)
    with backend.client() as client:
        # the week of "now" counts in the window: one more than the weeks uploaded
        retrained = client.post("/v1/admin/retrain", json={"weeks": WEEKS + 1}, headers=ADMIN)
    assert retrained.status_code == 201, retrained.text
    version = retrained.json()["published_version"]
    backend.promote(version, 100)
    clock.set(end_of_fleet + 7 * 86400)
    picked = run_fleet(members, config, WEEKS, 1, decisions_after=SETTINGS.shadow_decisions + 1)
    return {
        "members": members,
        "lived": lived,
        "picked": picked,
        "version": version,
        "report": retrained.json(),
    }


def check_the_loop(fleet_run: dict[str, Any], backend: Backend) -> None:
    lived: list[DeviceReport] = fleet_run["lived"]
    picked: list[DeviceReport] = fleet_run["picked"]
    syncing = [r for r in picked if "sync" in r.consents]
    assert 0.7 * DEVICES < len(syncing) < 0.9 * DEVICES
    # every consenting device delivered each week exactly once
    assert all(r.sync_statuses == ["synced"] * WEEKS for r in lived if "sync" in r.consents)
    # the pick-up week's upload, then (after the shadow decisions) nothing left to send
    assert all(r.sync_statuses == ["synced", "nothing_to_send"] for r in syncing)
    assert backend.count("aggregates") == (WEEKS + 1) * len(syncing)  # nothing lost or doubled
    # they all run the promoted model now; the others still run the built-in one
    assert {r.model_version for r in syncing} == {fleet_run["version"]}
    assert {r.model_version for r in picked if "sync" not in r.consents} == {1}
    ari = adjusted_rand_score([r.truth for r in picked], [r.persona for r in picked])
    print(f"\nARI of device personas vs truth after the retrain: {ari:.3f}")
    assert ari > 0.6
    assert fleet_run["report"]["devices"] == len(syncing)


def check_what_left_the_devices(fleet_run: dict[str, Any]) -> None:
    lived: list[DeviceReport] = fleet_run["lived"] + fleet_run["picked"]
    for report in lived:
        if "sync" not in report.consents:
            assert report.requests == [], report.device_id
    allowed_paths = re.compile(r"/v1/(devices|aggregates|models/current|models/\d+/bundle)")
    secrets = _device_secrets(fleet_run["members"])
    for report in lived:
        for request in report.requests:
            assert allowed_paths.fullmatch(request.path), request.path
            text = request.body.decode()
            for secret in secrets:
                assert secret not in text, (report.device_id, secret)
    for payload in payloads(lived):
        assert sorted(payload) == sorted(PAYLOAD_KEYS)
        assert all(sorted(o) == sorted(OUTCOME_KEYS) for o in payload["outcomes"])
        assert re.fullmatch(r"\d{4}-W\d{2}", payload["week"])
        assert len(json.dumps(payload)) < 1500


def _device_secrets(members: list) -> set[str]:
    """App ids, and coordinates as the traces hold them (to 4 decimals), of a few devices."""
    found: set[str] = set()
    for member in members[:20]:
        for row in trace_rows(member.device, start=START, weeks=1):
            if row["kind"] == "app":
                found.add(str(row["app"]))
            elif row["kind"] == "location":
                found.add(f"{row['lat']:.4f}")
                found.add(f"{row['lon']:.4f}")
    return found


def _default_bundle_files() -> dict[str, bytes]:
    folder = Path(__file__).parents[2] / "sdk" / "default_bundle"
    names = ("model.onnx", "playbook.json", "manifest.json")
    return {name: (folder / name).read_bytes() for name in names}
