"""``edgepersona simulate`` against a running backend: a subprocess drives real SDK devices."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from edgepersona.sdk import ManualClock

from .conftest import Backend

pytestmark = pytest.mark.slow


def test_simulate_drives_a_fleet_and_every_consenting_device_uploads(
    backend: Backend, clock: ManualClock
) -> None:
    clock.set(time.time())  # the fleet lives the weeks just before now, as against a live server
    result = subprocess.run(
        [
            *(sys.executable, "-m", "edgepersona.sdk.cli", "simulate", "--backend", backend.url),
            *("--devices", "8", "--weeks", "1", "--decline-sync", "0.25", "--seed", "1", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["devices"] == 8 and summary["syncing_devices"] == 6  # seed 1: two decline
    assert summary["uploads_sent"] == summary["syncing_devices"] == backend.count("aggregates")
    assert summary["sync_results"] == {
        "synced": summary["syncing_devices"],
        "no_consent": 8 - summary["syncing_devices"],
    }
    assert 0 < summary["bytes_per_upload"] < 1400
