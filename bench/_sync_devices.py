"""Sync devices, for bench/sync.py: real SDK phones live synthetic weeks and ``sync()`` every
Monday with the loopback backend (``_sync_loopback``); what each sync sent, got and took.

Devices are synthetic phones (``edgepersona.edge_models.population``) whose trace rows go
through the same parser and SDK methods as ``edgepersona replay``; the host app asks for a
decision every six hours and the user answers some offers. Each device has its own
``ManualClock``, set to each row's time as it lives its week; for the syncs every device and
the server are at Monday 12:00 UTC (the previous week is over in every simulated zone). The
first sync registers and downloads model v2; every later one is the steady state, one upload
and one manifest poll answered 304.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _sync_loopback import CountingTransport, Exchange, Loopback

from edgepersona.edge_models.bundle import DEFAULT_BUNDLE_DIR
from edgepersona.edge_models.population import Device, population, trace_rows
from edgepersona.sdk import EdgePersona, ManualClock
from edgepersona.sdk._trace import parse
from edgepersona.sdk._uploads import encode
from edgepersona.sdk.errors import InvalidSignalError

DECISION_EVERY_S = 6 * 3600.0
SYNC_HOUR_UTC = 12


@dataclass
class SyncSample:
    device: int
    week: int
    status: str
    seconds: float
    exchanges: list[Exchange]
    upload: dict[str, Any] | None  # last_upload(): the payload and its size as the SDK says


@dataclass
class Run:
    samples: list[SyncSample]
    rows_fed: int
    rows_refused: int
    healthz_seconds: list[float]  # the reference: one GET /healthz after each steady sync


@dataclass
class _Phone:
    sdk: EdgePersona
    clock: ManualClock
    rows: Iterator[dict[str, object]]
    offers: list[str]
    rng: random.Random
    pending: dict[str, object] | None = None
    next_decision: float = 0.0
    rows_fed: int = 0
    rows_refused: int = 0


def run_devices(
    tmp: Path, backend: Loopback, devices: int, weeks: int, start: dt.date, seed: int
) -> Run:
    """``devices`` phones live ``weeks`` weeks from Monday ``start``; each syncs every Monday.

    After each steady-state sync, one ``GET /healthz`` (it reads the database, writes nothing)
    is timed on the same server through a kept-alive connection: the reference for what the
    loopback server costs, measured interleaved with the syncs.
    """
    fleet = population(devices, seed=seed)
    samples: list[SyncSample] = []
    healthz: list[float] = []
    with ExitStack() as stack:
        transports = [CountingTransport() for _ in fleet]
        for transport in transports:
            stack.callback(transport.close)
        reference = stack.enter_context(httpx.Client(base_url=backend.url, timeout=30))
        reference.get("/healthz").raise_for_status()  # opens the connection
        phones = [
            _open_phone(tmp, backend, device, transport, start, weeks, stack)
            for device, transport in zip(fleet, transports, strict=True)
        ]
        for week in range(weeks):
            sync_at = _sync_instant(start, week)
            for index, (phone, transport) in enumerate(zip(phones, transports, strict=True)):
                _live_until(phone, sync_at)
                phone.clock.set(sync_at)
                backend.clock.set(sync_at)
                phone.sdk.flush()
                before = len(transport.log)
                started = time.perf_counter_ns()
                result = phone.sdk.sync()
                seconds = (time.perf_counter_ns() - started) / 1e9
                upload = phone.sdk.last_upload()
                samples.append(
                    SyncSample(
                        index,
                        week,
                        result.status,
                        seconds,
                        transport.log[before:],
                        upload,
                    )
                )
                if week > 0:
                    started = time.perf_counter_ns()
                    reference.get("/healthz").raise_for_status()
                    healthz.append((time.perf_counter_ns() - started) / 1e9)
        return Run(
            samples,
            sum(p.rows_fed for p in phones),
            sum(p.rows_refused for p in phones),
            healthz,
        )


def _open_phone(
    tmp: Path,
    backend: Loopback,
    device: Device,
    transport: CountingTransport,
    start: dt.date,
    weeks: int,
    stack: ExitStack,
) -> _Phone:
    the_day_before = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    clock = ManualClock(the_day_before.timestamp())  # before the first row in any zone
    sdk = EdgePersona.open(
        tmp / device.device_id,
        "com.example.shop",
        clock=clock,
        tz=device.tz,
        backend_url=backend.url,
        public_key=backend.public_key,
        transport=transport,
        seed=device.seed,
    )
    stack.callback(sdk.close)
    for purpose in ("personalization", "location", "sync"):
        sdk.consent.grant(purpose)
    offers = sorted(json.loads((DEFAULT_BUNDLE_DIR / "playbook.json").read_text())["offers"])
    rows = trace_rows(device, start=start, weeks=weeks)
    return _Phone(sdk, clock, rows, offers, random.Random(device.seed))


def _live_until(phone: _Phone, until: float) -> None:
    """Feed the phone's rows before ``until`` as replay does, deciding every six hours."""
    methods: dict[str, Callable[..., bool]] = {
        "location": phone.sdk.record_location,
        "app": phone.sdk.track_app,
        "screen": phone.sdk.track_screen,
        "event": phone.sdk.track_event,
    }
    while True:
        row = phone.pending if phone.pending is not None else next(phone.rows, None)
        phone.pending = None
        if row is None:
            return
        signal = parse(row, None)
        if signal.ts >= until:
            phone.pending = row
            return
        phone.clock.set(signal.ts)
        phone.rows_fed += 1
        try:
            methods[signal.kind](*signal.args, ts=signal.ts, tz=signal.tz, **signal.kwargs)
        except InvalidSignalError:
            phone.rows_refused += 1
        if signal.ts >= phone.next_decision:
            phone.next_decision = signal.ts + DECISION_EVERY_S
            _decide(phone)


