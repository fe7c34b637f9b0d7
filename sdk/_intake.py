"""Signal intake: the consent gate, repeats, and the open foreground rows before the store.

``EdgePersona`` validates each signal on the caller's thread and hands it here. Without its
consent, or repeating the last signal of its kind, it is dropped and counted in memory only (a
declined consent leaves no trace on disk); otherwise it goes to the store's buffer, which
drops it (counted here as ``storage_full`` too) only when it is full and the disk cannot take
it. App and screen rows stay open until the next one closes them, and closed app rows make
sessions.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from ._consent import KINDS_OF_PURPOSE, Consent
from ._localtime import Zone
from ._signals import ClosedRow, ForegroundStream, SessionTracker
from ._store import Store

RECENT_APP_S = 900.0  # an app counts as the moment's recent app for 15 minutes


class Intake:
    """Thread-safe: state changes under ``lock``, which decisions share to append their rows."""

    def __init__(
        self, store: Store, consent: Consent, lock: threading.Lock, foreground_cap_s: float
    ) -> None:
        self._store = store
        self._consent = consent
        self._lock = lock
        self._streams = {kind: ForegroundStream(foreground_cap_s) for kind in ("app", "screen")}
        self._sessions = SessionTracker()
        self._last_row: dict[str, tuple[float, tuple[Any, ...]]] = {}
        self._recent_app: tuple[float, str] | None = None
        self.dropped: Counter[str] = Counter()  # "<kind>.<reason>" -> signals dropped

    def drop(self, kind: str, reason: str) -> bool:
        """Count a dropped signal; returns ``False``, what a dropping ``track_*`` returns."""
        self.dropped[f"{kind}.{reason}"] += 1
        return False

    def record(self, kind: str, ts: float, zone: Zone, fields: tuple[Any, ...]) -> bool:
        """An ``event`` or a ``location`` fix; ``False`` if dropped."""
        purpose = "location" if kind == "location" else "personalization"
        if not self._consent.allows(purpose):
            return self.drop(kind, "no_consent")
        row = (ts, fields)  # the repeat test compares the time, then the fields
        with self._lock:
            if self._last_row.get(kind) == row:
                return self.drop(kind, "duplicate")
            self._last_row[kind] = row
            if not self._store.append(kind, ts, zone, fields):
                return self.drop(kind, "storage_full")
        return True

    def foreground(
        self,
        kind: str,
        ts: float,
        zone: Zone,
        fields: tuple[Any, ...],
        duration_s: float | None,
    ) -> bool:
        """An ``app`` or ``screen`` came to the foreground; ``False`` if dropped."""
        if not self._consent.allows("personalization"):
            return self.drop(kind, "no_consent")
        with self._lock:
            closed = self._streams[kind].push(ts, zone, fields, duration_s)
            if closed is None:
                return self.drop(kind, "duplicate")
            for row in closed:
                self._append_closed(kind, row)
            if kind == "app":
                self._recent_app = (ts, fields[1])
        return True

    def recent_app_category(self, now: float) -> str | None:
        """The category of the app tracked last, if that was at most 15 minutes ago."""
        recent = self._recent_app
        return recent[1] if recent and now - recent[0] <= RECENT_APP_S else None

    def close(self, now: float) -> None:
        """Close the open foreground rows and session at ``now`` into the store's buffer."""
        with self._lock:
            for kind, stream in self._streams.items():
                for row in stream.close_at(now):
                    self._append_closed(kind, row)
            for session in self._sessions.close():
                self._append("session", session.ts, session.zone, session.fields)

    def discard(self) -> None:
        """Forget the open foreground rows and session (the store is being erased)."""
        with self._lock:
            self._discard_open()

    def forget(self, purpose: str) -> None:
        """Consent to ``purpose`` was withdrawn: drop what is held in memory for it."""
        if "app" in KINDS_OF_PURPOSE[purpose]:
            with self._lock:
                self._discard_open()
                self._last_row.pop("event", None)
                self._recent_app = None
        if purpose == "location":
            with self._lock:
                self._last_row.pop("location", None)

    def _discard_open(self) -> None:
        for stream in self._streams.values():
            stream.discard()
        self._sessions.discard()

    def _append_closed(self, kind: str, row: ClosedRow) -> None:
        """Store a closed foreground row; app rows also make sessions. Caller holds the lock."""
        self._append(kind, row.ts, row.zone, row.fields)
        if kind == "app":
            session = self._sessions.add(row)
            if session is not None:
                self._append("session", session.ts, session.zone, session.fields)

    def _append(self, kind: str, ts: float, zone: Zone, fields: tuple[Any, ...]) -> None:
        """Buffer a row the app's call did not carry itself (a closed foreground row, a
        session), counting it when the store drops it (storage full)."""
        if not self._store.append(kind, ts, zone, fields):
            self.drop(kind, "storage_full")
