"""Network faults between real SDKs and the real backend, through our own TCP proxy.

Devices sync through ``FaultProxy`` on loopback (real sockets, the SDK's own httpx transport)
while it drops, resets, stalls, truncates and answers 429/5xx at random (seeded). Time is a
``ManualClock`` shared by the devices and the server, moved to each device's next attempt
rather than slept through. Checked: every week a device spent its budget on is stored by the
server exactly once, with the upload id the device sent; each failed round's delay is within
the documented backoff (equal jitter: half a capped exponential step up to the whole step,
``Retry-After`` winning when longer); a device backing off makes no request; and the
app-facing calls never touch the network, nor wait while a sync is stuck on it.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from edgepersona.backend.db import engine
from edgepersona.sdk import EdgePersona, ManualClock, SyncSettings

from ..sync.conftest import DAY, WEEK, Backend
from .conftest import Figures
from .fault_proxy import FAULTS, RETRY_AFTER_S, FaultProxy

DEVICES = 8
WEEKS = 7  # at most uploads_sent's 8, so the device still lists every upload id it sent
MAX_ROUNDS = 400  # sync rounds per week before the test gives up on convergence
FAULT_RATE = 0.35
SLOW_BUDGET = 6  # each slow fault costs one client timeout of wall time
STORM_WEEK, STORM_REQUESTS = 3, 80  # a week whose first requests all fail, past the cap
STORM = SyncSettings(interval_s=60, backoff_base_s=30, backoff_cap_s=900, timeout_s=1.0)
APPS = ("com.spotify.music", "com.whatsapp", "com.netflix", "com.google.android.apps.maps")


class Storm:
    """Chooses a fault for each request: seeded, with a budget on the slow ones."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rate = FAULT_RATE
        self.slow_left = SLOW_BUDGET
        self.burst = 0  # requests left in a 429/5xx storm: every one of them fails

    def __call__(self, method: str, path: str) -> str:
        if self.burst:
            self.burst -= 1
            return self.rng.choice(["429", "500", "502", "503"])
        if self.rng.random() >= self.rate:
            return "pass"
        fault = self.rng.choice(FAULTS)
        if fault == "slow":
            if self.slow_left == 0:
                return "lost"
            self.slow_left -= 1
        return fault


@pytest.fixture
def storm() -> Storm:
    return Storm(seed=8)


@pytest.fixture
def proxy(backend: Backend, storm: Storm) -> Iterator[FaultProxy]:
    url = httpx.URL(backend.url)
    assert url.port is not None
    running = FaultProxy((url.host, url.port), storm)
    yield running
    running.close()


def open_devices(
    tmp_path: Path, clock: ManualClock, proxy: FaultProxy, n: int
) -> list[EdgePersona]:
    devices = []
    for i in range(n):
        sdk = EdgePersona.open(
            tmp_path / f"device-{i}",
            "com.example.shop",
            clock=clock,
            tz="UTC",
            backend_url=proxy.url,
            seed=i,
            sync_settings=STORM,
        )
        for purpose in ("personalization", "sync"):
            sdk.consent.grant(purpose)
        devices.append(sdk)
    return devices


def live(sdk: EdgePersona, week_start: float, rng: random.Random) -> None:
    """A few app switches and an answered offer during the week (explicit timestamps)."""
    for day in range(5):
        sdk.track_app(rng.choice(APPS), ts=week_start + day * DAY + rng.uniform(0, 36000))
    decision = sdk.decide("home", ["coffee_to_go", "flash_sale"])
    sdk.feedback(decision, decision.offers[0], rng.choice(["accepted", "dismissed"]))
    sdk.flush()


def check_backoff(status: dict[str, object], delay: float, message: str) -> None:
    """The delay after the n-th failure in a row: [step/2, step], or Retry-After's if longer."""
    failures = int(status["failures"])  # type: ignore[call-overload]
    step = min(STORM.backoff_cap_s, STORM.backoff_base_s * 2 ** (failures - 1))
    low, high = step / 2, step
    if "answered 429" in message:
        low, high = max(low, RETRY_AFTER_S), max(high, RETRY_AFTER_S)
    assert low <= delay <= high, (failures, delay, message)


