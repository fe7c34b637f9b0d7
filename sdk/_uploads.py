"""The weekly upload: what it holds (a pure builder) and the durable queue it waits in.

The payload is the only thing that ever leaves the device (``docs/upload-payload.md``): the
feature vector, the persona label and the offer outcome counts, each noised on the device
(``edgepersona.sdk.privacy``), plus the versions needed to read them. No coordinate, place,
app id or time finer than the ISO week is in it, by construction: the builder takes nothing
else.

Queue: an upload is written with its ``upload_id`` and the week's privacy budget in one
transaction, and leaves the queue only when the server answered for it, in one transaction
with its log line and, when dropped, its count (so a failed write leaves no half). A process killed
after the server stored it but before the row was deleted sends the same ``upload_id`` again,
and the server counts it once. The budget row stays: a week is noised and spent once, so a
resend never spends more epsilon and a second upload of the same week never exists.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._version import SDK_VERSION
from .features import SCHEMA_VERSION
from .privacy import (
    MECHANISM,
    PERSONA_SHARE,
    noised_features,
    noised_outcomes,
    randomized_response,
)

__all__ = [
    "SENT_KEPT",
    "build_payload",
    "count_attempt",
    "drop_upload",
    "encode",
    "enqueue",
    "iso_week",
    "pending",
    "previous_week",
    "purge",
    "record_sent",
    "trim_queue",
    "week_bounds",
]

SENT_KEPT = 8  # uploads kept after sending, so the user can see exactly what left


def iso_week(local_ts: float) -> str:
    """The ISO week (``YYYY-Www``) of a local-time Unix value (UTC epoch shifted by offset)."""
    year, week, _ = dt.datetime.fromtimestamp(local_ts, dt.timezone.utc).isocalendar()
    return f"{year:04d}-W{week:02d}"


def previous_week(local_ts: float) -> str:
    """The last complete ISO week before the one containing ``local_ts``."""
    return iso_week(local_ts - 7 * 86400)


def week_bounds(week: str) -> tuple[float, float]:
    """Local-time Unix bounds ``[monday 00:00, next monday 00:00)`` of an ISO week."""
    monday = dt.date.fromisocalendar(int(week[:4]), int(week[6:]), 1)
    start = dt.datetime.combine(monday, dt.time(), dt.timezone.utc).timestamp()
    return start, start + 7 * 86400


def build_payload(
    *,
    week: str,
    features: Sequence[float],
    persona: str,
    personas: Sequence[str],
    outcome_counts: Mapping[str, tuple[float, float]],
    offers: Sequence[str],
    epsilon: float,
    model_version: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The week's upload, noised, with a fresh ``upload_id``. Pure but for ``rng``.

    ``persona`` goes through randomized response; every playbook offer is listed, answered
    or not, so the list itself says nothing.
    """
    label = randomized_response(persona, personas, PERSONA_SHARE * epsilon, rng)
    outcomes = noised_outcomes(outcome_counts, offers, epsilon, rng)
    return {
        "upload_id": uuid.UUID(bytes=rng.bytes(16), version=4).hex,
        "schema_version": SCHEMA_VERSION,
        "week": week,
        "features": noised_features(features, epsilon, rng),
        "epsilon": epsilon,
        "mechanism": MECHANISM,
        "model_version": model_version,
        "persona": label,
        "outcomes": [
            {"offer": offer, "accepted": a, "dismissed": d} for offer, (a, d) in outcomes.items()
        ],
        "sdk_version": SDK_VERSION,
    }


def encode(payload: Mapping[str, Any]) -> str:
    """The exact text sent: compact JSON (the bytes on the wire are what the user sees)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def enqueue(conn: sqlite3.Connection, payload: Mapping[str, Any], now: float) -> bool:
    """Spend the week's budget and queue ``payload``; ``False`` if the week was spent before."""
    spent = conn.execute(
        "INSERT INTO privacy_budget (week, epsilon, spent_at) VALUES (?, ?, ?) "
        "ON CONFLICT (week) DO NOTHING",
        (payload["week"], payload["epsilon"], now),
    ).rowcount
    if not spent:
        return False
    conn.execute(
        "INSERT INTO upload_queue (upload_id, week, payload, queued_at, attempts) "
        "VALUES (?, ?, ?, ?, 0)",
        (payload["upload_id"], payload["week"], encode(payload), now),
    )
    return True


def pending(conn: Any) -> list[tuple[str, str, str]]:
    """Queued uploads, oldest week first: ``(upload_id, week, payload text)``."""
    return conn.execute(
        "SELECT upload_id, week, payload FROM upload_queue ORDER BY week"
    ).fetchall()


def count_attempt(conn: sqlite3.Connection, upload_id: str) -> None:
    conn.execute(
        "UPDATE upload_queue SET attempts = attempts + 1 WHERE upload_id = ?", (upload_id,)
    )


def record_sent(conn: sqlite3.Connection, upload_id: str, now: float) -> None:
    """The server has it: move it from the queue to the short list of sent uploads, logged."""
    conn.execute(
        "INSERT OR REPLACE INTO uploads_sent (upload_id, week, payload, sent_at, bytes) "
        "SELECT upload_id, week, payload, ?, length(CAST(payload AS BLOB)) FROM upload_queue "
        "WHERE upload_id = ?",
        (now, upload_id),
    )
    conn.execute("DELETE FROM upload_queue WHERE upload_id = ?", (upload_id,))
    conn.execute(
        "DELETE FROM uploads_sent WHERE upload_id NOT IN "
        "(SELECT upload_id FROM uploads_sent ORDER BY sent_at DESC, week DESC LIMIT ?)",
        (SENT_KEPT,),
    )
    _log(conn, "sent", upload_id, now)


def drop_upload(
    conn: sqlite3.Connection, upload_id: str, reason: str, detail: str, now: float
) -> None:
    """The server refused the upload for good: it leaves the queue, counted under ``reason``."""
    conn.execute("DELETE FROM upload_queue WHERE upload_id = ?", (upload_id,))
    _count_drop(conn, reason, 1, detail, now)


def trim_queue(conn: sqlite3.Connection, max_uploads: int, oldest_week: str, now: float) -> int:
    """Drop uploads beyond the bound (oldest first) or older than ``oldest_week``; how many.

    Counted as ``queue_full`` in the same transaction.
    """
    old = conn.execute("DELETE FROM upload_queue WHERE week < ?", (oldest_week,)).rowcount
    over = conn.execute(
        "DELETE FROM upload_queue WHERE upload_id NOT IN "
        "(SELECT upload_id FROM upload_queue ORDER BY week DESC LIMIT ?)",
        (max_uploads,),
    ).rowcount
    trimmed = int(old + over)
    if trimmed:
        _count_drop(conn, "queue_full", trimmed, f"{trimmed} oldest uploads", now)
    return trimmed


def purge(conn: sqlite3.Connection, now: float) -> None:
    """``sync`` was revoked: empty the queue (the sent list stays, for the user to see)."""
    conn.execute("DELETE FROM upload_queue")
    _log(conn, "purged", "sync consent revoked", now)


def _count_drop(conn: sqlite3.Connection, reason: str, n: int, detail: str, now: float) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT DO UPDATE SET value = CAST(value AS INTEGER) + ?",
        (f"sync.dropped.{reason}", str(n), n),
    )
    _log(conn, f"dropped.{reason}", detail, now)


def _log(conn: sqlite3.Connection, event: str, detail: str | None, now: float) -> None:
    conn.execute("INSERT INTO sync_log (ts, event, detail) VALUES (?, ?, ?)", (now, event, detail))
