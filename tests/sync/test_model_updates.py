"""Model updates over real HTTP: a signed bundle is verified, run in shadow, then swapped in;
every attack in the spirit of TUF's (tampering, wrong key, rollback, freeze, mix and match,
endless data) is refused with its reason while the device keeps deciding with its last good
bundle."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from edgepersona.sdk import EdgePersona, ManualClock, SyncSettings
from edgepersona.sdk._bundle import FILES

from .conftest import Backend, DeviceNetwork, OpenDevice, body, refused, status, syncing_device

DEFAULT_BUNDLE = Path(__file__).parents[2] / "sdk" / "default_bundle"
SHADOW = SyncSettings(shadow_decisions=3, interval_s=60)


def bundle_files(version: int, expires_at: str | None = None, indent: int = 1) -> dict[str, bytes]:
    """The shipped bundle as a new version (its playbook re-indented, so the bytes differ)."""
    files = {name: (DEFAULT_BUNDLE / name).read_bytes() for name in FILES}
    playbook = json.dumps(json.loads(files["playbook.json"]), indent=indent + version).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["version"] = version
    manifest["sha256"]["playbook.json"] = hashlib.sha256(playbook).hexdigest()
    if expires_at is not None:
        manifest["expires_at"] = expires_at
    return {**files, "playbook.json": playbook, "manifest.json": json.dumps(manifest).encode()}


def release(backend: Backend, version: int, **kwargs: object) -> None:
    backend.publish(bundle_files(version, **kwargs))  # type: ignore[arg-type]
    backend.promote(version, 100)


def decide_times(sdk: EdgePersona, n: int) -> list[int]:
    return [sdk.decide("home", ["coffee_to_go", "flash_sale"]).model_version for _ in range(n)]


def events(sdk: EdgePersona) -> list[tuple[int | None, str]]:
    return [(h["version"], h["event"]) for h in reversed(sdk.model_status()["history"])]


def reasons(sdk: EdgePersona) -> list[str]:
    return [h["reason"] or "" for h in sdk.model_status()["history"] if h["event"] == "rejected"]


@pytest.fixture
def device(open_device: OpenDevice, clock: ManualClock) -> EdgePersona:
    return syncing_device(open_device, clock, sync_settings=SHADOW)


def test_a_signed_newer_bundle_runs_in_shadow_then_is_swapped_in_and_kept(
    device: EdgePersona,
    backend: Backend,
    network: DeviceNetwork,
    open_device: OpenDevice,
    clock: ManualClock,
) -> None:
    release(backend, 2)
    result = device.sync()
    assert result.model == "shadow v2 0/3"
    status = device.model_status()
    assert status["shadow"]["version"] == 2 and status["download"]["state"] == "verified"
    # the shadow runs beside the model in use, then takes over without a restart
    assert decide_times(device, 4) == [1, 1, 1, 2]
    status = device.model_status()
    assert status["version"] == 2 and status["shadow"] is None
    assert events(device) == [(2, "shadow"), (2, "adopted")]
    assert "agreed on" in status["history"][0]["reason"]
    # unchanged manifest: 304 on the conditional GET, nothing downloaded again
    clock.advance(120)
    assert device.sync().model == "unchanged"
    polls = [s for s in network.sent if s.url.endswith("/v1/models/current")]
    assert "if-none-match" in polls[-1].headers
    assert sum(s.url.endswith("/bundle") for s in network.sent) == 1
    device.close()
    again = open_device(sync_settings=SHADOW)
    assert again.model_status()["version"] == 2
    assert again.model_status()["source"] == "downloaded"


def test_a_tampered_bundle_is_refused_and_the_last_good_one_keeps_serving(
    device: EdgePersona, backend: Backend, network: DeviceNetwork, clock: ManualClock
) -> None:
    release(backend, 2)

    def tamper(data: bytes) -> bytes:
        files = _unzipped(data)
        files["playbook.json"] = files["playbook.json"].replace(b'"', b'"', 1) + b" "
        return _zipped(files)

    network.faults["/v1/models/2/bundle"] = [body(tamper)]
    assert device.sync().model.startswith("rejected v2: ")
    assert "does not match its SHA-256" in reasons(device)[0]
    assert decide_times(device, 4) == [1, 1, 1, 1]
    # the same publication is not fetched again
    clock.advance(120)
    assert device.sync().model == "unchanged"
    assert sum(s.url.endswith("/bundle") for s in network.sent) == 1


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (lambda data: data[: len(data) // 2], "not a readable zip"),
        (lambda data: b"\x00" * 10, "not a readable zip"),
    ],
    ids=["truncated", "garbage"],
)
def test_a_broken_download_is_refused(
    device: EdgePersona, backend: Backend, network: DeviceNetwork, transform: object, reason: str
) -> None:
    release(backend, 2)
    network.faults["/v1/models/2/bundle"] = [body(transform)]  # type: ignore[arg-type]
    assert device.sync().model.startswith("rejected v2")
    assert reason in reasons(device)[0]
    assert device.decide("home", []).model_version == 1


def test_endless_data_is_cut_off_at_the_limit(
    open_device: OpenDevice, clock: ManualClock, backend: Backend, network: DeviceNetwork
) -> None:
    small = SyncSettings(shadow_decisions=3, max_bundle_bytes=50_000)
    sdk = syncing_device(open_device, clock, sync_settings=small)
    release(backend, 2)
    network.faults["/v1/models/2/bundle"] = [body(lambda data: data + b"\x00" * 10_000_000)]
    assert sdk.sync().model.startswith("rejected v2")
    assert "50000" in reasons(sdk)[0]


def test_a_bundle_signed_by_another_key_is_refused_before_download(
    open_device: OpenDevice, clock: ManualClock, backend: Backend, network: DeviceNetwork
) -> None:
    sdk = syncing_device(open_device, clock, public_key=b"\x07" * 32)
    release(backend, 2)
    assert sdk.sync().model.startswith("rejected v2")
    assert "signed by an unknown key" in reasons(sdk)[0]
    assert not any(s.url.endswith("/bundle") for s in network.sent)


def test_key_rotation_pinning_the_old_and_new_keys_accepts_either(
    open_device: OpenDevice, clock: ManualClock, backend: Backend
) -> None:
    sdk = syncing_device(
        open_device, clock, public_key=[b"\x07" * 32, backend.public_key], sync_settings=SHADOW
    )
    release(backend, 2)
    assert sdk.sync().model == "shadow v2 0/3"


def test_without_a_pinned_key_no_model_is_accepted(
    open_device: OpenDevice, clock: ManualClock, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock, public_key=None)
    release(backend, 2)
    assert "no public key is pinned" in sdk.sync().model
    assert sdk.sync_status()["last_result"].startswith("synced")


def test_an_older_version_offered_again_is_refused(
    device: EdgePersona, backend: Backend, clock: ManualClock
) -> None:
    release(backend, 2)
    release(backend, 3)
    device.sync()
    decide_times(device, 3)
    assert device.model_status()["version"] == 3
    backend.promote(3, 0)  # the server now offers v2 to this device
    clock.advance(120)
    assert device.sync().model.startswith("rejected v2")
    assert "not newer than v3" in reasons(device)[0]
    assert device.decide("home", []).model_version == 3


def test_an_expired_manifest_is_refused(
    device: EdgePersona, backend: Backend, clock: ManualClock
) -> None:
    soon = dt.datetime.fromtimestamp(clock.time() + 3 * 86400, dt.timezone.utc).isoformat()
    release(backend, 2, expires_at=soon)
    clock.advance(4 * 86400)  # the device was offline: the metadata went stale
    assert device.sync().model.startswith("rejected v2")
    assert "expired" in reasons(device)[0]


def test_mix_and_match_another_versions_files_under_a_signed_manifest_is_refused(
    device: EdgePersona, backend: Backend, network: DeviceNetwork
) -> None:
    release(backend, 2)
    release(backend, 3)
    with backend.client() as client:
        token = client.post("/v1/devices").json()["token"]
        old = client.get("/v1/models/2/bundle", headers={"Authorization": f"Bearer {token}"})
    network.faults["/v1/models/3/bundle"] = [body(lambda data: old.content)]
    assert device.sync().model.startswith("rejected v3")
    assert "mix and match" in reasons(device)[0]


def test_a_failed_write_of_the_bundle_keeps_the_last_good_one(
    device: EdgePersona, backend: Backend, tmp_path: Path
) -> None:
    (tmp_path / "device" / "bundles").write_text("not a directory")  # the write will fail
    release(backend, 2)
    assert device.sync().model.startswith("rejected v2")
    assert "cannot keep the bundle" in reasons(device)[0]
    assert device.decide("home", []).model_version == 1


def test_a_kept_bundle_damaged_on_disk_falls_back_to_the_built_in_one(
    device: EdgePersona, backend: Backend, open_device: OpenDevice, tmp_path: Path
) -> None:
    release(backend, 2)
    device.sync()
    decide_times(device, 3)
    device.close()
    kept = tmp_path / "device" / "bundles" / "2.zip"
    kept.write_bytes(kept.read_bytes()[:-40])
    again = open_device(sync_settings=SHADOW)
    assert again.model_status()["version"] == 1
    assert "at start" in reasons(again)[0]


def test_the_model_check_offline_backs_off_without_losing_the_upload(
    device: EdgePersona, backend: Backend, network: DeviceNetwork
) -> None:
    network.faults["/v1/models/current"] = [refused]
    result = device.sync()
    assert result.status == "offline" and result.sent == 1
    assert backend.count("aggregates") == 1


@pytest.mark.parametrize("code", [429, 500, 503])
def test_a_server_error_on_the_download_backs_off_and_the_bundle_is_fetched_again(
    device: EdgePersona, backend: Backend, network: DeviceNetwork, clock: ManualClock, code: int
) -> None:
    release(backend, 2)
    network.faults["/v1/models/2/bundle"] = [status(code, {"Retry-After": "3600"})]
    result = device.sync()
    assert result.status == "server_error" and result.sent == 1
    assert result.message == f"GET /v1/models/2/bundle answered {code}"
    assert result.next_attempt_at is not None and result.next_attempt_at >= clock.time() + 3600
    assert device.model_status()["download"]["state"] == "failed"
    assert reasons(device) == []  # nothing refused: the bundle never arrived
    clock.advance(1800)
    assert device.sync(force=True).status == "backing_off"
    clock.advance(1801)
    assert device.sync(force=True).model == "shadow v2 0/3"
    assert sum(s.url.endswith("/v1/models/2/bundle") for s in network.sent) == 2
    assert decide_times(device, 4) == [1, 1, 1, 2]


def _unzipped(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_without_personalization_the_shadow_counts_decisions_and_the_swap_still_happens(
    open_device: OpenDevice, clock: ManualClock, backend: Backend
) -> None:
    sdk = syncing_device(open_device, clock, sync_settings=SHADOW)
    sdk.consent.revoke("personalization")
    release(backend, 2)
    sdk.sync()
    decide_times(sdk, 3)
    status = sdk.model_status()
    assert status["version"] == 2
    assert status["history"][0]["reason"] == "after 3 decisions, none personalized"
