"""A fleet of simulated phones, each running the real SDK against a real backend.

Every device is a synthetic user of a known persona (``population``) living week by week:
its trace's signals go through the SDK's public API with the device's own clock, it answers
offers the way its persona does (the default playbook's priors are the true acceptance
rates), and at the end of each week it calls ``sync()``. Some users decline consent: the
share is a parameter. Devices run in worker processes (the SDK's work is per device) and
report what they did, including every request they sent, so callers can check privacy
(nothing beyond the documented payload left) as well as outcomes (persona, model adopted).

Used by the end-to-end tests, ``edgepersona demo`` and ``edgepersona simulate``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import ssl
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from edgepersona.sdk import EdgePersona, InvalidSignalError, ManualClock, SyncSettings

from .bundle import default_playbook
from .population import Device, population, trace_rows

__all__ = [
    "DeviceReport",
    "FleetConfig",
    "Member",
    "Request",
    "fleet_members",
    "live",
    "payloads",
    "run_fleet",
]

SURFACE = "home"
DECISIONS_PER_DAY = 1


@dataclass(frozen=True)
class Member:
    """A simulated user: the device and what the user agreed to."""

    device: Device
    consents: tuple[str, ...]


@dataclass(frozen=True)
class FleetConfig:
    root: Path  # one data directory per device below it
    start: date  # the Monday the fleet's first week starts
    backend_url: str | None
    public_key: bytes | None
    sync_settings: SyncSettings = field(default_factory=SyncSettings)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    wire_bytes: int  # request line, headers and body


@dataclass
class DeviceReport:
    device_id: str
    truth: str
    consents: tuple[str, ...]
    persona: str | None = None
    model_version: int | None = None
    shown: int = 0
    accepted: int = 0
    sync_statuses: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    epsilon_spent: float = 0.0


def fleet_members(
    n: int, *, seed: int = 0, decline_sync: float = 0.2, decline_personalization: float = 0.05
) -> list[Member]:
    """``n`` users of the synthetic population; the given shares decline those purposes."""
    rng = random.Random(seed ^ 0x5EED)
    members = []
    for device in population(n, seed=seed):
        consents = ["location"]
        if rng.random() >= decline_personalization:
            consents.append("personalization")
        if rng.random() >= decline_sync:
            consents.append("sync")
        members.append(Member(device, tuple(consents)))
    return members


def run_fleet(
    members: Sequence[Member],
    config: FleetConfig,
    first_week: int,
    weeks: int,
    *,
    decisions_after: int = 0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[DeviceReport]:
    """Live ``weeks`` weeks from week ``first_week`` (0-based) on every device, in order."""
    jobs = [(m, config, first_week, weeks, decisions_after) for m in members]
    reports = []
    if workers <= 1:
        for done, job in enumerate(jobs, start=1):
            reports.append(_live_job(job))
            if progress is not None:
                progress(done)
        return reports
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, report in enumerate(pool.map(_live_job, jobs, chunksize=2), start=1):
            reports.append(report)
            if progress is not None:
                progress(done)
    return reports


def _live_job(job: tuple[Member, FleetConfig, int, int, int]) -> DeviceReport:
    return live(*job)


def live(
    member: Member, config: FleetConfig, first_week: int, weeks: int, decisions_after: int = 0
) -> DeviceReport:
    """One device lives ``weeks`` weeks, syncing after each; then ``decisions_after`` more
    decisions (so a model that arrived runs its shadow period) and a last sync."""
    device = member.device
    report = DeviceReport(device.device_id, device.persona_id, member.consents)
    network = _Recorder(report.requests)
    zone = ZoneInfo(device.tz)  # weeks are the device's local weeks, as its uploads' are
    week_start = datetime.combine(
        config.start + timedelta(weeks=first_week), datetime.min.time(), zone
    )
    clock = ManualClock(week_start.timestamp())
    rng = random.Random(device.seed ^ first_week)
    offers = sorted(default_playbook()["offers"])
    accept_rates = _acceptance(device.persona_id)
    sdk = EdgePersona.open(
        config.root / device.device_id,
        "com.example.shop",
        clock=clock,
        tz=device.tz,
        backend_url=config.backend_url,
        public_key=config.public_key,
        transport=network,
        sync_settings=config.sync_settings,
        seed=device.seed % 2**32,
    )
    try:
        for purpose in member.consents:
            if not sdk.consent.status(purpose):
                sdk.consent.grant(purpose)
        for week in range(weeks):
            start = _local(week_start, weeks=week)
            last_day = -1
            for row in trace_rows(device, start=start.date(), weeks=1):
                ts = _timestamp(row["ts"])
                if ts < start.timestamp():
                    continue
                clock.set(max(ts, clock.time()))
                _signal(sdk, row)
                day = int((ts - start.timestamp()) // 86400)
                if day != last_day:
                    last_day = day
                    for _ in range(DECISIONS_PER_DAY):
                        _answer_offers(sdk, offers, accept_rates, rng, report)
            clock.set(max(_local(start, weeks=1, hours=1).timestamp(), clock.time()))
            report.sync_statuses.append(sdk.sync(force=True).status)
        for _ in range(decisions_after):
            sdk.decide(SURFACE, offers)
        if decisions_after:
            report.sync_statuses.append(sdk.sync(force=True).status)
        estimate = sdk.persona()
        report.persona = estimate.id if estimate is not None else None
        report.model_version = sdk.model_status()["version"]
        report.epsilon_spent = sdk.sync_status()["epsilon"]["spent_all_time"]
    finally:
        sdk.close()
    return report


def _signal(sdk: EdgePersona, row: dict[str, Any]) -> None:
    kind, ts, tz = row["kind"], _timestamp(row["ts"]), row.get("tz")
    with contextlib.suppress(InvalidSignalError):  # a row the SDK refuses is skipped
        if kind == "location":
            sdk.record_location(
                row["lat"], row["lon"], row.get("accuracy_m"), row.get("speed_mps"), ts=ts, tz=tz
            )
        elif kind == "app":
            sdk.track_app(
                row["app"],
                ts=ts,
                category=row.get("category"),
                duration_s=row.get("duration_s"),
                tz=tz,
            )
        elif kind == "screen":
            sdk.track_screen(row["name"], ts=ts, duration_s=row.get("duration_s"), tz=tz)
        elif kind == "event":
            sdk.track_event(row["name"], row.get("value"), ts=ts, tz=tz)


def _local(moment: datetime, **delta: float) -> datetime:
    """``moment + delta`` on the local wall clock (a day stays a day across a DST change)."""
    return (moment.replace(tzinfo=None) + timedelta(**delta)).replace(tzinfo=moment.tzinfo)


def _timestamp(value: object) -> float:
    """Trace rows hold Unix seconds or ISO-8601 with an offset (the trace format's two forms)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value)  # type: ignore[arg-type]


def _answer_offers(
    sdk: EdgePersona,
    offers: list[str],
    accept_rates: dict[str, float],
    rng: random.Random,
    report: DeviceReport,
) -> None:
    decision = sdk.decide(SURFACE, offers)
    if not decision.offers:
        return
    top = decision.offers[0]
    report.shown += 1
    accepted = rng.random() < accept_rates.get(top, 0.0)
    report.accepted += accepted
    sdk.feedback(decision, top, "accepted" if accepted else "dismissed")


def _acceptance(persona_id: str) -> dict[str, float]:
    """The user's true acceptance rate per offer: the default playbook's prior means."""
    priors = default_playbook()["priors"].get(persona_id, {})
    return {offer: a / (a + b) for offer, (a, b) in priors.items()}


class _Recorder(httpx.HTTPTransport):
    """Real HTTP, with every request the device sends kept for the report."""

    def __init__(self, sink: list[Request]) -> None:
        super().__init__(verify=_ssl_context())
        self._sink = sink

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        head = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items()
        )
        self._sink.append(
            Request(request.method, request.url.path, body, len(head) + 2 + len(body))
        )
        return super().handle_request(request)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One per process: loading the CA store costs ~70 ms, more than a device's week of sync."""
    return ssl.create_default_context()


def payloads(reports: Sequence[DeviceReport]) -> Iterator[dict[str, Any]]:
    """Every upload body the fleet sent, parsed."""
    for report in reports:
        for request in report.requests:
            if request.path == "/v1/aggregates":
                yield json.loads(request.body)
