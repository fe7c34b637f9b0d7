"""Reads and writes of device and upload rows; every function takes the caller's connection.

The caller owns the transaction (``with conn.begin():``), so an upload's aggregate row, its
outcome rows and its rate-limit row commit together or not at all. Every query is scoped to
one ``device_id``: no function here can reach another device's rows.
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, delete, exists, func, insert, select

from .payload import Upload
from .schema import aggregates, devices, outcomes, uploads_log

__all__ = [
    "RATE_WINDOW_S",
    "create_device",
    "erase_device",
    "find_device",
    "has_upload",
    "insert_upload",
    "lock_device",
    "log_upload",
    "rate_limit_retry_after",
]

RATE_WINDOW_S = 3600.0


def create_device(conn: Connection, device_id: str, token_sha256: str, now: float) -> None:
    """Register a device whose bearer token hashes to ``token_sha256``."""
    conn.execute(insert(devices).values(id=device_id, token_sha256=token_sha256, created_at=now))


def find_device(conn: Connection, token_sha256: str) -> str | None:
    """The id of the device holding this token, or None; without a lock, for read-only requests."""
    found = conn.execute(
        select(devices.c.id).where(devices.c.token_sha256 == token_sha256)
    ).scalar_one_or_none()
    return found


def lock_device(conn: Connection, token_sha256: str) -> str | None:
    """The id of the device holding this token, locked until the transaction ends; or None.

    The row lock (PostgreSQL; SQLite holds its write lock already) serialises concurrent
    requests of one device across workers: the rate limit and the duplicate check then see
    every earlier upload, and an erase cannot interleave with an upload.
    """
    found = conn.execute(
        select(devices.c.id).where(devices.c.token_sha256 == token_sha256).with_for_update()
    ).scalar_one_or_none()
    return found


def rate_limit_retry_after(conn: Connection, device_id: str, now: float, limit: int) -> int | None:
    """Whole seconds until ``device_id`` may upload again, or None if it may upload now."""
    count, oldest = conn.execute(
        select(func.count(), func.min(uploads_log.c.at)).where(
            uploads_log.c.device_id == device_id, uploads_log.c.at > now - RATE_WINDOW_S
        )
    ).one()
    if count < limit:
        return None
    return max(1, math.ceil(oldest + RATE_WINDOW_S - now))


def log_upload(conn: Connection, device_id: str, now: float) -> None:
    """Count an upload against the device's rate limit; forget its rows older than the window."""
    conn.execute(
        delete(uploads_log).where(
            uploads_log.c.device_id == device_id, uploads_log.c.at <= now - RATE_WINDOW_S
        )
    )
    conn.execute(insert(uploads_log).values(device_id=device_id, at=now))


def has_upload(conn: Connection, device_id: str, upload_id: str) -> bool:
    """Whether this device already stored the upload ``upload_id``."""
    query = select(
        exists().where(aggregates.c.device_id == device_id, aggregates.c.upload_id == upload_id)
    )
    return bool(conn.execute(query).scalar())


def insert_upload(conn: Connection, device_id: str, upload: Upload, now: float) -> int:
    """Store the aggregate and its outcome counts; return the aggregate's row id."""
    aggregate_id: int = conn.execute(
        insert(aggregates)
        .values(
            device_id=device_id,
            upload_id=upload.upload_id,
            week=upload.week,
            schema_version=upload.schema_version,
            model_version=upload.model_version,
            epsilon=upload.epsilon,
            mechanism=upload.mechanism,
            features=list(upload.features),
            sdk_version=upload.sdk_version,
            received_at=now,
        )
        .returning(aggregates.c.id)
    ).scalar_one()
    if upload.outcomes:
        conn.execute(
            insert(outcomes),
            [
                {
                    "aggregate_id": aggregate_id,
                    "persona": upload.persona,
                    "offer": o.offer,
                    "accepted": o.accepted,
                    "dismissed": o.dismissed,
                }
                for o in upload.outcomes
            ],
        )
    return aggregate_id


def erase_device(conn: Connection, device_id: str) -> None:
    """Delete everything stored for ``device_id``, the device row (and so its token) last."""
    own_aggregates = select(aggregates.c.id).where(aggregates.c.device_id == device_id)
    conn.execute(delete(outcomes).where(outcomes.c.aggregate_id.in_(own_aggregates)))
    conn.execute(delete(aggregates).where(aggregates.c.device_id == device_id))
    conn.execute(delete(uploads_log).where(uploads_log.c.device_id == device_id))
    conn.execute(delete(devices).where(devices.c.id == device_id))
