"""Update attacks in the spirit of TUF's attack tests, as one table, through the real server.

``tests/sync/test_model_updates.py`` tests the updater case by case; this module runs every
attack the same way and counts them: a device on a downloaded, adopted v3 (so "the last good
bundle" is not the built-in one) meets one attack from a man in the middle or a compromised
server; the bundle is refused with its recorded reason, the device keeps deciding with v3, and
a genuine release afterwards is still adopted (the attack did not brick updates). Key rotation
done right is tested after the table. (A transient 429/5xx on the download, which this module
found refusing the version for good, is tested in ``tests/sync/test_model_updates.py``.)
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgepersona.backend.keys import generate_keypair, load_public_key
from edgepersona.sdk import EdgePersona, ManualClock, SyncSettings
from edgepersona.sdk._bundle import MAX_FILE_BYTES

from ..sync.conftest import Backend, DeviceNetwork, OpenDevice, body, syncing_device
from ..sync.test_model_updates import _unzipped, _zipped, reasons, release
from .conftest import Figures

SHADOW = SyncSettings(shadow_decisions=3, interval_s=60, max_bundle_bytes=200_000)
OFFERS = ["coffee_to_go", "flash_sale"]


@dataclass
class Scene:
    """What an attack can use: the server, the device's network, the clock, a place for keys."""

    backend: Backend
    network: DeviceNetwork
    clock: ManualClock
    tmp_path: Path

    def token(self) -> dict[str, str]:
        with self.backend.client() as client:
            token = client.post("/v1/devices").json()["token"]
        return {"Authorization": f"Bearer {token}"}

    def fetch(self, path: str) -> bytes:
        with self.backend.client() as client:
            response = client.get(path, headers=self.token())
        assert response.status_code == 200, response.text
        return response.content

    def sign_with_new_key(self, name: str) -> bytes:
        """The server signs from now on with a new key (a rotation, or a stolen server)."""
        private, public = self.tmp_path / f"{name}.pem", self.tmp_path / f"{name}.pub.json"
        generate_keypair(private, public)
        self.backend.app.config["SIGNING_KEY_PATH"] = str(private)
        return load_public_key(public)


def endless(chunk: bytes = b"\0" * 65536) -> Iterator[bytes]:
    while True:
        yield chunk


def arbitrary_payload(scene: Scene) -> None:
    """A man in the middle swaps the model inside a genuinely signed bundle."""
    release(scene.backend, 4)

    def swap(data: bytes) -> bytes:
        files = _unzipped(data)
        files["model.onnx"] = b"\x08\x07" + bytes(range(256)) * 40
        return _zipped(files)

    scene.network.faults["/v1/models/4/bundle"] = [body(swap)]


def forged_manifest(scene: Scene) -> None:
    """The manifest itself is edited in transit (a later expiry), keeping its signature."""
    release(scene.backend, 4)

    def edit(data: bytes) -> bytes:
        manifest = json.loads(data)
        manifest["expires_at"] = "2099-01-01T00:00:00+00:00"
        return json.dumps(manifest).encode()

    scene.network.faults["/v1/models/current"] = [body(edit)]


def rollback(scene: Scene) -> None:
    """An old, genuinely signed manifest (v2) is replayed to a device on v3."""
    old = scene.fetch("/v1/models/2/bundle")
    manifest = _unzipped(old)["manifest.json"]
    release(scene.backend, 4)
    scene.network.faults["/v1/models/current"] = [body(lambda data: manifest)]


def freeze(scene: Scene) -> None:
    """Signed metadata is replayed after it expired (the device was kept on stale data)."""
    soon = dt.datetime.fromtimestamp(scene.clock.time() + 3 * 86400, dt.timezone.utc)
    release(scene.backend, 4, expires_at=soon.isoformat())
    scene.clock.advance(4 * 86400)


def mix_and_match(scene: Scene) -> None:
    """v4's signed manifest is offered, v3's genuine bundle is served under it."""
    old = scene.fetch("/v1/models/3/bundle")
    release(scene.backend, 4)
    scene.network.faults["/v1/models/4/bundle"] = [body(lambda data: old)]


def endless_data(scene: Scene) -> None:
    """The download never ends and declares no length."""
    release(scene.backend, 4)
    scene.network.faults["/v1/models/4/bundle"] = [
        lambda request, forward: httpx.Response(200, content=endless())
    ]


def lying_length(scene: Scene) -> None:
    """The download declares a terabyte up front."""
    release(scene.backend, 4)
    scene.network.faults["/v1/models/4/bundle"] = [
        lambda request, forward: httpx.Response(
            200, headers={"Content-Length": str(10**12)}, content=endless()
        )
    ]


def zip_bomb(scene: Scene) -> None:
    """A small zip whose model unpacks past the per-file limit."""
    release(scene.backend, 4)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.onnx", b"\0" * (MAX_FILE_BYTES + 1))
    scene.network.faults["/v1/models/4/bundle"] = [body(lambda data: bomb.getvalue())]


def wrong_key(scene: Scene) -> None:
    """A stolen server (or a stray key) signs v4 with a key the device never pinned."""
    scene.sign_with_new_key("attacker")
    release(scene.backend, 4)


