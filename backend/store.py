"""Reads and writes of device and upload rows; every function takes the caller's connection.

The caller owns the transaction (``with conn.begin():``), so an upload's aggregate row, its
outcome rows and the charge against its rate limit commit together or not at all. Every query
is scoped to one device (by its token's hash or its id): no function here can reach another
device's rows.

The statements an upload runs are built once, here, at import: building a SQLAlchemy statement
costs more than running it on SQLite, and an upload runs three (charge the rate limit while
locking the device, insert the aggregate unless it is a replay, insert its outcomes).

**The rate limit is GCRA** (the generic cell rate algorithm, a token bucket kept as one number):
each device row holds ``rate_tat``, the time at which its bucket would be full again. An upload
pushes it ``interval = 3600 / limit`` seconds past ``max(rate_tat, now)``, and is allowed when
that stays within an hour of ``now``. So a device with a full bucket may send ``limit`` uploads
at once (the burst), then one every ``interval`` seconds; an idle hour refills the bucket. The
check and the charge are one ``UPDATE ... WHERE ... RETURNING`` that also finds the device by
its token and locks its row, so concurrent uploads on any number of workers see each other's
charges (PostgreSQL re-checks the ``WHERE`` on the row a concurrent update committed; SQLite
holds its write lock from ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, Double, String, bindparam, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .payload import Upload
from .schema import aggregates, devices, outcomes

__all__ = [
    "RATE_WINDOW_S",
    "charge_upload",
    "create_device",
    "erase_device",
    "find_device",
    "insert_upload",
    "lock_device",
    "rate_limit_retry_after",
    "refund_upload",
]

RATE_WINDOW_S = 3600.0
# Slack for the sum of ``limit`` intervals (3600 / limit each) in floating point: without it a
# limit such as 7 could refuse the 7th upload of a burst by a rounding error of 1e-12 s.
_ROUNDING_S = 1e-6

_NOW = bindparam("now", type_=Double)
_INTERVAL = bindparam("interval", type_=Double)
_TOKEN = bindparam("token_hash", type_=String)
_DEVICE = bindparam("device", type_=String)
# When the device's bucket would be full again after one more upload.
_NEXT_TAT = case((devices.c.rate_tat > _NOW, devices.c.rate_tat), else_=_NOW) + _INTERVAL
_CHARGE = (
    update(devices)
    .where(devices.c.token_sha256 == _TOKEN, _NEXT_TAT - _NOW <= RATE_WINDOW_S + _ROUNDING_S)
    .values(rate_tat=_NEXT_TAT)
    .returning(devices.c.id)
)
_REFUND = (
    update(devices).where(devices.c.id == _DEVICE).values(rate_tat=devices.c.rate_tat - _INTERVAL)
)
_FIND = select(devices.c.id).where(devices.c.token_sha256 == _TOKEN)
_LOCK = _FIND.with_for_update()
_LOCK_TAT = select(devices.c.rate_tat).where(devices.c.token_sha256 == _TOKEN).with_for_update()
# A replay (same device, same upload_id) inserts nothing and returns no row.
_INSERT_AGGREGATE = {
    name: dialect_insert(aggregates)
    .on_conflict_do_nothing(index_elements=[aggregates.c.device_id, aggregates.c.upload_id])
    .returning(aggregates.c.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_INSERT_OUTCOMES = insert(outcomes)


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


def charge_upload(conn: Connection, token_sha256: str, now: float, limit: int) -> str | None:
    """Charge one upload to the device holding this token and lock its row; return its id.

    None if the token belongs to no device or the device has used its uploads
    (``rate_limit_retry_after`` tells which). ``limit`` is the uploads allowed per hour.
    """
    found: str | None = conn.execute(
        _CHARGE, {"token_hash": token_sha256, "now": now, "interval": RATE_WINDOW_S / limit}
    ).scalar_one_or_none()
    return found


def rate_limit_retry_after(
    conn: Connection, token_sha256: str, now: float, limit: int
) -> int | None:
    """Whole seconds until this token's device may upload again; None if no device holds it.

    Called after ``charge_upload`` refused, in the same transaction, so the row is locked.
    """
    tat = conn.execute(_LOCK_TAT, {"token_hash": token_sha256}).scalar_one_or_none()
    if tat is None:
        return None
    next_tat = max(tat, now) + RATE_WINDOW_S / limit
    return max(1, math.ceil(next_tat - now - RATE_WINDOW_S - _ROUNDING_S))


def refund_upload(conn: Connection, device_id: str, limit: int) -> None:
    """Give back the upload ``charge_upload`` just took, for a replay that stored nothing.

    Exact: the charge moved ``rate_tat`` to ``max(rate_tat, now) + interval``, and a
    ``rate_tat`` at or before ``now`` both mean a full bucket.
    """
    conn.execute(_REFUND, {"device": device_id, "interval": RATE_WINDOW_S / limit})


def insert_upload(conn: Connection, device_id: str, upload: Upload, now: float) -> int | None:
    """Store the aggregate and its outcome counts; return the aggregate's row id.

    None, storing nothing, if this device already stored an upload with this ``upload_id``
    (whatever its content: the first one wins).
    """
    aggregate_id: int | None = conn.execute(
        _INSERT_AGGREGATE[conn.dialect.name],
        {
            "device_id": device_id,
            "upload_id": upload.upload_id,
            "week": upload.week,
            "schema_version": upload.schema_version,
            "model_version": upload.model_version,
            "epsilon": upload.epsilon,
            "mechanism": upload.mechanism,
            "features": list(upload.features),
            "sdk_version": upload.sdk_version,
            "received_at": now,
        },
    ).scalar_one_or_none()
    if aggregate_id is not None and upload.outcomes:
        persona = upload.persona
        conn.execute(
            _INSERT_OUTCOMES,
            [
                {
                    "aggregate_id": aggregate_id,
                    "persona": persona,
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
    conn.execute(delete(devices).where(devices.c.id == device_id))
