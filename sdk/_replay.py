"""Replaying a recorded trace through the public API, as if the signals arrived live.

The replay's clock follows the trace (never past the wall clock), so retention, "a day in the
future" checks and everything computed at the end see the trace's own time. Each row is one
API call: validation happens before anything is buffered, so a bad row is skipped whole and
reported with its line number, and the replay goes on.
"""

from __future__ import annotations

import io
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from . import _trace
from ._api import EdgePersona
from ._store import Settings
from ._validate import EARLIEST_TS, MAX_FUTURE_S
from .clock import ManualClock, SystemClock
from .errors import InvalidSignalError

MAX_REJECTED_LISTED = 1000  # the rest are counted; a file of garbage must not fill memory
BATCH_ROWS = 1000  # the default flush_max_rows: larger batches measured no faster
# A replay is a bulk import: it commits every BATCH_ROWS rows on its own thread (the store's
# backpressure path) and never wakes the writer thread, which would only contend with it for
# the GIL at each SQLite call; everything else is the defaults a live app gets.
_BULK = Settings(
    max_buffered_rows=BATCH_ROWS, flush_max_rows=BATCH_ROWS + 1, flush_interval_s=86_400.0
)
_REPLAY_POLICY = "replay"


@dataclass
class ReplayReport:
    """What a replay did; ``as_dict()`` is the ``--json`` output."""

    trace: str
    ingested: int = 0
    duplicates: int = 0
    dropped_no_consent: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    start: float | None = None
    end: float | None = None
    seconds: float = 0.0
    consent_granted: list[str] = field(default_factory=list)
    data_dir: str | None = None
    daily_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    places: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    persona: dict[str, Any] | None = None
    moment: dict[str, Any] = field(default_factory=dict)
    model_version: int | None = None

    def reject(self, line: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_LISTED:
            self.rejected.append({"line": line, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        rows = self.ingested + self.duplicates + self.dropped_no_consent + self.rejected_count
        return {
            "trace": self.trace,
            "ingested": self.ingested,
            "rejected": self.rejected,
            "rejected_count": self.rejected_count,
            "rejected_truncated": self.rejected_count > len(self.rejected),
            "duplicates": self.duplicates,
            "dropped_no_consent": self.dropped_no_consent,
            "counts": {kind: self.counts.get(kind, 0) for kind in _trace.KINDS},
            "span": {"start": _iso(self.start), "end": _iso(self.end)},
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(rows / self.seconds) if self.seconds > 0 else None,
            "consent_granted_by_replay": self.consent_granted,
            "data_dir": self.data_dir,
            "daily_counts": self.daily_counts,
            "places": [
                {
                    **place,
                    "visits": [
                        {**visit, "start": _iso(visit["start"]), "end": _iso(visit["end"])}
                        for visit in place["visits"]
                    ],
                }
                for place in self.places
            ],
            "features": self.features,
            "persona": self.persona,
            "moment": self.moment,
            "model_version": self.model_version,
        }


def replay(
    trace: Path,
    data_dir: Path,
    *,
    tz: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Feed ``trace`` into the SDK database in ``data_dir`` and report what happened.

    ``progress`` is called now and then with the number of bytes read so far.

    Raises:
        TraceError: the file cannot be read at all (a bad row is reported, not raised).
        InvalidSignalError: ``tz`` is not a valid zone.
        StoreError: the database cannot be opened.
    """
    report = ReplayReport(trace=str(trace))
    latest = SystemClock().time() + MAX_FUTURE_S  # the newest time a row may have
    clock = ManualClock(EARLIEST_TS)  # moves with the trace's rows
    stream, kind = _trace.open_trace(trace)
    started = time.perf_counter()
    with (
        stream,
        EdgePersona.open(data_dir, "edgepersona-replay", clock=clock, tz=tz, settings=_BULK) as sdk,
    ):
        for purpose in ("personalization", "location"):
            if not sdk.consent.status(purpose):
                sdk.consent.grant(purpose, policy_version=_REPLAY_POLICY, source="replay")
                report.consent_granted.append(purpose)
        methods: dict[str, Callable[..., bool]] = {
            "location": sdk.record_location,
            "app": sdk.track_app,
            "screen": sdk.track_screen,
            "event": sdk.track_event,
        }
        dropped_before = sdk.stats()["dropped"]
        counts = dict.fromkeys(_trace.KINDS, 0)
        start, end = math.inf, -math.inf
        for number, signal in _trace.signals(stream, kind, tz):
            if progress is not None and number % 65536 == 0:
                progress(cast(io.BufferedIOBase, stream.buffer).tell())
            if isinstance(signal, str):
                report.reject(number, signal)
                continue
            signal_kind, ts, signal_tz, args, kwargs = signal
            # A corrupt far-future row must not drag the replay's clock (and with it
            # retention) forward; the API then rejects it against the unmoved clock.
            if ts <= latest:
                clock.set(ts)
            try:
                if kwargs:
                    kept = methods[signal_kind](*args, ts=ts, tz=signal_tz, **kwargs)
                else:  # fixes and events: no keyword dict to merge into the call
                    kept = methods[signal_kind](*args, ts=ts, tz=signal_tz)
            except InvalidSignalError as exc:
                report.reject(number, str(exc))
                continue
            if kept:
                counts[signal_kind] += 1
                if ts < start:
                    start = ts
                if ts > end:
                    end = ts
        report.counts.update(counts)
        report.ingested = sum(counts.values())
        if report.ingested:
            report.start, report.end = start, end
        dropped = Counter(sdk.stats()["dropped"]) - Counter(dropped_before)
        report.duplicates = sum(n for key, n in dropped.items() if key.endswith(".duplicate"))
        report.dropped_no_consent = sum(
            n for key, n in dropped.items() if key.endswith(".no_consent")
        )
        sdk.flush()
        report.daily_counts = sdk.daily_counts(days=10_000)
        report.places = sdk.places()
        report.features = sdk.features()
        report.moment = sdk.context().as_dict() if report.ingested else {}
        estimate = sdk.persona()
        if estimate is not None:
            report.persona = {
                "id": estimate.id,
                "name": estimate.name,
                "probabilities": estimate.probabilities,
            }
            report.model_version = estimate.model_version
    report.seconds = time.perf_counter() - started
    report.data_dir = str(data_dir)
    return report


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()
