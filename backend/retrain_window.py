"""Reading a retrain's window of aggregates: streamed in chunks, never all in memory.

Each chunk's vectors go to a temporary spool file (float32) for later passes and into a
uniform reservoir sample; when retraining privately, each upload's epsilon and
randomized-response persona (a column of its row) feed ``PrivateSums`` as well.
Distinct devices are counted by the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
from sqlalchemy import Connection, Text, cast, func, select

from edgepersona.edge_models.private_training import PrivateSums
from edgepersona.edge_models.training import Reservoir
from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION

from .schema import aggregates

__all__ = ["CHUNK_ROWS", "Window", "parse_vectors", "read_window"]

CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class Window:
    """The window's device-weeks: counted, sampled, and spooled to a file for later passes."""

    device_weeks: int
    devices: int
    sample: np.ndarray  # float32, a uniform sample of the vectors, in row order
    spool: IO[bytes]  # every vector, float32, in row order
    private: PrivateSums | None  # the uploads' statistics, when retraining privately

    def batches(self, rows: int) -> Iterator[np.ndarray]:
        """Every vector of the window again, ``rows`` at a time, read back from the spool."""
        width = len(FEATURES) * np.dtype(np.float32).itemsize
        self.spool.seek(0)
        while data := self.spool.read(rows * width):
            yield np.frombuffer(data, dtype=np.float32).reshape(-1, len(FEATURES))


def read_window(
    conn: Connection,
    first_week: str,
    last_week: str,
    spool: IO[bytes],
    sample_rows: int,
    seed: int,
    private: PrivateSums | None,
) -> Window:
    """Stream the window's vectors into ``spool`` and a reservoir sample; count devices.

    Rows come in (week, id) order, a fixed order on both databases (on SQLite, the week
    index's own), so the same rows give the same sample and model. The device count is asked
    of the database (a set of ids here would grow with the fleet), over the rows streamed.
    """
    in_window = (
        aggregates.c.week >= first_week,
        aggregates.c.week <= last_week,
        aggregates.c.schema_version == SCHEMA_VERSION,
    )
    query = (
        select(
            aggregates.c.id,
            cast(aggregates.c.features, Text),
            aggregates.c.epsilon,
            aggregates.c.persona,  # the upload's randomized-response label
        )
        .where(*in_window)
        .order_by(aggregates.c.week, aggregates.c.id)
    )
    reservoir = Reservoir(sample_rows, len(FEATURES), seed)
    last_id = 0
    # On the statement: Connection.execution_options would change the connection itself.
    result = conn.execute(query.execution_options(yield_per=CHUNK_ROWS))
    for rows in result.partitions():
        chunk = parse_vectors([row[1] for row in rows])
        spool.write(chunk.tobytes())
        reservoir.add(chunk)
        if private is not None:
            private.add(chunk, np.array([row[2] for row in rows]), [row[3] for row in rows])
        last_id = max(last_id, max(row[0] for row in rows))
    result.close()
    devices = conn.execute(
        select(func.count(aggregates.c.device_id.distinct())).where(
            *in_window, aggregates.c.id <= last_id
        )
    ).scalar_one()
    return Window(reservoir.seen, int(devices), reservoir.rows, spool, private)


def parse_vectors(texts: list[str]) -> np.ndarray:
    """The stored JSON arrays ``texts`` (one feature vector each) as a float32 matrix.

    Parsing is most of a retrain's reading time: one C-level pass over the whole chunk (the
    arrays hold only numbers, so brackets become separators) is a quarter faster than
    ``json.loads`` row by row, and SQLAlchemy's JSON type slower again.
    """
    flat = np.fromstring(",".join(texts).replace("[", "").replace("]", ""), sep=",")
    if flat.size != len(texts) * len(FEATURES):
        raise ValueError(f"stored feature vectors are not {len(FEATURES)} numbers each")
    return flat.astype(np.float32).reshape(len(texts), len(FEATURES))
