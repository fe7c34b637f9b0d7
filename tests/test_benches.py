"""Smoke runs of the reliability benchmarks (bench/load.py, bench/soak.py) at tiny sizes.

They start real servers and real SDKs, so they are slow-marked; they check what each
benchmark promises to count (every upload reconciled with the database, the throwaway
PostgreSQL database dropped, retention bounding raw rows), never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

BENCH = Path(__file__).resolve().parents[1] / "bench"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

pytestmark = pytest.mark.slow


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
        assert reconciliation["outcome_rows_equal_rows_times_offers"], kind
        assert run["sdk_devices"]["sync_statuses"] == {"synced": 4}, kind
        assert run["uploads"]["accepted"] + run["uploads"]["duplicate"] >= 80, kind
    if before is not None:
        assert "postgresql" in result["runs"]
        assert _load_databases() == before  # its throwaway database is gone


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
