"""Fixtures shared by every part's tests: temporary data directories and injected clocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepersona.sdk import EdgePersona, ManualClock

# 2026-03-02 08:00 UTC, a Monday: tests that care about local time say which zone they use.
T0 = 1_772_438_400.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "device"


@pytest.fixture
def sdk(data_dir: Path, clock: ManualClock) -> Iterator[EdgePersona]:
    """An SDK in UTC with personalization and location granted."""
    instance = EdgePersona.open(data_dir, "com.example.shop", clock=clock, tz="UTC")
    instance.consent.grant("personalization")
    instance.consent.grant("location")
    yield instance
    instance.close()


@pytest.fixture
def fresh_sdk(data_dir: Path, clock: ManualClock) -> Iterator[EdgePersona]:
    """An SDK in UTC with no consent given yet."""
    instance = EdgePersona.open(data_dir, "com.example.shop", clock=clock, tz="UTC")
    yield instance
    instance.close()
