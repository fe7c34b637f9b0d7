"""Staged rollout: which devices get a model version while it is promoted to a percentage.

A device's bucket for a version is fixed by this rule, pinned by the committed vectors in
``tests/backend/rollout_vectors.json`` (changing it would reshuffle every device mid-rollout):

    bucket = int.from_bytes(SHA-256(f"{device_id}:{version}" as UTF-8)[:8], "big") % 100

The device is in the rollout at ``percent`` when ``bucket < percent``: nobody at 0, everybody
at 100, and a device that is in at p% stays in at every higher percentage. The version is part
of the hash, so each version is tried first on a fresh sample of devices rather than on the
same unlucky few every time. (2**64 is not a multiple of 100, so buckets 0-15 are likelier
than the others by one part in 10**17: far below anything measurable.)
"""

from __future__ import annotations

import hashlib

__all__ = ["BUCKETS", "bucket", "in_rollout"]

BUCKETS = 100


def bucket(device_id: str, version: int) -> int:
    """The device's bucket for ``version``, in ``[0, 100)``; the same on every server."""
    if not isinstance(device_id, str):
        raise TypeError(f"device_id must be a string, not {type(device_id).__name__}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"version must be an integer, not {type(version).__name__}")
    digest = hashlib.sha256(f"{device_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(device_id: str, version: int, percent: int) -> bool:
    """Whether the device runs ``version`` while it is rolled out to ``percent`` (0..100)."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"percent must be an integer from 0 to 100, not {percent!r}")
    return bucket(device_id, version) < percent