def sent_by_device(data_dir: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Weeks whose privacy budget the device spent, and the (week, upload id) it sent."""
    with sqlite3.connect(data_dir / "edgepersona.db") as conn:
        spent = {w for (w,) in conn.execute("SELECT week FROM privacy_budget")}
        sent = set(conn.execute("SELECT week, upload_id FROM uploads_sent").fetchall())
        assert conn.execute("SELECT COUNT(*) FROM upload_queue").fetchone() == (0,)
    return spent, sent


def stored_by_server(backend: Backend) -> list[tuple[str, str, str]]:
    with engine(backend.app).connect() as conn:
        rows = conn.execute(text("SELECT device_id, week, upload_id FROM aggregates")).all()
    return [(str(d), str(w), str(u)) for d, w, u in rows]


@pytest.mark.slow
def test_a_fault_storm_delivers_every_upload_exactly_once_within_the_backoff_bounds(
    tmp_path: Path,
    clock: ManualClock,
    backend: Backend,
    proxy: FaultProxy,
    storm: Storm,
    figures: Figures,
) -> None:
    rng = random.Random(88)
    devices = open_devices(tmp_path, clock, proxy, DEVICES)
    attempts = backoff_checks = quiet_calls = most_failures = timeouts = 0
    for week in range(WEEKS):
        if week == STORM_WEEK:
            storm.burst = STORM_REQUESTS
        week_start = clock.time()
        clock.set(week_start + 5 * DAY)
        for sdk in devices:
            before = proxy.requests
            live(sdk, week_start, rng)
            sdk.context()
            assert proxy.requests == before, "an app-facing call touched the network"
            quiet_calls += 1
        clock.set(week_start + WEEK)
        waiting = set(range(DEVICES))
        for _ in range(MAX_ROUNDS):
            for i in sorted(waiting):
                before = proxy.requests
                result = devices[i].sync()
                if result.status in ("backing_off", "not_due"):
                    assert proxy.requests == before, "a device backing off made a request"
                    continue
                attempts += 1
                if result.status in ("synced", "nothing_to_send"):
                    waiting.discard(i)
                    continue
                assert result.status in ("offline", "server_error"), result
                timeouts += "ReadTimeout" in result.message  # a slow answer: the client gave up
                assert result.next_attempt_at is not None
                status = devices[i].sync_status()
                check_backoff(status, result.next_attempt_at - clock.time(), result.message)
                most_failures = max(most_failures, status["failures"])
                backoff_checks += 1
            if not waiting:
                break
            due = [devices[i].sync_status()["next_attempt_at"] for i in waiting]
            clock.set(min(t for t in due if t is not None))
        assert not waiting, [
            {k: devices[i].sync_status()[k] for k in ("failures", "next_attempt_at", "last_result")}
            for i in waiting
        ] + [clock.time()]
        clock.set(week_start + WEEK)

    stored = stored_by_server(backend)
    lost = doubled = 0
    owners = set()
    for i, sdk in enumerate(devices):
        device_id = sdk.sync_status()["device_id"]
        owners.add(device_id)
        spent, sent = sent_by_device(tmp_path / f"device-{i}")
        mine = Counter((week, upload_id) for d, week, upload_id in stored if d == device_id)
        weeks = Counter(week for week, _ in mine.elements())
        doubled += sum(n - 1 for n in weeks.values())
        lost += len(spent - set(weeks)) + len(sent - set(mine))
        assert set(mine) == sent  # the server holds exactly the ids the device sent
    strangers = [row for row in stored if row[0] not in owners]
    delivered = len(stored)
    figures.add("network_faults", "devices", DEVICES)
    figures.add("network_faults", "weeks", WEEKS)
    figures.add("network_faults", "sync_attempts", attempts)
    figures.add("network_faults", "requests_proxied", proxy.requests)
    figures.add("network_faults", "faults_injected", sum(proxy.injected.values()))
    for fault, n in proxy.injected.items():
        figures.add("network_faults", f"fault_{fault}", n)
    figures.add("network_faults", "backoff_checks", backoff_checks)
    figures.add("network_faults", "client_timeouts", timeouts)
    figures.add("network_faults", "storm_requests", STORM_REQUESTS)
    figures.add("network_faults", "app_calls_without_network", quiet_calls)
    figures.add("network_faults", "uploads_delivered", delivered)
    figures.add("network_faults", "uploads_lost", lost)
    figures.add("network_faults", "uploads_doubled", doubled + len(strangers))
    assert (lost, doubled, strangers) == (0, 0, [])
    assert delivered >= DEVICES * (WEEKS - 1)  # the first week has no complete week before
    assert timeouts >= 1, "no slow answer made the client time out"
    # The storm pushed the backoff to its cap (30 s doubled five times is past 900 s).
    assert most_failures >= 6
    # Every kind of fault happened, so each was survived (not just the friendly ones).
    assert set(proxy.injected) == set(FAULTS), proxy.injected
    for sdk in devices:
        sdk.close()


def test_app_facing_calls_do_not_wait_for_a_sync_stuck_on_the_network(
    tmp_path: Path,
    clock: ManualClock,
    backend: Backend,
    proxy: FaultProxy,
    storm: Storm,
    figures: Figures,
) -> None:
    storm.rate = 0.0  # no random faults: the proxy only holds the requests
    (sdk,) = open_devices(tmp_path, clock, proxy, 1)
    week_start = clock.time()
    clock.set(week_start + 5 * DAY)
    live(sdk, week_start, random.Random(1))
    clock.set(week_start + WEEK)
    proxy.hold()
    outcome: list[str] = []
    syncing = threading.Thread(target=lambda: outcome.append(sdk.sync().status))
    syncing.start()
    try:
        assert proxy.waiting.wait(30), "the sync never reached the proxy"
        before = proxy.arrived
        calls = [
            lambda: sdk.track_app("com.whatsapp"),
            lambda: sdk.track_screen("home"),
            lambda: sdk.track_event("add_to_cart", 2.0),
            lambda: sdk.record_location(48.85, 2.35, 10.0),
            lambda: sdk.decide("home", ["coffee_to_go", "flash_sale"]),
            sdk.context,
            sdk.features,
            sdk.persona,
            lambda: sdk.consent.status("sync"),
            sdk.sync_status,
            sdk.model_status,
            sdk.flush,
        ]
        for call in calls:
            call()
        # All returned while the sync is still held in the proxy, and none made a request.
        assert syncing.is_alive() and not proxy.gate.is_set()
        assert proxy.arrived == before
    finally:
        proxy.release()
        syncing.join(30)
    assert outcome == ["synced"]
    figures.add("network_faults", "app_calls_during_stalled_sync", len(calls))
    sdk.close()


def test_registration_honours_retry_after(
    tmp_path: Path, clock: ManualClock, proxy: FaultProxy, storm: Storm
) -> None:
    """Found by this suite: a 429 on POST /v1/devices had its Retry-After ignored."""
    storm.rate = 0.0
    proxy.choose = lambda method, path: "429" if path == "/v1/devices" else "pass"
    (sdk,) = open_devices(tmp_path, clock, proxy, 1)
    result = sdk.sync()
    assert result.status == "server_error" and result.next_attempt_at is not None
    assert result.next_attempt_at - clock.time() >= RETRY_AFTER_S
