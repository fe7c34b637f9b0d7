"""Rollout buckets: pinned by committed vectors, monotonic in percent, uniform over devices."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.backend.rollout import BUCKETS, bucket, in_rollout

VECTORS_FILE = Path(__file__).with_name("rollout_vectors.json")
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]

device_ids = st.text(max_size=40)
versions = st.integers(min_value=0, max_value=2**63)
percents = st.integers(min_value=0, max_value=100)
# 99 degrees of freedom: chi-square exceeds 148.2 with probability 0.001 for a uniform hash.
CHI_SQUARE_999 = 148.2


def test_the_committed_vectors_are_enough_and_varied() -> None:
    assert len(VECTORS) >= 50
    assert {v["expected"] for v in VECTORS} == {True, False}
    assert {0, 100} <= {v["percent"] for v in VECTORS}
    assert len({v["version"] for v in VECTORS}) >= 5
    assert len({v["device_id"] for v in VECTORS}) >= 25


@pytest.mark.parametrize(
    "vector", VECTORS, ids=[f"{v['device_id'][:12]}@{v['version']}:{v['percent']}" for v in VECTORS]
)
def test_the_hash_matches_the_committed_vectors(vector: dict[str, Any]) -> None:
    assert (
        in_rollout(vector["device_id"], vector["version"], vector["percent"])
        is (vector["expected"])
    )


@given(device_ids, versions)
def test_a_bucket_is_one_of_a_hundred(device_id: str, version: int) -> None:
    assert 0 <= bucket(device_id, version) < BUCKETS


@given(device_ids, versions, percents, percents)
def test_a_device_in_at_some_percent_stays_in_at_any_higher(
    device_id: str, version: int, low: int, high: int
) -> None:
    low, high = sorted((low, high))
    if in_rollout(device_id, version, low):
        assert in_rollout(device_id, version, high)


@given(device_ids, versions)
def test_nobody_at_zero_and_everybody_at_a_hundred(device_id: str, version: int) -> None:
    assert not in_rollout(device_id, version, 0)
    assert in_rollout(device_id, version, 100)


@given(device_ids, versions, percents)
def test_membership_is_the_bucket_below_the_percent(
    device_id: str, version: int, percent: int
) -> None:
    assert in_rollout(device_id, version, percent) == (bucket(device_id, version) < percent)


@pytest.mark.parametrize("version", [1, 2, 17, 2**40])
def test_buckets_are_uniform_over_devices(version: int) -> None:
    devices = 20_000
    counts = Counter(bucket(f"device-{i}", version) for i in range(devices))
    expected = devices / BUCKETS
    chi_square = sum((counts[b] - expected) ** 2 / expected for b in range(BUCKETS))
    assert chi_square < CHI_SQUARE_999


def test_each_percentage_reaches_about_that_share_of_devices() -> None:
    devices = [f"phone-{i:05d}" for i in range(20_000)]
    for percent in (1, 5, 10, 25, 50, 90):
        share = sum(in_rollout(d, 3, percent) for d in devices) / len(devices)
        assert abs(share - percent / 100) < 0.01


def test_each_version_starts_on_a_fresh_sample_of_devices() -> None:
    devices = [f"phone-{i:05d}" for i in range(20_000)]
    first = {d for d in devices if in_rollout(d, 1, 10)}
    second = {d for d in devices if in_rollout(d, 2, 10)}
    # Independent 10% samples overlap on about 1% of the fleet, not on 10%.
    assert abs(len(first & second) / len(devices) - 0.01) < 0.004


@pytest.mark.parametrize("percent", [-1, 101, 50.0, True, "50", None])
def test_a_percent_outside_0_to_100_is_refused(percent: Any) -> None:
    with pytest.raises(ValueError, match="percent must be an integer from 0 to 100"):
        in_rollout("device-1", 1, percent)


@pytest.mark.parametrize(
    ("device_id", "version", "message"),
    [
        (7, 1, "device_id must be a string, not int"),
        ("device-1", "1", "version must be an integer, not str"),
        ("device-1", 1.0, "version must be an integer, not float"),
        ("device-1", True, "version must be an integer, not bool"),
    ],
)
def test_ids_and_versions_of_the_wrong_type_are_refused(
    device_id: Any, version: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        bucket(device_id, version)
