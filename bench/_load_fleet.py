"""Lightweight devices for bench/load.py: thousands of phones' sync traffic from one asyncio
process, built from the SDK's own payload and retry code.

A ``LightDevice`` does per simulated week what ``Syncer.sync()`` does on a phone, minus the
local database: register once through ``POST /v1/devices``; queue the week's upload, built by
``edgepersona.sdk._uploads.build_payload`` (clipping, Laplace noise, randomized-response
persona, every playbook offer) and encoded by ``encode``; send the queue oldest first; then
poll ``GET /v1/models/current`` with the ETag of the last manifest (a new version's bundle is
downloaded once). Answers are handled as ``Syncer`` handles them: 2xx removes the upload (201
stored, 200 already stored), 400/401/403/410/413/422 drop it (401 and 410 also forget the
registration), and 408, 429, 5xx and network errors keep it and end the round; the device then
waits ``sdk._backoff.next_delay`` with the SDK's default settings (``Retry-After`` wins) and
tries again with the same ``upload_id``. Waits are compressed by ``time_scale`` (a 60 s backoff
is 0.6 s at 0.01) so the run stays bounded; everything else happens in real time.

Requests go through one ``httpx.AsyncClient``; a semaphore bounds those in flight, and a
request's latency is timed from the moment it has a slot to its last byte.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np

from edgepersona.sdk import SyncSettings
from edgepersona.sdk._backoff import next_delay, retry_after
from edgepersona.sdk._uploads import build_payload, encode
from edgepersona.sdk.privacy import DEFAULT_EPSILON

# As Syncer: answers that drop the upload, and those that also forget the registration.
DROP_STATUSES = (400, 401, 403, 410, 413, 422)
FORGET_REGISTRATION = (401, 410)
SETTINGS = SyncSettings()  # the SDK's defaults: backoff base, cap, Retry-After cap, timeout


@dataclass
class Traffic:
    """What the light devices sent and were told, summed over the fleet."""

    latency_ns: dict[str, list[int]] = field(default_factory=dict)  # route -> request times
    statuses: dict[str, Counter[str]] = field(default_factory=dict)  # route -> status -> n
    errors: Counter[str] = field(default_factory=Counter)  # "ROUTE ExceptionName" -> n
    rounds_failed: int = 0  # rounds that ended in a wait, then a retry
    upload_ids_sent: set[str] = field(default_factory=set)  # every id that left a device
    acknowledged: set[str] = field(default_factory=set)  # ids answered 2xx
    upload_requests: int = 0  # POSTs, resends included
    registrations: int = 0  # answered 201

    def record(self, route: str, status: str, nanoseconds: int) -> None:
        self.latency_ns.setdefault(route, []).append(nanoseconds)
        self.statuses.setdefault(route, Counter())[status] += 1


@dataclass(frozen=True)
class Fleet:
    """What every device of a run shares: where to send, how hard, and the payload's frame."""

    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    traffic: Traffic
    personas: list[str]
    offers: list[str]
    time_scale: float  # real seconds waited per second the SDK would wait


class _RoundError(Exception):
    def __init__(self, wait_s: float | None) -> None:
        super().__init__()
        self.wait_s = wait_s


