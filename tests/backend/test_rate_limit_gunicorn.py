"""The rate limit under ``edgepersona backend serve --workers 2``, on SQLite and PostgreSQL.

One device fires many distinct uploads at once over several connections, so both worker
processes charge the same device row at the same moment: exactly the burst is stored, every
other upload gets 429 with a ``Retry-After`` within one refill interval, and the counters of
both workers (their files in ``PROMETHEUS_MULTIPROC_DIR``) show that both took uploads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import create_engine, func, select

from edgepersona.backend.schema import aggregates

from .conftest import valid_payload
from .gunicorn_service import backend_env, backend_serve

LIMIT = 5  # one upload back every 720 s: the test never sees a refill
UPLOADS = 40
CONNECTIONS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'backend.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn with two workers; its URL and its metrics directory."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = backend_env(
        {
            "EDGEPERSONA_DATABASE_URL": database_url,
            "EDGEPERSONA_RATE_LIMIT_UPLOADS_PER_HOUR": str(LIMIT),
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        }
    )
    with backend_serve(env, tmp_path / "gunicorn.log") as url:
        yield url, shared


def uploads_per_worker(shared: Path) -> list[float]:
    """How many uploads each worker process answered, from its counter file."""
    answered = []
    for path in shared.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)
        answered.append(
            sum(
                sample.value
                for family in merged
                if family.name == "edgepersona_http_requests"
                for sample in family.samples
                if sample.labels.get("endpoint") == "ingest.upload"
            )
        )
    return answered


@pytest.mark.slow
def test_concurrent_uploads_on_two_workers_store_exactly_the_burst(
    service: tuple[str, Path], database_url: str
) -> None:
    url, shared = service
    token = httpx.post(f"{url}/v1/devices").json()["token"]
    year, week, _ = dt.datetime.now(dt.timezone.utc).isocalendar()
    payloads = [valid_payload(week=f"{year}-W{week:02d}") for _ in range(UPLOADS)]

    with (
        httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=CONNECTIONS),
        ) as client,
        ThreadPoolExecutor(CONNECTIONS) as pool,
    ):
        answers = list(pool.map(lambda p: client.post("/v1/aggregates", json=p), payloads))

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(201) == LIMIT, statuses
    assert statuses.count(429) == UPLOADS - LIMIT, statuses
    waits = [int(a.headers["Retry-After"]) for a in answers if a.status_code == 429]
    assert all(1 <= wait <= 3600 / LIMIT for wait in waits), waits
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(aggregates)).scalar_one() == LIMIT
    engine.dispose()
    assert sum(n > 0 for n in uploads_per_worker(shared)) == 2