def unsigned(scene: Scene) -> None:
    """The signature is stripped from the manifest in transit."""
    release(scene.backend, 4)

    def strip(data: bytes) -> bytes:
        manifest = json.loads(data)
        del manifest["signature"]
        return json.dumps(manifest).encode()

    scene.network.faults["/v1/models/current"] = [body(strip)]


ATTACKS: dict[str, tuple[Callable[[Scene], None], str]] = {
    "arbitrary_payload": (arbitrary_payload, r"model\.onnx does not match its SHA-256"),
    "forged_manifest": (forged_manifest, r"signature does not match the manifest"),
    "unsigned_manifest": (unsigned, r"no signature"),
    "rollback": (rollback, r"version 2 is not newer than v3 in use \(rollback\)"),
    "freeze": (freeze, r"the manifest expired"),
    "mix_and_match": (mix_and_match, r"mix and match"),
    "endless_data": (endless_data, r"the download went past 200000 bytes"),
    "lying_length": (lying_length, r"the bundle is 1000000000000 bytes, over 200000"),
    "zip_bomb": (zip_bomb, rf"model\.onnx would unpack to {MAX_FILE_BYTES + 1} bytes"),
    "wrong_key": (wrong_key, r"signed by an unknown key [0-9a-f]{16}"),
}


def models_in_use(sdk: EdgePersona, n: int) -> set[int]:
    return {sdk.decide("home", OFFERS).model_version for _ in range(n)}


def adopt(sdk: EdgePersona, clock: ManualClock, version: int) -> None:
    """Sync until ``version`` is downloaded, then run its shadow decisions so it takes over."""
    clock.advance(120)
    assert sdk.sync(force=True).model == f"shadow v{version} 0/3"
    models_in_use(sdk, SHADOW.shadow_decisions)
    assert sdk.model_status()["version"] == version


@pytest.fixture
def on_v3(open_device: OpenDevice, clock: ManualClock, backend: Backend) -> EdgePersona:
    """A device that downloaded and adopted v3, with v2 published before it."""
    sdk = syncing_device(open_device, clock, sync_settings=SHADOW)
    release(backend, 2)
    release(backend, 3)
    adopt(sdk, clock, 3)
    return sdk


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_refused_and_the_device_keeps_its_last_good_bundle(
    attack: str,
    on_v3: EdgePersona,
    backend: Backend,
    network: DeviceNetwork,
    clock: ManualClock,
    tmp_path: Path,
    figures: Figures,
) -> None:
    mount, reason = ATTACKS[attack]
    mount(Scene(backend, network, clock, tmp_path))
    clock.advance(120)
    result = on_v3.sync(force=True)
    assert result.model.startswith("rejected v"), result
    assert re.search(reason, reasons(on_v3)[0]), reasons(on_v3)
    assert on_v3.model_status()["shadow"] is None
    assert models_in_use(on_v3, 5) == {3}
    assert not (tmp_path / "device" / "bundles" / "4.zip").exists()
    figures.add("update_attacks", "attacks_refused")
    figures.add("update_attacks", f"refused_{attack}")
    # The attack bricked nothing: the next genuine release, from the key the device pins, is
    # adopted (a stolen-key attack leaves the server signing with another key: restore it).
    backend.app.config["SIGNING_KEY_PATH"] = str(tmp_path / "registry.pem")
    release(backend, 5)
    adopt(on_v3, clock, 5)
    figures.add("update_attacks", "genuine_releases_adopted_after_an_attack")


def test_key_rotation_done_right(
    open_device: OpenDevice,
    clock: ManualClock,
    backend: Backend,
    network: DeviceNetwork,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """The app ships the new key beside the old one first, then the server rotates, then the
    next app release drops the old key: each step accepts exactly the right signatures."""
    old_key = backend.public_key
    new_private, new_public = tmp_path / "new.pem", tmp_path / "new.pub.json"
    generate_keypair(new_private, new_public)
    new_key = load_public_key(new_public)
    # 1. Before the app ships the new key, a bundle signed with it is refused.
    sdk = syncing_device(open_device, clock, sync_settings=SHADOW)
    backend.app.config["SIGNING_KEY_PATH"] = str(new_private)
    release(backend, 2)
    assert sdk.sync(force=True).model.startswith("rejected v2")
    assert "signed by an unknown key" in reasons(sdk)[0]
    figures.add("update_attacks", "attacks_refused")
    sdk.close()
    # 2. The app update pins both keys: the next release, signed with the new key, is adopted.
    sdk = open_device(public_key=[old_key, new_key], sync_settings=SHADOW)
    release(backend, 3)
    adopt(sdk, clock, 3)
    sdk.close()
    # 3. The next app update drops the old key: a release signed with it (a stolen old key)
    #    is refused, one signed with the new key is adopted.
    sdk = open_device(public_key=[new_key], sync_settings=SHADOW)
    backend.app.config["SIGNING_KEY_PATH"] = str(tmp_path / "registry.pem")
    release(backend, 4)
    clock.advance(120)
    assert sdk.sync(force=True).model.startswith("rejected v4")
    assert "signed by an unknown key" in reasons(sdk)[0]
    assert models_in_use(sdk, 3) == {3}
    figures.add("update_attacks", "attacks_refused")
    backend.app.config["SIGNING_KEY_PATH"] = str(new_private)
    release(backend, 5)
    adopt(sdk, clock, 5)
    figures.add("update_attacks", "key_rotations")
