"""What the device holds, read for ``EdgePersona.export()`` and ``daily_counts()``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ._schema import SCHEMA_VERSION
from .clock import Clock

EXPORT_FORMAT = "edgepersona-export/1"
_SIGNAL_TABLES = (
    ("location", "locations"),
    ("app", "app_usage"),
    ("screen", "screens"),
    ("event", "events"),
)


def export_document(db: Any, clock: Clock, app_id: str) -> dict[str, Any]:
    """Everything in the database as one JSON-ready dict; ``db`` is the store's reader."""
    return {
        "format": EXPORT_FORMAT,
        "exported_at": datetime.fromtimestamp(clock.time(), timezone.utc).isoformat(),
        "app_id": app_id,
        "schema_version": SCHEMA_VERSION,
        "consent": {row["purpose"]: row for row in db["consent"].rows},
        "consent_audit": list(db["consent_audit"].rows_where(order_by="id")),
        "signals": {
            kind: list(db[table].rows_where(order_by="id")) for kind, table in _SIGNAL_TABLES
        },
        "rollups": {
            "hourly": list(db["rollup_hourly"].rows_where(order_by="hour, kind, key")),
            "daily": list(db["rollup_daily"].rows_where(order_by="day, kind, key")),
        },
        "daily_counts": list(db["daily_counts"].rows_where(order_by="day, name")),
        "places": list(db["places"].rows_where(order_by="id")),
        "stays": list(db["stays"].rows_where(order_by="start")),
        "corrections": list(db["corrections"].rows_where(order_by="id")),
        "decisions": list(db["decisions"].rows_where(order_by="id")),
        "feedback": list(db["feedback"].rows_where(order_by="id")),
    }


def daily_counts(db: Any, since: str) -> dict[str, dict[str, int]]:
    """Per local day after ``since``: rows stored by kind, and the collector's counters."""
    report: dict[str, dict[str, int]] = {}
    for day, name, n in db.execute(
        "SELECT day, 'rows.' || kind, SUM(n) FROM rollup_daily WHERE day > ? "
        "GROUP BY day, kind UNION ALL "
        "SELECT day, name, n FROM daily_counts WHERE day > ? ORDER BY 1, 2",
        (since, since),
    ):
        report.setdefault(day, {})[name] = int(n)
    return report
