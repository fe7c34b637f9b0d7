"""``edgepersona demo`` as a user runs it: a subprocess, a small fleet, a consistent report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_runs_the_whole_loop_and_its_figures_hold_together(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "edgepersona.sdk.cli", "demo", "--json"),
            *("--devices", "50", "--weeks", "2", "--keep", str(keep)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["devices"] == 50 and report["weeks"] == 2
    # every consenting device synced every week; the others sent nothing at all
    assert 0 < report["syncing_devices"] < 50
    assert report["synced_every_week"] == report["syncing_devices"]
    assert report["non_consenting_requests"] == 0
    # the retrained model was published, promoted and adopted by every syncing device
    version = report["retrain"]["published_version"]
    assert version is not None and version > 1
    assert report["model_versions"].get(str(version)) == report["syncing_devices"]
    # personas agree with the truth far above chance (ARI 0 is chance), before and after
    assert report["agreement_with_truth"]["before"] > 0.3
    assert report["agreement_with_truth"]["after"] > 0.3
    # privacy: the documented bound on the payload, the week's budget spent per week
    assert report["upload_body_bytes_per_device_week"] <= 1024
    assert report["epsilon_spent_per_device"] == pytest.approx(2.0)  # 1.0 a week, 2 weeks
    assert sum(report["persona_mix_truth"].values()) == 50
    html = Path(report["report"]).read_text()
    assert "<svg" in html and "http" not in html.replace("http-equiv", "")
