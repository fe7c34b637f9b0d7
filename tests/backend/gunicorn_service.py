"""The backend served by real gunicorn processes, for the tests that need worker processes.

One way to start, wait for and stop such a server, so that every test runs it as an operator
would and none leaves gunicorn's control socket behind in the home directory.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

EDGEPERSONA = Path(sys.executable).with_name("edgepersona")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def backend_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without the developer's own EDGEPERSONA_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("EDGEPERSONA_")}
    return env | settings


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log: Path, url: str) -> Iterator[None]:
    """Run ``command`` (its output into ``log``) until the block ends, once ``url`` answers."""
    with log.open("a") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(url, process)
            yield
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextlib.contextmanager
def backend_serve(env: dict[str, str], log: Path, workers: int = 2) -> Iterator[str]:
    """``edgepersona backend serve`` on a free loopback port until the block ends; its URL."""
    port = free_port()
    command = [str(EDGEPERSONA), "backend", "serve", "--workers", str(workers)]
    with running([*command, "--port", str(port)], env, log, f"http://127.0.0.1:{port}"):
        yield f"http://127.0.0.1:{port}"


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited; see its log in the test's tmp_path"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)  # not listening yet: poll again
    pytest.fail("the service did not answer /healthz within 60 s")
