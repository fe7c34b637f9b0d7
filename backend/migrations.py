"""Forward migrations of the backend database, numbered, run in one transaction.

The ``schema_version`` table holds how many migrations have run. Each migration is a function
of a connection that builds its own tables as they were when it shipped, never from
``schema.py``: ``schema.py`` is the current shape, and a step that read it would create later
columns early and break the steps after it. Never edit a migration that has shipped; append one.
A database written by newer code (a higher version) is refused rather than guessed at.

Why not alembic: a handful of append-only steps need no revision graph, autogenerate or extra
dependency; this runner is the SDK's ``_schema.py`` idea on SQLAlchemy Core, for both databases.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from .errors import SchemaError
from .schema import schema_version

__all__ = ["LATEST", "MIGRATIONS", "current_version", "migrate"]

# Any constant shared by every process of this service: PostgreSQL advisory lock key.
_PG_LOCK_KEY = 0x6570_6D69  # "epmi"


def _v1(conn: Connection) -> None:
    meta = MetaData()
    row_id = BigInteger().with_variant(Integer, "sqlite")
    Table("schema_version", meta, Column("version", Integer, nullable=False))
    Table(
        "devices",
        meta,
        Column("id", String(32), primary_key=True),
        Column("token_sha256", String(64), nullable=False, unique=True),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "aggregates",
        meta,
        Column("id", row_id, primary_key=True, autoincrement=True),
        Column("device_id", String(32), ForeignKey("devices.id"), nullable=False),
        Column("upload_id", String(32), nullable=False),
        Column("week", String(8), nullable=False),
        Column("schema_version", Integer, nullable=False),
        Column("model_version", Integer, nullable=False),
        Column("epsilon", Double, nullable=False),
        Column("mechanism", String(16), nullable=False),
        Column("features", JSON, nullable=False),
        Column("sdk_version", String(32), nullable=False),
        Column("received_at", Double, nullable=False),
        UniqueConstraint("device_id", "upload_id", name="aggregates_device_upload"),
        Index("aggregates_week", "week"),
    )
    Table(
        "outcomes",
        meta,
        Column("aggregate_id", row_id, ForeignKey("aggregates.id"), primary_key=True),
        Column("persona", String(64), primary_key=True),
        Column("offer", String(64), primary_key=True),
        Column("accepted", Double, nullable=False),
        Column("dismissed", Double, nullable=False),
    )
    Table(
        "uploads_log",
        meta,
        Column("id", row_id, primary_key=True, autoincrement=True),
        Column("device_id", String(32), ForeignKey("devices.id"), nullable=False),
        Column("at", Double, nullable=False),
        Index("uploads_log_device_at", "device_id", "at"),
    )
    meta.create_all(conn)


def _v2(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "models",
        meta,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("manifest", Text, nullable=False),
        Column("model_onnx", LargeBinary, nullable=False),
        Column("playbook_json", LargeBinary, nullable=False),
        Column("rollout_percent", Integer, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("source_version", Integer, nullable=True),
        CheckConstraint("rollout_percent BETWEEN 0 AND 100", name="models_rollout_percent"),
        CheckConstraint("kind IN ('model', 'rollback')", name="models_kind"),
    )
    meta.create_all(conn)


def _v3(conn: Connection) -> None:
    meta = MetaData()
    row_id = BigInteger().with_variant(Integer, "sqlite")
    Table("models", meta, Column("version", Integer, primary_key=True, autoincrement=False))
    Table(
        "retrains",
        meta,
        Column("id", row_id, primary_key=True, autoincrement=True),
        Column("created_at", Double, nullable=False),
        Column("report", JSON, nullable=False),
        Column("published_version", Integer, ForeignKey("models.version"), nullable=True),
    )
    meta.tables["retrains"].create(conn)


def _v4(conn: Connection) -> None:
    # The rate limit moves from one uploads_log row per upload to one number per device (GCRA,
    # see upload_write.py): every device starts with a full bucket, so for the hour after the
    # upgrade a device may send up to one burst more than the limit.
    conn.execute(
        text("ALTER TABLE devices ADD COLUMN rate_tat DOUBLE PRECISION NOT NULL DEFAULT 0")
    )
    conn.execute(text("DROP TABLE uploads_log"))


# Migration 5's move of each upload's outcome rows into its aggregate row, per database. SQLite's
# json_array would write the counts with 15 significant digits; printf's 17 keep every double.
_FOLD_OUTCOMES = {
    "sqlite": """
        UPDATE aggregates SET persona = folded.persona, outcomes = folded.outcomes
        FROM (
            SELECT aggregate_id, min(persona) AS persona,
                   json_group_object(
                       offer, json(printf('[%!.17g,%!.17g]', accepted, dismissed))
                   ) AS outcomes
            FROM outcomes GROUP BY aggregate_id
        ) AS folded
        WHERE aggregates.id = folded.aggregate_id""",
    "postgresql": """
        UPDATE aggregates SET persona = folded.persona, outcomes = folded.outcomes
        FROM (
            SELECT aggregate_id, min(persona) AS persona,
                   json_object_agg(offer, json_build_array(accepted, dismissed)) AS outcomes
            FROM outcomes GROUP BY aggregate_id
        ) AS folded
        WHERE aggregates.id = folded.aggregate_id""",
}


def _v5(conn: Connection) -> None:
    # An upload's persona and outcome counts move from one ``outcomes`` row per offer into
    # its aggregate row: an upload becomes one insert instead of nine. All of an upload's
    # rows carry the one label it sent; an upload without outcome rows had its label dropped
    # and keeps NULL.
    conn.execute(text("ALTER TABLE aggregates ADD COLUMN persona VARCHAR(64)"))
    conn.execute(text("ALTER TABLE aggregates ADD COLUMN outcomes JSON NOT NULL DEFAULT '{}'"))
    conn.execute(text(_FOLD_OUTCOMES[conn.dialect.name]))
    conn.execute(text("DROP TABLE outcomes"))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """How many migrations the database behind ``conn`` has run (0 for an empty one)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0)


def migrate(engine: Engine) -> int:
    """Bring the database up to ``LATEST``; return the version it had before.

    Safe to run from several processes at once: PostgreSQL serialises them on an advisory
    lock, SQLite on its write lock, and the second one finds nothing left to do.
    """
    with engine.connect() as conn:
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                found = current_version(conn)
                if found > LATEST:
                    raise SchemaError(
                        f"the database has schema version {found} but this code knows only up "
                        f"to {LATEST}; upgrade edgepersona, or point DATABASE_URL elsewhere"
                    )
                if found < LATEST:
                    for step in MIGRATIONS[found:]:
                        step(conn)
                    conn.execute(delete(schema_version))
                    conn.execute(insert(schema_version).values(version=LATEST))
        except SQLAlchemyError as exc:
            raise SchemaError(f"migrating the database to version {LATEST} failed: {exc}") from exc
    return found
