"""The demo app's model: the SDK of the phone in use, and everything the screens ask of it.

No Kivy here: the screens call these methods and show what they return, so the behaviour is
tested without a window. A "phone" is one SDK data directory: ``this-device`` for real
signals, ``simulated-<persona>`` for each simulated persona. Nothing is created on disk
before the user has made a consent choice; "erase everything" leaves no database behind.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from edgepersona.sdk import (
    PURPOSES,
    Decision,
    EdgePersona,
    InvalidSignalError,
    LocationUnavailableError,
    PersonaEstimate,
    SyncResult,
)

from . import catalog, views
from .settings import SPEEDS, AppSettings, load_settings, save_settings
from .simulator import SimulatedPhone, first_day_for

__all__ = ["APP_ID", "Session"]

APP_ID = "com.edgepersona.demo"
OFFER_IDS = tuple(catalog.OFFERS)
SETTINGS_FILE = "app-settings.json"
PHONES = "phones"


class Session:
    """One run of the app: the settings, the open SDK (``None`` until consent is chosen)
    and, in simulated mode, the simulated phone feeding it.

    Args:
        data_dir: the app's private directory (Kivy's ``user_data_dir`` in a real run).
        defaults: settings for a first start (e.g. real signals on a phone).
        overrides: settings given on the command line; they replace the stored ones.
        today: the date the simulated days are placed around (default: today).
        transport: the httpx transport for everything the SDK sends (tests).
        seed: seeds the SDK's randomness (tests and screenshots only).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        defaults: AppSettings | None = None,
        overrides: dict[str, str] | None = None,
        today: date | None = None,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._settings_path = self.data_dir / SETTINGS_FILE
        self.settings = load_settings(self._settings_path, defaults or AppSettings())
        if overrides:
            self._save(self.settings.with_changes(**overrides))
        self._today = today
        self._transport = transport
        self._seed = seed
        self.sdk: EdgePersona | None = None
        self.phone: SimulatedPhone | None = None
        self.notice = ""  # something the user should know, e.g. "no GPS on this platform"
        self.last_sync: SyncResult | None = None
        if self.phone_dir().exists():
            self.sdk = self._open()
            self.start_signals()

    # -- the phone in use ---------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        return self.settings.signals == "simulated"

    def phone_dir(self) -> Path:
        """The SDK's data directory of the phone in use."""
        if self.settings.signals == "device":
            return self.data_dir / PHONES / "this-device"
        return self.data_dir / PHONES / f"simulated-{self.settings.persona}"

    @property
    def needs_consent(self) -> bool:
        """True until the user has answered the consent screen for this phone."""
        return self.sdk is None or not self.sdk.consent.audit()

    @property
    def zone(self) -> ZoneInfo | None:
        """The zone of times shown for this phone (``None``: the machine's)."""
        return self.phone.zone if self.phone is not None else None

    def choose(self, allowed: dict[str, bool], source: str = "consent screen") -> None:
        """The user's answer to the consent screen; each purpose is recorded either way."""
        if self.sdk is None:
            self.sdk = self._open()
        for purpose in PURPOSES:
            if allowed.get(purpose, False):
                self.sdk.consent.grant(purpose, source=source)
            else:
                self.sdk.consent.revoke(purpose, source=source)
        self.start_signals()

    def set_purpose(self, purpose: str, allowed: bool) -> None:
        """A switch of the privacy centre; turning one off deletes what it collected."""
        sdk = self._sdk()
        if allowed:
            sdk.consent.grant(purpose, source="privacy centre")
        else:
            sdk.consent.revoke(purpose, source="privacy centre")
        if purpose == "location" and not self.simulated:
            self.start_signals()

    def switch(self, *, signals: str | None = None, persona: str | None = None) -> None:
        """Use another phone: real signals, or another simulated persona.

        A phone opened for the first time gets the consent choices of the one in use,
        recorded in its audit log as carried over.
        """
        carried = self._sdk().consent.status()
        self.close()
        changes = {k: v for k, v in (("signals", signals), ("persona", persona)) if v}
        self._save(self.settings.with_changes(**changes))
        fresh = not self.phone_dir().exists()
        self.sdk = self._open()
        if fresh:
            self.choose(carried, source="carried over from the previous phone")
        else:
            self.start_signals()

    def close(self) -> None:
        """Remember where the simulation is and close the SDK."""
        if self.sdk is None:
            return
        self.remember()
        self.sdk.close()
        self.sdk, self.phone = None, None

    def remember(self) -> None:
        """Save how far the simulated phone has played, so a restart continues from there."""
        if self.phone is not None:
            progress = {"first_day": self.phone.first_day.isoformat(), "at": self.now()}
            self._save(
                self.settings.with_changes(
                    simulated={**self.settings.simulated, self.phone.persona_id: progress}
                )
            )

    # -- time -------------------------------------------------------------------------------

    def now(self) -> float:
        return self._sdk().local_time().ts

    def advance(self, real_seconds: float) -> int:
        """Play the simulation for ``real_seconds`` at the chosen speed; rows fed."""
        if self.phone is None or self.phone.finished:
            return 0
        return self.phone.advance(self._sdk(), real_seconds * SPEEDS[self.settings.speed])

    def skip_to(self, hour: int) -> int:
        """Play the simulation until the next ``hour``:00; rows fed."""
        return self.phone.skip_to(self._sdk(), hour) if self.phone is not None else 0

    def set_speed(self, label: str) -> None:
        if label not in SPEEDS:
            raise ValueError(f"unknown speed {label!r}; choose one of {', '.join(SPEEDS)}")
        self._save(self.settings.with_changes(speed=label))

    # -- what the screens show ------------------------------------------------------------

    def moment_key(self) -> tuple[object, ...]:
        """Changes exactly when the home screen's decision may change."""
        sdk = self._sdk()
        moment, estimate = sdk.context(), sdk.persona()
        persona = (estimate.id, estimate.model_version) if estimate else None
        return (moment.time_of_day, moment.place, moment.moving, moment.is_weekend, persona)

    def moment_text(self) -> str:
        moment = self._sdk().context()
        return views.moment_text(moment.local_time, moment.place, moment.moving)

    def decide(self, surface: str) -> Decision:
        return self._sdk().decide(surface, OFFER_IDS)

    def feedback(self, decision: Decision, offer_id: str, outcome: str) -> bool:
        return self._sdk().feedback(decision, offer_id, outcome)

    def track_screen(self, name: str) -> None:
        self._sdk().track_screen(name)

    def persona(self) -> PersonaEstimate | None:
        return self._sdk().persona()

    def reject_persona(self, persona_id: str | None) -> None:
        self._sdk().reject_persona(persona_id)

    def places(self) -> tuple[views.PlaceView, ...]:
        return views.place_views(self._sdk().places())

    def place_count(self) -> int:
        return len(self._sdk().places())

    def features(self) -> tuple[views.FeatureView, ...]:
        return views.feature_views(self._sdk().features())

    def consent(self) -> dict[str, bool]:
        return dict(self._sdk().consent.status())

    def audit(self) -> tuple[str, ...]:
        return views.audit_lines(self._sdk().consent.audit(), self.zone)

    # -- privacy ----------------------------------------------------------------------------

    def export(self, folder: Path) -> Path:
        """Write everything the SDK holds to a new JSON file in ``folder``; its path."""
        stamp = datetime.fromtimestamp(self.now(), self.zone).strftime("%Y%m%d-%H%M%S")
        path = folder / f"edgepersona-export-{stamp}.json"
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._sdk().export(), indent=1, sort_keys=True), "utf-8")
        return path

    def erase_everything(self) -> str:
        """Erase every phone's data (here and, where one was registered, on the server);
        what happened, in one sentence. The consent screen comes next."""
        outcomes = []
        if self.sdk is not None:
            outcomes.append(self.sdk.erase())
            self.sdk, self.phone = None, None
        phones = self.data_dir / PHONES
        for folder in sorted(phones.iterdir()) if phones.exists() else ():
            outcomes.append(self._open_for_erase(folder).erase())
        shutil.rmtree(phones, ignore_errors=True)  # only empty folders are left by erase()
        self._save(self.settings.with_changes(simulated={}))
        servers = {o["server"] for o in outcomes}
        failed = sorted(s for s in servers if s.startswith("failed"))
        if failed:
            return (
                "Everything on this phone is erased. The server could not be reached "
                f"({failed[0]}); it keeps only noised weekly summaries, never places or apps."
            )
        if "deleted" in servers:
            return "Everything is erased, on this phone and on the server."
        return "Everything on this phone is erased. Nothing was ever sent to a server."

    # -- sync and models --------------------------------------------------------------------

    def set_backend(self, url: str) -> None:
        """Use the sync service at ``url`` ("" turns sync off); the SDK is reopened with it.

        Raises:
            InvalidSignalError: ``url`` is not an http(s) URL; the previous one stays.
        """
        previous = self.settings
        self.close()
        self._save(previous.with_changes(backend_url=url.strip()))
        try:
            self.sdk = self._open()
        except InvalidSignalError:
            self._save(previous)
            self.sdk = self._open()
            raise
        finally:
            self.start_signals()

    def sync(self, force: bool) -> SyncResult:
        """One sync round (``force`` for the "sync now" button); never raises for network
        trouble. Makes no request without sync consent and a backend URL."""
        self.last_sync = self._sdk().sync(force=force)
        return self.last_sync

    def sync_status(self) -> dict[str, Any]:
        return self._sdk().sync_status()

    def model_status(self) -> dict[str, Any]:
        return self._sdk().model_status()

    def last_upload(self) -> dict[str, Any] | None:
        return self._sdk().last_upload()

    def use_bundle(self, path: Path) -> int:
        """Switch to a local model bundle (developers trying a playbook); the version in use.

        Raises:
            ModelError: the bundle was refused; the current one stays.
        """
        return self._sdk().use_bundle(path)

    # -- internals --------------------------------------------------------------------------

    def _sdk(self) -> EdgePersona:
        if self.sdk is None:
            raise RuntimeError("no phone is open: the user has not answered the consent screen")
        return self.sdk

    def _open(self) -> EdgePersona:
        settings = self.settings
        sync: dict[str, Any] = {
            "backend_url": settings.backend_url or None,
            "public_key": settings.public_key or None,
            "transport": self._transport,
            "seed": self._seed,
        }
        if not self.simulated:
            self.phone = None
            return EdgePersona.open(self.phone_dir(), APP_ID, **sync)
        progress = settings.simulated.get(settings.persona, {})
        fresh = not self.phone_dir().exists() or "first_day" not in progress
        first_day = (
            first_day_for(self._today or date.today())
            if fresh
            else date.fromisoformat(progress["first_day"])
        )
        self.phone = SimulatedPhone(settings.persona, first_day)
        if not fresh:
            self.phone.resume(float(progress["at"]))
        return EdgePersona.open(
            self.phone_dir(), APP_ID, clock=self.phone.clock, tz=self.phone.tz, **sync
        )

    def _open_for_erase(self, folder: Path) -> EdgePersona:
        return EdgePersona.open(
            folder,
            APP_ID,
            backend_url=self.settings.backend_url or None,
            transport=self._transport,
        )

    def start_signals(self) -> None:
        """Simulated: catch up the history. Real: GPS through plyer, if location is allowed."""
        sdk = self.sdk
        if sdk is None or self.needs_consent:
            return
        if self.phone is not None:
            self.phone.catch_up(sdk)
            self.remember()
            return
        self.notice = ""
        if sdk.consent.status("location"):
            try:
                sdk.start_location("responsive")
            except LocationUnavailableError:
                self.notice = "This device has no GPS the app can use: no places will be found."

    def _save(self, settings: AppSettings) -> None:
        self.settings = settings
        save_settings(self._settings_path, settings)
