"""The on-device database schema and its forward migrations.

``PRAGMA user_version`` holds how many migrations have run. A database written by a newer SDK
(a higher version than this code knows) is refused rather than guessed at, so a downgrade never
corrupts data. Migrations only ever append: never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from .errors import StoreError

# Raw signal tables: one per kind, so each row holds only the columns that kind has.
# ``utc_offset`` (seconds east of UTC where the signal happened) keeps local time exact.
RAW_TABLES: dict[str, tuple[str, ...]] = {
    "location": ("ts", "utc_offset", "lat", "lon", "accuracy_m", "speed_mps"),
    "app": ("ts", "utc_offset", "app", "category", "duration_s"),
    "screen": ("ts", "utc_offset", "name", "duration_s"),
    "event": ("ts", "utc_offset", "name", "value"),
    # What decide() chose and how the user answered: buffered like signals, so deciding
    # never waits for a commit; kept for sync and for offline evaluation of new policies.
    "decision": (
        "ts",
        "utc_offset",
        "decision_id",
        "surface",
        "persona",
        "variant",
        "offers",
        "shown",
        "propensity",
        "model_version",
    ),
    "feedback": ("ts", "utc_offset", "decision_id", "offer_id", "outcome", "persona"),
}
# Kinds kept only as rollups: an app session (a foreground run split by 5-minute gaps).
ROLLUP_ONLY_KINDS = ("session",)
TABLE_OF_KIND = {
    "location": "locations",
    "app": "app_usage",
    "screen": "screens",
    "event": "events",
    "decision": "decisions",
    "feedback": "feedback",
}

_V1 = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE consent (
    purpose TEXT PRIMARY KEY, granted INTEGER NOT NULL, policy_version TEXT, ts REAL NOT NULL);
CREATE TABLE consent_audit (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, purpose TEXT NOT NULL, action TEXT NOT NULL,
    policy_version TEXT, source TEXT NOT NULL);
CREATE TABLE locations (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, accuracy_m REAL, speed_mps REAL);
CREATE TABLE app_usage (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    app TEXT NOT NULL, category TEXT NOT NULL, duration_s REAL);
CREATE TABLE screens (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    name TEXT NOT NULL, duration_s REAL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    name TEXT NOT NULL, value REAL);
CREATE INDEX locations_ts ON locations (ts);
CREATE INDEX app_usage_ts ON app_usage (ts);
CREATE INDEX screens_ts ON screens (ts);
CREATE INDEX events_ts ON events (ts);
CREATE TABLE rollup_hourly (
    hour TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    n INTEGER NOT NULL, seconds REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (hour, kind, key)) WITHOUT ROWID;
CREATE TABLE rollup_daily (
    day TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    n INTEGER NOT NULL, seconds REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (day, kind, key)) WITHOUT ROWID;
CREATE TABLE daily_counts (
    day TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, name)) WITHOUT ROWID;
"""

# v2: what the device infers (stays, places), what the user corrected, and what it decided.
_V2 = """
CREATE TABLE stays (
    id INTEGER PRIMARY KEY, start REAL NOT NULL, end REAL NOT NULL, utc_offset INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, n INTEGER NOT NULL, place_id INTEGER NOT NULL);
CREATE INDEX stays_end ON stays (end);
CREATE TABLE places (
    id INTEGER PRIMARY KEY, lat REAL NOT NULL, lon REAL NOT NULL, visits INTEGER NOT NULL,
    dwell_s REAL NOT NULL, night_s REAL NOT NULL, workday_s REAL NOT NULL, label_override TEXT);
CREATE TABLE corrections (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    decision_id TEXT NOT NULL, surface TEXT NOT NULL, persona TEXT, variant TEXT NOT NULL,
    offers TEXT NOT NULL, shown TEXT, propensity REAL, model_version INTEGER NOT NULL);
CREATE INDEX decisions_decision_id ON decisions (decision_id);
CREATE INDEX decisions_ts ON decisions (ts);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, utc_offset INTEGER NOT NULL,
    decision_id TEXT NOT NULL, offer_id TEXT NOT NULL, outcome TEXT NOT NULL, persona TEXT);
CREATE INDEX feedback_ts ON feedback (ts);
"""

# v3: sync. Registration, backoff and the ETag live in ``settings``; an upload is queued with
# its ``upload_id`` fixed, so a resend after a crash is the same upload to the server.
_V3 = """
CREATE TABLE upload_queue (
    upload_id TEXT PRIMARY KEY, week TEXT NOT NULL UNIQUE, payload TEXT NOT NULL,
    queued_at REAL NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE privacy_budget (week TEXT PRIMARY KEY, epsilon REAL NOT NULL, spent_at REAL NOT NULL);
CREATE TABLE uploads_sent (
    upload_id TEXT PRIMARY KEY, week TEXT NOT NULL, payload TEXT NOT NULL, sent_at REAL NOT NULL,
    bytes INTEGER NOT NULL);
CREATE TABLE sync_log (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL, detail TEXT);
CREATE TABLE bundle_history (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, version INTEGER, event TEXT NOT NULL, reason TEXT);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to ``SCHEMA_VERSION``; return the version it had before."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {found} but this SDK knows only up to "
            f"{SCHEMA_VERSION}; upgrade the SDK, or erase the data directory to start over"
        )
    for version in range(found, SCHEMA_VERSION):
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"migrating the database to version {version + 1} failed: {exc}"
            ) from exc
    return int(found)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT on its own; running statement by statement keeps each
    # migration in one transaction, so a crash mid-migration leaves the old version intact.
    return [part.strip() for part in script.split(";") if part.strip()]
