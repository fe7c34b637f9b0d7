"""/metrics under ``edgepersona backend serve --workers 2``: each scrape sums both workers.

A half-sent request keeps one worker busy reading it, so the next requests are served by the
other worker; then the first request is finished. The counters of both worker processes (their
files in ``PROMETHEUS_MULTIPROC_DIR``) have served requests, and every scrape, whichever worker
answers it, shows the totals of both, including the scrapes before it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

REGISTRATIONS = 12
EDGEPERSONA = Path(sys.executable).with_name("edgepersona")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn with two workers; its URL and its metrics directory."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("EDGEPERSONA_")}
    env |= {
        "EDGEPERSONA_DATABASE_URL": f"sqlite:///{tmp_path / 'backend.db'}",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    command = [str(EDGEPERSONA), "backend", "serve", "--workers", "2", "--port", str(port)]
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process)
        yield url, shared
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited; see gunicorn.log in the test's tmp_path"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)  # not listening yet: poll again
    pytest.fail("the service did not answer /healthz within 60 s")


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
