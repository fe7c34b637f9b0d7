"""The tables the backend reads and writes, as SQLAlchemy Core objects (the current shape).

``migrations`` builds these tables step by step; a test checks that a database migrated from
empty has exactly the columns, keys and indexes declared here, so the two cannot drift.
Times are Unix seconds (UTC) stored as double precision: the same on SQLite and PostgreSQL,
and what the injected clock returns.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "aggregates",
    "devices",
    "metadata",
    "models",
    "retrains",
    "schema_version",
]

metadata = MetaData()
# 64-bit ids on PostgreSQL (a fleet uploads many millions of device-weeks); on SQLite only
# INTEGER PRIMARY KEY is the auto-incrementing rowid, and it is 64-bit there anyway.
ROW_ID = BigInteger().with_variant(Integer, "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    # The rate limit (migration 4): when this device's bucket of uploads is full again, see
    # ``store``; a time at or before now means full.
    Column("rate_tat", Double, nullable=False, server_default=text("0")),
)

aggregates = Table(
    "aggregates",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("device_id", String(32), ForeignKey("devices.id"), nullable=False),
    Column("upload_id", String(32), nullable=False),
    Column("week", String(8), nullable=False),  # ISO week, "2026-W10": sorts by time
    Column("schema_version", Integer, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("epsilon", Double, nullable=False),
    Column("mechanism", String(16), nullable=False),
    Column("features", JSON, nullable=False),  # list of floats in feature schema order
    Column("sdk_version", String(32), nullable=False),
    Column("received_at", Double, nullable=False),
    # The upload's persona label and outcome counts (migration 5; before it, one row per
    # offer in a table of their own): the label as randomized response left it, NULL only
    # for an upload stored before migration 5 with no outcome rows; the counts as
    # {offer: [accepted, dismissed]}, noised. One row per upload keeps the ingest to one insert.
    Column("persona", String(64), nullable=True),
    Column("outcomes", JSON, nullable=False, server_default=text("'{}'")),
    UniqueConstraint("device_id", "upload_id", name="aggregates_device_upload"),
    Index("aggregates_week", "week"),
)

# The model registry (migration 2): one row per published version, never updated except for
# its rollout share and the manifest re-signed with it. ``manifest`` is the signed manifest as
# JSON text; the two files are stored as the bytes their SHA-256 in the manifest covers.
models = Table(
    "models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("manifest", Text, nullable=False),
    Column("model_onnx", LargeBinary, nullable=False),
    Column("playbook_json", LargeBinary, nullable=False),
    Column("rollout_percent", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("kind", String(16), nullable=False),  # "model", or "rollback" of source_version
    Column("source_version", Integer, nullable=True),
    CheckConstraint("rollout_percent BETWEEN 0 AND 100", name="models_rollout_percent"),
    CheckConstraint("kind IN ('model', 'rollback')", name="models_kind"),
)

# Retraining reports (migration 3): one row per retrain run, whether or not it published.
# ``report`` is the evaluation report (JSON); ``published_version`` the version it registered.
retrains = Table(
    "retrains",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("created_at", Double, nullable=False),
    Column("report", JSON, nullable=False),
    Column("published_version", Integer, ForeignKey("models.version"), nullable=True),
)
