"""The consent ledger: what the user allowed, and an audit trail of every change."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from ._store import Store
from .clock import Clock
from .errors import InvalidPurposeError

PURPOSES = ("personalization", "location", "sync")
KINDS_OF_PURPOSE: dict[str, frozenset[str]] = {
    "personalization": frozenset({"app", "screen", "event", "session", "decision", "feedback"}),
    "location": frozenset({"location"}),
    "sync": frozenset(),
}
# What the device derived from a purpose's signals goes with them.
TABLES_OF_PURPOSE: dict[str, tuple[str, ...]] = {
    "personalization": ("corrections",),
    "location": ("stays", "places"),
    "sync": (),
}


class Consent:
    """Per-purpose consent, all off until granted.

    ``allows()`` is a dict lookup, so the ``track_*`` hot path can ask it on every call.
    Revoking a purpose deletes what was collected under it: withdrawal means the data goes.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy_version: str,
        on_revoke: Callable[[str], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy_version = policy_version
        self._on_revoke = on_revoke
        self._lock = threading.Lock()
        rows = store.read(lambda db: db.execute("SELECT purpose, granted FROM consent").fetchall())
        self._granted = dict.fromkeys(PURPOSES, False)
        self._granted.update({purpose: bool(granted) for purpose, granted in rows})

    def allows(self, purpose: str) -> bool:
        return self._granted[purpose]

    def grant(
        self, purpose: str, *, policy_version: str | None = None, source: str = "app"
    ) -> None:
        """Allow ``purpose`` from now on; recorded in the audit log.

        Raises:
            InvalidPurposeError: ``purpose`` is not one of personalization, location, sync.
        """
        self._record(_checked(purpose), True, policy_version, source)

    def revoke(
        self, purpose: str, *, policy_version: str | None = None, source: str = "app"
    ) -> None:
        """Stop ``purpose`` and delete the data it covered; recorded in the audit log.

        Raises:
            InvalidPurposeError: ``purpose`` is not one of personalization, location, sync.
        """
        self._record(_checked(purpose), False, policy_version, source)

    def status(self, purpose: str | None = None) -> Any:
        """``True``/``False`` for one purpose, or a dict of all three when none is named.

        Raises:
            InvalidPurposeError: ``purpose`` is not one of personalization, location, sync.
        """
        if purpose is None:
            return dict(self._granted)
        return self._granted[_checked(purpose)]

    def audit(self) -> list[dict[str, Any]]:
        """Every grant and revoke, oldest first."""
        return self._store.read(
            lambda db: list(
                db["consent_audit"].rows_where(
                    order_by="id", select=("ts, purpose, action, policy_version, source")
                )
            )
        )

    def _record(self, purpose: str, granted: bool, policy_version: str | None, source: str) -> None:
        version = policy_version or self._policy_version
        now = self._clock.time()
        with self._lock:
            if not granted:
                self._granted[purpose] = False  # stop collecting before deleting

            def write(conn: sqlite3.Connection) -> None:
                conn.execute(
                    "INSERT INTO consent (purpose, granted, policy_version, ts) "
                    "VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET granted = excluded.granted, "
                    "policy_version = excluded.policy_version, ts = excluded.ts",
                    (purpose, int(granted), version, now),
                )
                conn.execute(
                    "INSERT INTO consent_audit (ts, purpose, action, policy_version, source) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (now, purpose, "grant" if granted else "revoke", version, source),
                )

            self._store.write(write)
            if granted:
                self._granted[purpose] = True
            else:
                self._store.delete_kinds(set(KINDS_OF_PURPOSE[purpose]), TABLES_OF_PURPOSE[purpose])
                self._on_revoke(purpose)  # in-memory state follows what remains on disk


def _checked(purpose: object) -> str:
    if not isinstance(purpose, str) or purpose not in KINDS_OF_PURPOSE:
        raise InvalidPurposeError(
            f"unknown consent purpose {purpose!r}; accepted: {', '.join(PURPOSES)}"
        )
    return purpose
