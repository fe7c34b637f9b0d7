"""Real SDK devices for bench/load.py: a sample of the fleet runs ``EdgePersona`` itself.

Each is a synthetic phone of ``edgepersona.edge_models.population`` living its weeks as in
bench/sync.py (``_sync_devices``: the trace's rows through the SDK's public API, a decision
every six hours, some offers answered) and calling ``sync()`` every Monday, so registration,
the upload queue, noise, ETag polling, bundle verification and the retry schedule are the
SDK's own code. A failed ``sync()`` is retried as an app would: the device's clock is moved to
the ``next_attempt_at`` the SDK set (the backoff, or ``Retry-After``) and ``sync()`` called
again, so waits cost no real time. The sample runs in a child process (``run_sdk_devices``)
beside the lightweight fleet's event loop, which it would otherwise stall.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _sync_devices import _live_until, _open_phone, _sync_instant
from _sync_loopback import CountingTransport, Loopback

from edgepersona.edge_models.population import population
from edgepersona.sdk import ManualClock

RETRIES = 20  # sync() calls per week after a failure before the device is counted stuck


@dataclass
class UploadLog(CountingTransport):
    """``CountingTransport`` that also keeps the ``upload_id`` of every upload answered, and
    the network errors (which raise before an exchange is logged)."""

    answered_uploads: list[tuple[str, int]] = field(default_factory=list)  # (id, status)
    sent_ids: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        upload_id = None
        if request.url.path == "/v1/aggregates":
            upload_id = json.loads(request.read())["upload_id"]
            self.sent_ids.add(upload_id)
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            self.errors[f"{request.method} {request.url.path} {type(exc).__name__}"] += 1
            raise
        if upload_id is not None:
            self.answered_uploads.append((upload_id, response.status_code))
        return response


def code_state() -> dict[str, Any]:
    """The commit measured and the parts with uncommitted changes: helpers share one
    working tree, so a figure belongs to what was on disk when it ran."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout

    changed = git("status", "--porcelain", "--", "sdk", "backend", "edge_models", "bench")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted_changes_in": sorted({line[3:] for line in changed.splitlines()}),
    }


def first_monday(weeks: int) -> dt.date:
    """The Monday ``weeks`` weeks before the current week's, moved back one more week while
    the last sync (Monday 12:00 UTC after the last week, ``_sync_instant``) would be in the
    future: a server on the wall clock refuses uploads of weeks to come."""
    today = dt.datetime.now(dt.timezone.utc)
    monday = today.date() - dt.timedelta(days=today.weekday())
    if today < dt.datetime.combine(monday, dt.time(12), dt.timezone.utc):
        monday -= dt.timedelta(weeks=1)
    return monday - dt.timedelta(weeks=weeks)


def run_sdk_devices(
    url: str, public_key: bytes, count: int, start: dt.date, weeks: int, seed: int
) -> dict[str, Any]:
    """``count`` real SDK phones live ``weeks`` weeks from Monday ``start`` and sync after
    each; what they sent and were told (picklable, for the parent process)."""
    began = time.perf_counter()
    statuses: Counter[str] = Counter()  # the last sync() of each device-week
    retried: Counter[str] = Counter()  # sync() calls that failed and were called again
    sync_ms: list[float] = []
    backend = Loopback(url, public_key, ManualClock(0.0))  # the clock is the server's: unused
    with tempfile.TemporaryDirectory(prefix="ep-load-sdk-") as tmp, ExitStack() as stack:
        transports = [UploadLog() for _ in range(count)]
        phones = [
            _open_phone(Path(tmp), backend, device, transport, start, weeks, stack)
            for device, transport in zip(population(count, seed=seed), transports, strict=True)
        ]
        for week in range(weeks):
            sync_at = _sync_instant(start, week)
            for phone in phones:
                _live_until(phone, sync_at)
                phone.clock.set(sync_at)
                started = time.perf_counter()
                result = phone.sdk.sync()
                for _ in range(RETRIES):
                    if result.status not in ("offline", "server_error", "backing_off"):
                        break
                    retried[result.status] += 1
                    phone.clock.set(result.next_attempt_at or phone.clock.time())
                    result = phone.sdk.sync()
                sync_ms.append((time.perf_counter() - started) * 1000)
                statuses[result.status] += 1
        rows_fed = sum(p.rows_fed for p in phones)
    exchanges = [e for t in transports for e in t.log]
    return {
        "devices": count,
        "weeks": weeks,
        "rows_fed": rows_fed,
        "sync_statuses": dict(statuses),
        "sync_retried_after": dict(retried),
        "sync_ms": sync_ms,
        "requests": dict(Counter(f"{e.method} {e.path} {e.status}" for e in exchanges)),
        "latency_s": [(f"{e.method} {e.path}", e.seconds) for e in exchanges],
        "errors": dict(sum((t.errors for t in transports), Counter())),
        "sent_ids": sorted(set().union(*(t.sent_ids for t in transports))),
        "answered_uploads": [a for t in transports for a in t.answered_uploads],
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time(),  # this child process's, start to end
    }