def _decide(phone: _Phone) -> None:
    decision = phone.sdk.decide("home", phone.offers)
    answer = phone.rng.random()
    if decision.offers and answer < 0.6:
        phone.sdk.feedback(
            decision, decision.offers[0], "accepted" if answer < 0.3 else "dismissed"
        )


def _sync_instant(start: dt.date, week: int) -> float:
    """Monday 12:00 UTC after week ``week`` (0-based) of the trace that starts on ``start``."""
    monday = start + dt.timedelta(days=7 * (week + 1))
    moment = dt.datetime.combine(monday, dt.time(SYNC_HOUR_UTC), dt.timezone.utc)
    return moment.timestamp()


STEADY = ("POST /v1/aggregates 201", "GET /v1/models/current 304")


def wire_figures(samples: list[SyncSample]) -> dict[str, Any]:
    """Bytes per request kind, per steady-state week, and the first sync's extra cost."""
    steady = [s for s in samples if s.week > 0]
    first = [s for s in samples if s.week == 0]
    by_kind: dict[str, list[Exchange]] = {}
    for sample in samples:
        for exchange in sample.exchanges:
            by_kind.setdefault(exchange.kind, []).append(exchange)
    uploads = [e for s in steady for e in s.exchanges if e.kind == STEADY[0]]
    sdk_sizes = [s.upload["bytes"] if s.upload else None for s in steady]
    return {
        "requests": {kind: _request_sizes(ex) for kind, ex in sorted(by_kind.items())},
        "steady_state_week": {
            "device_weeks": len(steady),
            "device_weeks_with_exactly_one_upload_and_one_304_poll": sum(
                _shape(s) == STEADY for s in steady
            ),
            "upload_body_bytes": _spread([e.sent_body for e in uploads]),
            "upload_head_bytes": _spread([e.sent_head for e in uploads]),
            "upload_request_bytes": _spread([e.sent for e in uploads]),
            "model_poll_request_bytes": _spread(
                [e.sent for s in steady for e in s.exchanges if e.kind == STEADY[1]]
            ),
            "sent_bytes_per_device_week": _spread(
                [sum(e.sent for e in s.exchanges) for s in steady]
            ),
            "received_bytes_per_device_week": _spread(
                [sum(e.received for e in s.exchanges) for s in steady]
            ),
            "upload_body_equals_sdk_last_upload_bytes": [e.sent_body for e in uploads] == sdk_sizes,
            "upload_body_parts_bytes": _parts([s.upload["payload"] for s in steady if s.upload]),
        },
        "first_sync": {
            "devices": len(first),
            "requests": sorted({" + ".join(_shape(s)) for s in first}),
            "sent_bytes": _spread([sum(e.sent for e in s.exchanges) for s in first]),
            "received_bytes": _spread([sum(e.received for e in s.exchanges) for s in first]),
        },
    }


