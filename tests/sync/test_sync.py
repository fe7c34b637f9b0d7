"""sync() against the real backend over HTTP: consent, the weekly upload, the queue's answers to
every kind of server trouble, backoff, and erase on both sides."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edgepersona.sdk import ManualClock, SyncSettings
from edgepersona.sdk.errors import InvalidSignalError

from ..conftest import T0
from .conftest import (
    DAY,
    WEEK,
    Backend,
    DeviceNetwork,
    OpenDevice,
    live_a_week,
    lost_after_server,
    refused,
    status,
    syncing_device,
    timed_out,
)


def test_without_sync_consent_not_one_request_leaves(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = open_device()
    sdk.consent.grant("personalization")
    live_a_week(sdk, clock)
    for force in (False, True):
        assert sdk.sync(force=force).status == "no_consent"
    assert sdk.erase()["server"] == "not_registered"
    assert network.sent == []
    assert backend.count("devices") == 0


def test_without_a_backend_url_nothing_is_sent(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork
) -> None:
    sdk = syncing_device(open_device, clock, backend_url=None)
    assert sdk.sync().status == "no_backend"
    assert network.sent == []


def test_a_week_is_uploaded_once_and_the_budget_spent_once(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock)
    result = sdk.sync()
    assert (result.status, result.sent, result.pending) == ("synced", 1, 0)
    assert network.paths()[:2] == ["POST /v1/devices", "POST /v1/aggregates"]
    assert backend.count("aggregates") == 1
    sent = sdk.last_upload()
    assert sent is not None and sent["payload"]["week"] == "2026-W10"
    assert sent["bytes"] == len(network.sent[1].body)
    assert json.loads(network.sent[1].body) == sent["payload"]
    status_now = sdk.sync_status()
    assert status_now["registered"] and status_now["epsilon"]["spent"] == 1.0
    # Within the interval nothing happens; forced, the week is not sent or spent again.
    assert sdk.sync().status == "not_due"
    forced = sdk.sync(force=True)
    assert (forced.status, forced.sent) == ("nothing_to_send", 0)
    assert backend.count("aggregates") == 1
    assert sdk.sync_status()["epsilon"]["spent_all_time"] == 1.0


def test_a_week_without_any_signal_is_not_uploaded(
    open_device: OpenDevice, clock: ManualClock, backend: Backend
) -> None:
    sdk = open_device()
    sdk.consent.grant("sync")
    clock.set(T0 + WEEK)
    assert sdk.sync().status == "nothing_to_send"
    assert backend.count("aggregates") == 0
    assert sdk.sync_status()["epsilon"]["spent_all_time"] == 0.0


def test_server_down_keeps_the_upload_and_backs_off_with_jitter_then_delivers(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    settings = SyncSettings(backoff_base_s=60, backoff_cap_s=600)
    sdk = syncing_device(open_device, clock, sync_settings=settings)
    network.faults["/v1/"] = [refused, timed_out, refused, refused, refused]
    delays = []
    for _ in range(5):
        result = sdk.sync(force=True)
        assert result.status == "offline" and result.pending <= 1
        assert result.next_attempt_at is not None
        delays.append(result.next_attempt_at - clock.time())
        # Before the next attempt an unforced sync sends nothing.
        before = len(network.sent)
        assert sdk.sync().status == "backing_off"
        assert len(network.sent) == before
    # equal jitter: each delay within [step/2, step], steps 60, 120, 240, 480, 600 (capped)
    for delay, step in zip(delays, (60, 120, 240, 480, 600), strict=True):
        assert step / 2 <= delay <= step
    clock.advance(601)
    assert sdk.sync().status == "synced"
    assert backend.count("aggregates") == 1
    assert sdk.sync_status()["failures"] == 0


def test_the_backoff_survives_a_restart(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork
) -> None:
    sdk = syncing_device(open_device, clock)
    network.faults["/v1/devices"] = [refused]
    until = sdk.sync().next_attempt_at
    sdk.close()
    again = open_device()
    result = again.sync()
    assert result.status == "backing_off" and result.next_attempt_at == until
    assert result.pending == 1


def test_retry_after_is_honoured_even_by_a_forced_sync(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock)
    sdk.sync_status()
    network.faults["/v1/aggregates"] = [status(429, {"Retry-After": "3600"})]
    result = sdk.sync()
    assert result.status == "server_error" and result.pending == 1
    assert result.next_attempt_at is not None and result.next_attempt_at >= clock.time() + 3600
    clock.advance(1800)
    assert sdk.sync(force=True).status == "backing_off"
    clock.advance(1801)
    assert sdk.sync(force=True).status == "synced"
    assert backend.count("aggregates") == 1


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_on_the_registration_is_honoured(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend, code: int
) -> None:
    # backoff_base_s=60: without the header the device would come back within 60 s.
    sdk = syncing_device(open_device, clock, sync_settings=SyncSettings(backoff_base_s=60))
    network.faults["/v1/devices"] = [status(code, {"Retry-After": "3600"})]
    result = sdk.sync()
    assert result.status == "server_error" and result.pending == 1
    assert result.message == f"registration answered {code}"
    assert result.next_attempt_at is not None and result.next_attempt_at >= clock.time() + 3600
    clock.advance(1800)
    assert sdk.sync(force=True).status == "backing_off"
    assert network.paths().count("POST /v1/devices") == 1
    clock.advance(1801)
    assert sdk.sync(force=True).status == "synced"
    assert backend.count("aggregates") == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [(400, "bad_request"), (403, "forbidden"), (413, "too_large"), (422, "invalid")],
)
def test_a_refused_upload_is_dropped_and_counted_and_does_not_block_the_next(
    open_device: OpenDevice,
    clock: ManualClock,
    network: DeviceNetwork,
    backend: Backend,
    code: int,
    reason: str,
) -> None:
    sdk = syncing_device(open_device, clock)
    network.faults["/v1/aggregates"] = [refused]
    sdk.sync()  # registers, the upload of week 10 stays queued
    live_a_week(sdk, clock)  # week 11 too
    network.faults["/v1/aggregates"] = [status(code)]
    result = sdk.sync(force=True)
    assert result.dropped == {reason: 1} and result.sent == 1 and result.pending == 0
    assert backend.count("aggregates") == 1
    assert sdk.sync_status()["dropped"] == {reason: 1}


def test_an_answer_lost_after_the_server_stored_it_is_resent_and_counted_once(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock)
    network.faults["/v1/aggregates"] = [lost_after_server]
    assert sdk.sync().status == "offline"
    assert backend.count("aggregates") == 1  # the server has it; the device does not know
    first = json.loads(network.sent[-1].body)
    sdk.close()  # the app dies before the next attempt
    again = open_device()
    clock.advance(7 * 3600)
    assert again.sync().status == "synced"
    assert json.loads(network.sent[-2].body)["upload_id"] == first["upload_id"]
    assert backend.count("aggregates") == 1


def test_a_seeded_device_reopened_sends_each_week_under_a_new_id(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    # Both sessions draw the same randomness before their upload (the noise, then the id):
    # a seed that restarted the stream at every open would repeat the upload_id, and the
    # server would take the new week for a resend of the old one and keep nothing.
    for week in ("2026-W10", "2026-W11"):
        sdk = open_device()
        for purpose in ("personalization", "sync"):
            sdk.consent.grant(purpose)
        start = clock.time()
        for day in range(5):
            clock.set(start + day * DAY)
            sdk.track_app("com.spotify.music")
        clock.set(start + WEEK)
        assert sdk.sync(force=True).status == "synced"
        assert sdk.last_upload()["payload"]["week"] == week
        sdk.close()
    first, second = (json.loads(s.body) for s in network.sent if s.url.endswith("/aggregates"))
    assert first["upload_id"] != second["upload_id"]
    assert first["features"] != second["features"]
    assert backend.count("aggregates") == 2


def test_a_device_the_server_forgot_registers_again(
    open_device: OpenDevice, clock: ManualClock, backend: Backend, tmp_path: Path
) -> None:
    sdk = syncing_device(open_device, clock)
    sdk.sync()
    device_id = sdk.sync_status()["device_id"]
    # The server forgets the device (as after an erase from another install of the app).
    token = (
        sqlite3.connect(tmp_path / "device" / "edgepersona.db")
        .execute("SELECT value FROM settings WHERE key = 'sync.token'")
        .fetchone()[0]
    )
    with backend.client() as client:
        assert (
            client.delete(
                "/v1/devices/me", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 204
        )
    live_a_week(sdk, clock)
    result = sdk.sync(force=True)
    assert result.dropped == {"unauthorized": 1}
    assert not sdk.sync_status()["registered"]
    live_a_week(sdk, clock)
    clock.advance(3 * 3600)
    assert sdk.sync(force=True).status == "synced"
    assert sdk.sync_status()["device_id"] != device_id
    assert backend.count("devices") == 1


def test_the_queue_is_bounded_by_count_and_the_oldest_are_dropped(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    settings = SyncSettings(max_queued=3)
    sdk = syncing_device(open_device, clock, sync_settings=settings)
    for _ in range(5):
        network.faults["/v1/devices"] = [refused]
        sdk.sync(force=True)
        live_a_week(sdk, clock)
    result = sdk.sync(force=True)
    assert sdk.sync_status()["dropped"] == {"queue_full": 3}  # one a round, past three
    assert (result.status, result.sent) == ("synced", 3)
    weeks = sorted(json.loads(s.body)["week"] for s in network.sent if s.url.endswith("aggregates"))
    assert weeks == ["2026-W13", "2026-W14", "2026-W15"]


def test_revoking_sync_purges_the_queue_and_stops_sending(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock)
    network.faults["/v1/aggregates"] = [refused]
    assert sdk.sync().pending == 1
    sdk.consent.revoke("sync")
    assert sdk.sync_status()["pending"] == 0
    before = len(network.sent)
    assert sdk.sync(force=True).status == "no_consent"
    assert len(network.sent) == before
    assert backend.count("aggregates") == 0


def test_erase_deletes_the_device_on_the_server_too(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock)
    sdk.sync()
    assert backend.count("aggregates") == 1
    assert sdk.erase() == {"device": "erased", "server": "deleted"}
    assert network.paths()[-1] == "DELETE /v1/devices/me"
    assert backend.count("aggregates") == 0 and backend.count("devices") == 0


def test_erase_offline_says_the_server_was_not_reached(
    open_device: OpenDevice, clock: ManualClock, network: DeviceNetwork
) -> None:
    sdk = syncing_device(open_device, clock)
    sdk.sync()
    network.faults["/v1/devices/me"] = [refused]
    assert sdk.erase()["server"] == "failed: ConnectError"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"backend_url": "ftp://example.com"}, "backend_url"),
        ({"backend_url": "not a url"}, "backend_url"),
        ({"public_key": "c2hvcnQ="}, "public_key"),
        ({"public_key": b"\x00" * 31}, "public_key"),
    ],
)
def test_bad_sync_options_are_refused_at_open(
    open_device: OpenDevice, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidSignalError, match=field):
        open_device(**options)


@pytest.mark.parametrize(
    "settings",
    [{"epsilon_per_week": 0.01}, {"epsilon_per_week": 11}, {"interval_s": 0}, {"max_queued": 0}],
)
def test_bad_sync_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SyncSettings(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [500, 502, 503, 408])
def test_a_storm_of_server_errors_keeps_the_upload_until_the_server_recovers(
    open_device: OpenDevice,
    clock: ManualClock,
    network: DeviceNetwork,
    backend: Backend,
    code: int,
) -> None:
    sdk = syncing_device(open_device, clock)
    network.faults["/v1/aggregates"] = [status(code)] * 4
    for _ in range(4):
        result = sdk.sync(force=True)
        assert (result.status, result.pending) == ("server_error", 1)
        assert result.next_attempt_at is not None
        clock.set(result.next_attempt_at)
    assert sdk.sync().status == "synced"
    assert backend.count("aggregates") == 1 and sdk.sync_status()["dropped"] == {}
