"""/metrics under ``edgepersona backend serve --workers 2``: each scrape sums both workers.

A half-sent request keeps one worker busy reading it, so the next requests are served by the
other worker; then the first request is finished. The counters of both worker processes (their
files in ``PROMETHEUS_MULTIPROC_DIR``) have served requests, and every scrape, whichever worker
answers it, shows the totals of both, including the scrapes before it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from .gunicorn_service import backend_env, backend_serve

REGISTRATIONS = 12


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn with two workers; its URL and its metrics directory."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = backend_env(
        {
            "EDGEPERSONA_DATABASE_URL": f"sqlite:///{tmp_path / 'backend.db'}",
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        }
    )
    with backend_serve(env, tmp_path / "gunicorn.log") as url:
        yield url, shared


def count(text: str, endpoint: str, status: str) -> int:
    labels = rf'endpoint="{re.escape(endpoint)}",method="\w+",status="{status}"'
    pattern = rf"edgepersona_http_requests_total\{{{labels}\}} (\d+)"
    return sum(int(found) for found in re.findall(pattern, text))


@pytest.mark.slow
def test_every_scrape_sums_the_counters_of_both_workers(service: tuple[str, Path]) -> None:
    url, shared = service
    host, port = url.removeprefix("http://").split(":")
    before = count(httpx.get(f"{url}/metrics").text, "ops.healthz", "200")
    with socket.create_connection((host, int(port))) as held:
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")  # the worker waits for more
        for _ in range(REGISTRATIONS):
            assert httpx.post(f"{url}/v1/devices").status_code == 201
        held.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := held.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")

    served = {}
    for path in shared.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)
        served[path.name] = sum(
            sample.value
            for family in merged
            if family.name == "edgepersona_http_requests"
            for sample in family.samples
        )
    assert sum(1 for requests in served.values() if requests > 0) >= 2, served

    for scrape in range(4):
        text = httpx.get(f"{url}/metrics").text
        assert count(text, "devices.register", "201") == REGISTRATIONS
        assert count(text, "ops.healthz", "200") == before + 1
        assert count(text, "ops.prometheus", "200") == 1 + scrape  # the scrapes before this
