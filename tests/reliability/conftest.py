"""The standing reliability suite (issue 8): shared fixtures and the figures of the run.

Each module adds what it did to ``figures`` (iterations, inputs tried, faults injected,
attacks refused, rows lost and doubled). At the end of the session they are written as JSON to
``$EDGEPERSONA_RELIABILITY_REPORT`` (default: ``reliability-report.json`` in pytest's base
temporary directory, never the repository) and summed up in one line of the terminal summary,
so the README's "Reliability" section quotes a real run.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ..sync.conftest import (  # noqa: F401 (fixtures: the live backend and the device's network)
    backend,
    backend_database_url,
    network,
    open_device,
)

REPORT_ENV = "EDGEPERSONA_RELIABILITY_REPORT"
# Each headline figure is the sum of these counters over every module.
HEADLINE = {
    "kills": ("kills",),
    "faults_injected": ("faults_injected",),
    "uploads_delivered": ("uploads_delivered", "uploads_checked"),
    "attacks_refused": ("attacks_refused", "admin_calls_refused_to_a_device"),
    "inputs_tried": (
        "sdk_inputs_tried",
        "trace_inputs_tried",
        "trace_files_replayed",
        "conditions_tried",
        "rest_inputs_tried",
        "cross_device_attempts",
    ),
    "server_errors": ("server_errors",),
    "rows_lost": ("rows_lost", "uploads_lost"),
    "rows_doubled": ("uploads_doubled",),
    "secrets_logged": ("secrets_found_in_logs",),
}


class Figures:
    """Counters per module, e.g. ``figures.add("crash_safety", "iterations", 1)``."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, module: str, key: str, n: int = 1) -> None:
        self.counts[module][key] += n

    def as_dict(self) -> dict[str, Any]:
        """Counts per module, and the headline figures the README quotes."""
        modules = {name: dict(sorted(c.items())) for name, c in sorted(self.counts.items())}
        totals: dict[str, int] = defaultdict(int)
        for counts in modules.values():
            for key, n in counts.items():
                totals[key] += n
        headline = {name: sum(totals[key] for key in keys) for name, keys in HEADLINE.items()}
        return {"headline": headline, "modules": modules}


_FIGURES = pytest.StashKey[Figures]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = Figures()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash[_FIGURES]


def _report_path(config: pytest.Config) -> Path:
    chosen = os.environ.get(REPORT_ENV)
    if chosen:
        return Path(chosen)
    factory = config._tmp_path_factory  # type: ignore[attr-defined]  # pytest's tmp_path root
    return Path(factory.getbasetemp()) / "reliability-report.json"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Write the JSON report and print its totals in one line."""
    found = config.stash.get(_FIGURES, None)
    if found is None or not found.counts:
        return
    report = found.as_dict()
    path = _report_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    line = ", ".join(f"{key} {n:,}" for key, n in report["headline"].items())
    terminalreporter.write_sep("-", "reliability figures")
    terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {path}")