def timing_figures(run: Run) -> dict[str, Any]:
    """Wall time of ``sync()`` in the steady state (an upload and a 304 poll), the part of it
    spent waiting on the two HTTP exchanges (loopback and the server's work), and the
    reference request interleaved with them."""
    steady = [s for s in run.samples if s.week > 0 and _shape(s) == STEADY]
    first = [s.seconds for s in run.samples if s.week == 0]
    return {
        "syncs": len(steady),
        "sync_ms": _percentiles([s.seconds for s in steady]),
        "in_http_exchanges_ms": _percentiles([sum(e.seconds for e in s.exchanges) for s in steady]),
        "upload_exchange_ms": _percentiles([s.exchanges[0].seconds for s in steady]),
        "model_poll_exchange_ms": _percentiles([s.exchanges[1].seconds for s in steady]),
        "on_device_ms": _percentiles(
            [s.seconds - sum(e.seconds for e in s.exchanges) for s in steady]
        ),
        "reference_healthz_round_trip_ms": _percentiles(run.healthz_seconds),
        "first_sync_ms": _percentiles(first),
        "statuses": sorted({s.status for s in run.samples}),
    }


def _shape(sample: SyncSample) -> tuple[str, ...]:
    return tuple(e.kind for e in sample.exchanges)


def _parts(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Median bytes of the body's parts, as the SDK encodes them: where the size goes."""
    if not payloads:
        return {}

    def median(values: list[int]) -> int:
        return sorted(values)[len(values) // 2]

    def size(value: object) -> int:
        return len(json.dumps(value, separators=(",", ":")).encode())

    features = [size(p["features"]) + len('"features":,') for p in payloads]
    outcomes = [size(p["outcomes"]) + len('"outcomes":,') for p in payloads]
    labels = [
        sum(size(label) + len('"persona":,') for label in _persona_labels(p)) for p in payloads
    ]
    whole = [len(encode(p).encode()) for p in payloads]
    return {
        "features": median(features),
        "outcomes": median(outcomes),
        "persona_label_wherever_it_is": median(labels),
        "other_fields": median(
            [w - f - o for w, f, o in zip(whole, features, outcomes, strict=True)]
        ),
        "outcome_rows": median([len(p["outcomes"]) for p in payloads]),
    }


def _persona_labels(payload: dict[str, Any]) -> list[str]:
    """Every copy of the persona label in the body: once at the top (the current format) or
    once per outcome row (the format before it; both are measured while the change lands)."""
    if "persona" in payload:
        return [payload["persona"]]
    return [o["persona"] for o in payload["outcomes"] if "persona" in o]


def _request_sizes(exchanges: list[Exchange]) -> dict[str, Any]:
    return {
        "count": len(exchanges),
        "sent_head_bytes": _spread([e.sent_head for e in exchanges]),
        "sent_body_bytes": _spread([e.sent_body for e in exchanges]),
        "received_bytes": _spread([e.received for e in exchanges]),
    }


def _spread(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"median": ordered[len(ordered) // 2], "min": ordered[0], "max": ordered[-1]}


def _percentiles(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ms = sorted(s * 1000 for s in seconds)
    n = len(ms)
    return {
        "p50": round(ms[n // 2], 2),
        "p99": round(ms[min(n - 1, int(n * 0.99))], 2),
        "max": round(ms[-1], 2),
    }
