"""Reads and writes of device rows and erasure; every function takes the caller's connection.

The caller owns the transaction (``with conn.begin():``). Every query is scoped to one device
(by its token's hash or its id): no function here can reach another device's rows. An
upload's own write, the service's hot path, is ``backend.upload_write``.
"""

from __future__ import annotations

from sqlalchemy import Connection, String, bindparam, delete, insert, select

from .schema import aggregates, devices

__all__ = ["create_device", "erase_device", "find_device", "lock_device"]

_TOKEN = bindparam("token_hash", type_=String)
_FIND = select(devices.c.id).where(devices.c.token_sha256 == _TOKEN)
_LOCK = _FIND.with_for_update()


def create_device(conn: Connection, device_id: str, token_sha256: str, now: float) -> None:
    """Register a device whose bearer token hashes to ``token_sha256``, its bucket full."""
    conn.execute(
        insert(devices).values(
            id=device_id, token_sha256=token_sha256, created_at=now, rate_tat=now
        )
    )


def find_device(conn: Connection, token_sha256: str) -> str | None:
    """The id of the device holding this token, or None; without a lock, for read-only requests."""
    found: str | None = conn.execute(_FIND, {"token_hash": token_sha256}).scalar_one_or_none()
    return found


def lock_device(conn: Connection, token_sha256: str) -> str | None:
    """The id of the device holding this token, locked until the transaction ends; or None.

    The row lock (PostgreSQL; SQLite holds its write lock already) serialises concurrent
    requests of one device across workers: an erase cannot interleave with an upload.
    """
    found: str | None = conn.execute(_LOCK, {"token_hash": token_sha256}).scalar_one_or_none()
    return found


def erase_device(conn: Connection, device_id: str) -> None:
    """Delete everything stored for ``device_id``, the device row (and so its token) last."""
    conn.execute(delete(aggregates).where(aggregates.c.device_id == device_id))
    conn.execute(delete(devices).where(devices.c.id == device_id))
