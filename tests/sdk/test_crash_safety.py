"""A tracking process killed with SIGKILL leaves a sound database holding every committed row."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgepersona.sdk import EdgePersona

TRACKER = textwrap.dedent(
    """
    import sys
    from edgepersona.sdk import EdgePersona, Settings

    settings = Settings(flush_interval_s=0.005, flush_max_rows=50)
    sdk = EdgePersona.open(sys.argv[1], "crash-test", settings=settings)
    sdk.consent.grant("personalization")
    start = int(sys.argv[2])
    i = start
    while True:
        for _ in range(97):
            sdk.track_event("view", float(i))
            i += 1
        sdk.flush()
        print(i - start, flush=True)  # every row before this count is committed
    """
)


@pytest.mark.slow
def test_sigkill_while_tracking_loses_only_uncommitted_rows(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    data_dir = tmp_path / "device"
    committed_total = 0
    for _ in range(8):
        process = subprocess.Popen(
            [sys.executable, "-c", TRACKER, str(data_dir), str(committed_total)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        reported = 0
        for _ in range(rng.randint(1, 40)):
            line = process.stdout.readline()
            if not line:
                break
            reported = int(line)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        with sqlite3.connect(data_dir / "edgepersona.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            values = {v for (v,) in conn.execute("SELECT value FROM events")}
        # Every row reported as committed is there, including those of earlier runs.
        expected = set(map(float, range(committed_total + reported)))
        assert expected <= values
        committed_total = int(max(values)) + 1 if values else 0
    assert committed_total > 0
    with EdgePersona.open(data_dir, "after") as sdk:  # and it still opens and migrates fine
        assert sdk.consent.status("personalization") is True
