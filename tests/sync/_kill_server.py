"""Test-only WSGI wrapper: the backend dies (SIGKILL) right after it committed an upload.

Serve it under gunicorn, started in a session of its own (``start_new_session=True``)::

    gunicorn --workers 1 "tests.sync._kill_server:create('sqlite:///b.db', '/tmp/x/arm')"

While the file ``arm`` exists, the first ``POST /v1/aggregates`` answered with a 2xx deletes
it and then kills the whole server (master and worker, one process group) with SIGKILL. The
view's transaction has committed by then (the app has returned), and no byte of the answer has
left: gunicorn's ``start_response`` is only called after the decision, and nothing is written
before it. So the upload is stored and the device sees the connection drop, as when a server
is killed by the OOM killer or a power cut between its commit and its answer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgepersona.backend import create_app

StartResponse = Callable[..., Any]
Wsgi = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def create(database_url: str, arm_file: str, upload_flush: str = "each") -> Wsgi:
    """The backend on ``database_url`` (tables already made), armed by ``arm_file``, with
    ``EDGEPERSONA_UPLOAD_FLUSH`` set to ``upload_flush``."""
    if os.getpgrp() != os.getppid():
        raise RuntimeError(
            "start gunicorn in a session of its own (start_new_session=True): the kill takes "
            "down this process group, which must be the server's alone"
        )
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "RATE_LIMIT_UPLOADS_PER_HOUR": 1000,
            "UPLOAD_FLUSH": upload_flush,
        }
    )
    arm = Path(arm_file)

    def dying(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answered: list[tuple[Any, ...]] = []
        body = app(environ, lambda *args: answered.append(args))  # held back, not sent
        status = str(answered[0][0])
        if (
            environ["REQUEST_METHOD"] == "POST"
            and environ["PATH_INFO"] == "/v1/aggregates"
            and status.startswith("2")
            and arm.exists()
        ):
            arm.unlink()  # once: the restarted server answers normally
            os.killpg(os.getpgrp(), signal.SIGKILL)
        start_response(*answered[0])
        return body

    return dying