class LightDevice:
    """One phone's sync traffic; its true vector and persona are fixed, the noise fresh."""

    def __init__(self, vector: np.ndarray, persona: str, seed: int) -> None:
        self.features = [float(v) for v in vector]
        self.persona = persona
        self.rng = np.random.default_rng(seed)
        self.token: str | None = None
        self.etag: str | None = None
        self.model_version = 1  # the default bundle every install ships with
        self.queue: list[tuple[str, bytes]] = []  # (upload_id, body), oldest week first
        self.failures = 0
        self.outcome: str = "not started"

    async def sync_week(self, fleet: Fleet, week: str, give_up_at: float) -> None:
        """Queue ``week``'s upload and sync until the server has it or ``give_up_at``
        (monotonic seconds) passes; the upload then stays queued, as on a phone."""
        self.queue.append(self._upload(fleet, week))
        while True:
            try:
                await self._round(fleet)
            except _RoundError as failure:
                fleet.traffic.rounds_failed += 1
                self.failures += 1
                delay = next_delay(
                    self.failures,
                    SETTINGS.backoff_base_s,
                    SETTINGS.backoff_cap_s,
                    self.rng.random(),
                )
                if failure.wait_s is not None:
                    delay = max(delay, failure.wait_s)
                if time.monotonic() + delay * fleet.time_scale > give_up_at:
                    self.outcome = "gave up"
                    return
                await asyncio.sleep(delay * fleet.time_scale)
                continue
            self.failures = 0
            self.outcome = "synced"
            return

    def _upload(self, fleet: Fleet, week: str) -> tuple[str, bytes]:
        answered = self.rng.choice(fleet.offers, size=3, replace=False)
        counts = {
            str(o): (float(self.rng.integers(0, 3)), float(self.rng.integers(0, 3)))
            for o in answered
        }
        payload = build_payload(
            week=week,
            features=self.features,
            persona=self.persona,
            personas=fleet.personas,
            outcome_counts=counts,
            offers=fleet.offers,
            epsilon=DEFAULT_EPSILON,
            model_version=self.model_version,
            rng=self.rng,
        )
        return payload["upload_id"], encode(payload).encode()

    async def _round(self, fleet: Fleet) -> None:
        if self.token is None:
            response = await self._request(fleet, "POST", "/v1/devices", "/v1/devices")
            if response.status_code != 201:
                raise _RoundError(None)
            self.token = str(response.json()["token"])
            fleet.traffic.registrations += 1
        auth = {"Authorization": f"Bearer {self.token}"}
        while self.queue:
            upload_id, body = self.queue[0]
            fleet.traffic.upload_ids_sent.add(upload_id)
            fleet.traffic.upload_requests += 1
            response = await self._request(
                fleet,
                "POST",
                "/v1/aggregates",
                "/v1/aggregates",
                content=body,
                headers={**auth, "Content-Type": "application/json"},
            )
            code = response.status_code
            if 200 <= code < 300:
                fleet.traffic.acknowledged.add(upload_id)
                self.queue.pop(0)
            elif code in DROP_STATUSES:
                self.queue.pop(0)
                if code in FORGET_REGISTRATION:
                    self.token = None
                    raise _RoundError(None)
            else:
                raise self._failure(response)
        await self._check_model(fleet, auth)

    async def _check_model(self, fleet: Fleet, auth: dict[str, str]) -> None:
        headers = {**auth, **({"If-None-Match": self.etag} if self.etag else {})}
        route = "/v1/models/current"
        response = await self._request(fleet, "GET", route, route, headers=headers)
        if response.status_code in (204, 304):
            return
        if response.status_code != 200:
            raise self._failure(response)
        version = int(response.json()["version"])
        if version > self.model_version:
            path = f"/v1/models/{version}/bundle"
            bundle = await self._request(
                fleet, "GET", path, "/v1/models/{version}/bundle", headers=auth
            )
            if bundle.status_code != 200:
                raise self._failure(bundle)
            self.model_version = version
        self.etag = response.headers.get("ETag")

    async def _request(
        self, fleet: Fleet, method: str, path: str, route: str, **kwargs: object
    ) -> httpx.Response:
        async with fleet.slots:
            started = time.perf_counter_ns()
            try:
                response = await fleet.client.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:
                fleet.traffic.errors[f"{method} {route} {type(exc).__name__}"] += 1
                fleet.traffic.record(f"{method} {route}", "error", time.perf_counter_ns() - started)
                raise _RoundError(None) from None
            fleet.traffic.record(
                f"{method} {route}", str(response.status_code), time.perf_counter_ns() - started
            )
        return response

    @staticmethod
    def _failure(response: httpx.Response) -> _RoundError:
        return _RoundError(
            retry_after(
                response.headers.get("Retry-After"), time.time(), SETTINGS.max_retry_after_s
            )
        )


@dataclass
class Round:
    week: str
    seconds: float
    accepted: int  # uploads answered 201 during the round
    synced: int  # devices whose server has every upload they queued
    gave_up: int


async def run_light_fleet(
    url: str,
    devices: list[LightDevice],
    weeks: list[str],
    *,
    personas: list[str],
    offers: list[str],
    concurrency: int,
    deadline: float,
    drain_s: float,
    time_scale: float,
    timeout_s: float = SETTINGS.timeout_s,
) -> tuple[Traffic, list[Round]]:
    """Every device syncs each of ``weeks`` in turn, the whole fleet one week at a time, in a
    shuffled order each week (a fleet's syncs interleave). No week starts after ``deadline``
    (monotonic seconds); a device still retrying gives up ``drain_s`` after it. A
    ``timeout_s`` shorter than the SDK's makes devices resend uploads the server may have
    stored: the idempotency the reconciliation then checks."""
    traffic = Traffic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rounds: list[Round] = []
    order = np.random.default_rng(len(devices))
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        fleet = Fleet(client, asyncio.Semaphore(concurrency), traffic, personas, offers, time_scale)
        for week in weeks:
            if time.monotonic() >= deadline:
                break
            started = time.monotonic()
            accepted_before = _accepted(traffic)
            shuffled = [devices[i] for i in order.permutation(len(devices))]
            await asyncio.gather(*(d.sync_week(fleet, week, deadline + drain_s) for d in shuffled))
            outcomes = Counter(d.outcome for d in devices)
            rounds.append(
                Round(
                    week,
                    time.monotonic() - started,
                    _accepted(traffic) - accepted_before,
                    outcomes["synced"],
                    outcomes["gave up"],
                )
            )
    return traffic, rounds


def _accepted(traffic: Traffic) -> int:
    return traffic.statuses.get("POST /v1/aggregates", Counter())["201"]
