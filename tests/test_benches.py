"""The reliability benchmarks (bench/load.py, bench/soak.py): smoke runs at tiny sizes, and
the load benchmark's light devices against a scripted server.

The smoke runs start real servers and real SDKs, so they are slow-marked; they check what
each benchmark promises to count (every upload reconciled with the database, the throwaway
PostgreSQL database dropped, retention bounding raw rows), never a timing. The light-device
tests check that they retry as the SDK's ``Syncer`` does, which a run on a healthy server
may never exercise.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from edgepersona.sdk.features import FEATURES

BENCH = Path(__file__).resolve().parents[1] / "bench"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _load_databases() -> set[str] | None:
    """Names of ep_load_ databases on the local PostgreSQL, or None if it does not answer."""
    engine = create_engine(POSTGRES)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'ep_load_%'")
            )
            return {name for (name,) in rows}
    except OperationalError:
        return None
    finally:
        engine.dispose()


@pytest.mark.slow
def test_load_reconciles_every_upload_and_drops_its_database() -> None:
    before = _load_databases()
    options = ["--devices", "40", "--sdk-devices", "2", "--weeks", "2", "--seconds", "60"]
    # A short timeout makes light devices resend uploads the server may have stored when the
    # machine is busy; the counts below hold whether or not that happened.
    options += ["--timeout", "0.5", "--drain", "120"]
    result = _run("load.py", *options, *(["--no-postgres"] if before is None else []))
    for kind, run in result["runs"].items():
        reconciliation = run["reconciliation"]
        assert reconciliation["lost"] == 0 and reconciliation["doubled"] == 0, kind
        assert reconciliation["rows"] == reconciliation["acknowledged_upload_ids"] == 80, kind
        assert reconciliation["every_upload_holds_every_offer"], kind
        assert run["sdk_devices"]["sync_statuses"] == {"synced": 4}, kind
        assert run["uploads"]["accepted"] + run["uploads"]["duplicate"] >= 80, kind
    if before is not None:
        assert "postgresql" in result["runs"]
        assert _load_databases() == before  # its throwaway database is gone


@pytest.mark.slow
def test_soak_keeps_raw_rows_bounded_by_retention() -> None:
    result = _run("soak.py", "--days", "112")
    months = result["months"]
    assert [m["day"] for m in months] == [28, 56, 84, 112]
    assert result["sync_statuses"] == {"synced": 16}
    assert result["upload_answers"] == {"201": 16}
    # Raw fixes are kept 35 days: month 4 holds about as many as month 2, not twice as many.
    assert months[3]["rows"]["locations"] < 1.5 * months[1]["rows"]["locations"]
    assert months[3]["rows"]["rollup_daily"] > months[1]["rows"]["rollup_daily"]
    assert all(m["rss_mib"] > 0 and m["db_bytes"] > 0 for m in months)


def _light_device_exchanges(
    answers: list[httpx.Response],
) -> tuple[list[tuple[str, str, str | None]], Any, Any]:
    """One light device of bench/load.py syncs a week against a scripted server: ``answers``
    to its uploads in turn, 201 to registrations, 304 to polls. What it sent (method, path,
    upload_id), the device and the fleet's traffic."""
    sys.path.insert(0, str(BENCH))
    try:
        from _load_fleet import Fleet, LightDevice, Traffic
    finally:
        sys.path.remove(str(BENCH))
    sent: list[tuple[str, str, str | None]] = []
    uploads = iter(answers)

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        sent.append((request.method, request.url.path, body.get("upload_id")))
        if request.url.path == "/v1/devices":
            return httpx.Response(201, json={"device_id": "d" * 32, "token": f"t{len(sent)}"})
        if request.url.path == "/v1/aggregates":
            return next(uploads)
        return httpx.Response(304)

    async def sync() -> tuple[Any, Any]:
        transport = httpx.MockTransport(server)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            traffic = Traffic()
            fleet = Fleet(
                client, asyncio.Semaphore(1), traffic, ["a", "b"], ["o1", "o2", "o3"], 1e-4
            )
            device = LightDevice(np.zeros(len(FEATURES)), "a", seed=1)
            await device.sync_week(fleet, "2026-W40", give_up_at=time.monotonic() + 60)
            return device, traffic

    device, traffic = asyncio.run(sync())
    return sent, device, traffic


def test_light_devices_resend_the_same_upload_after_5xx_and_429() -> None:
    sent, device, traffic = _light_device_exchanges(
        [
            httpx.Response(503),
            httpx.Response(429, headers={"Retry-After": "120"}),
            httpx.Response(201),
        ]
    )
    uploads = [upload_id for method, path, upload_id in sent if path == "/v1/aggregates"]
    assert len(uploads) == 3 and len(set(uploads)) == 1  # one upload, resent as it was
    assert [path for _, path, _ in sent].count("/v1/devices") == 1
    assert sent[-1][:2] == ("GET", "/v1/models/current")
    assert device.outcome == "synced" and traffic.rounds_failed == 2
    assert traffic.acknowledged == set(uploads)


def test_light_devices_drop_an_upload_refused_401_and_register_again() -> None:
    sent, device, traffic = _light_device_exchanges([httpx.Response(401)])
    assert [path for _, path, _ in sent] == [
        "/v1/devices",
        "/v1/aggregates",
        "/v1/devices",  # the registration was forgotten, as Syncer forgets it
        "/v1/models/current",
    ]
    assert device.outcome == "synced" and not traffic.acknowledged
