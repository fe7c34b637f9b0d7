"""``sync()``: register, queue the week's private aggregate, send the queue, check for a model.

Nothing here runs unless the user granted ``sync`` and the app gave a ``backend_url``; then
the device makes at most: one registration, one POST per queued upload, one manifest poll and,
when a new signed model is offered, one download. ``sync()`` never raises for network
trouble: it returns a ``SyncResult`` saying what happened, and the app calls it again later.

How answers are handled (per upload): 2xx removes it (201 stored, 200 already stored: the
``upload_id`` makes a resend harmless); 400, 401, 403, 410, 413 and 422 drop it and count why,
so one bad upload never blocks the others (401 and 410 also forget the registration: the
server no longer knows this device, and the next sync registers again); 408, 429, 5xx and
network errors keep it and stop this round. A failed round waits an exponentially growing,
jittered, capped delay (``Retry-After`` wins when the server sends one); the failure count and
the next attempt are stored, so a restart does not retry early; a success resets them. An
upload is one week and is never split: a 413 means the server's limit is below one week's
payload (about 1 KB), so it is dropped and counted as ``too_large``.

When the device's own storage fails (disk full, I/O error) the round stops at that write and
returns ``storage_error``; nothing is half done, because every step is one transaction: the
week's budget is spent in the transaction that queues its upload, an upload's attempt is
counted before it is sent (so nothing is sent whose answer could not be recorded), and it
leaves the queue, with its log line, in the transaction that follows a 2xx. An upload the
server stored but the device could not delete is sent again and counted once by its
``upload_id``. Nothing about the failure can be stored, so the next ``sync()`` simply tries
again.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

import httpx
import numpy as np

from . import _uploads as uploads
from ._backoff import next_delay, retry_after
from ._consent import Consent
from ._decisions import Decider
from ._localtime import Zone, day_key
from ._store import Store, put_settings
from ._updates import ModelUpdater
from .clock import Clock
from .errors import StoreClosedError, StoreError
from .privacy import DEFAULT_EPSILON, MAX_EPSILON, MIN_EPSILON

__all__ = ["SyncResult", "SyncSettings", "Syncer"]

DROP_STATUSES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 410: "gone"}
DROP_STATUSES |= {413: "too_large", 422: "invalid"}
FORGET_REGISTRATION = (401, 410)


@dataclass(frozen=True)
class SyncSettings:
    """How the device syncs. Defaults suit a phone on a weekly aggregate."""

    epsilon_per_week: float = DEFAULT_EPSILON  # the local DP budget of one week's upload
    interval_s: float = 6 * 3600.0  # sync() does nothing sooner than this after a success
    backoff_base_s: float = 60.0
    backoff_cap_s: float = 6 * 3600.0
    max_retry_after_s: float = 24 * 3600.0
    max_queued: int = 8  # weeks kept while the server cannot be reached; oldest dropped
    max_queued_weeks: int = 8  # and none older than this many weeks
    timeout_s: float = 10.0
    shadow_decisions: int = 20  # decisions a new model runs beside the current one
    max_bundle_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not (
            isinstance(self.epsilon_per_week, (int, float))
            and MIN_EPSILON <= self.epsilon_per_week <= MAX_EPSILON
        ):
            raise ValueError(f"epsilon_per_week must be between {MIN_EPSILON} and {MAX_EPSILON}")
        for name in ("interval_s", "backoff_base_s", "backoff_cap_s", "timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        for name in ("max_queued", "max_queued_weeks", "shadow_decisions", "max_bundle_bytes"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer")


@dataclass(frozen=True)
class SyncResult:
    """What one ``sync()`` did. ``status`` is one of:

    ``synced`` (the server has every queued upload), ``nothing_to_send`` (reached the server,
    nothing was queued), ``not_due`` (the interval since the last sync has not passed),
    ``no_consent``, ``no_backend``, ``backing_off`` (waiting after failures, until
    ``next_attempt_at``), ``offline`` (network error or timeout), ``server_error`` (408, 429
    or 5xx), ``storage_error`` (the device's database could not be written, e.g. the disk is
    full: ``message`` says why; the queue and the model in use are as before the round, and
    the next ``sync()`` tries again).
    """

    status: str
    sent: int = 0
    pending: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    next_attempt_at: float | None = None
    model: str = "not checked"
    message: str = ""


class _RoundError(Exception):
    """This round stops; the queue is kept and the device backs off."""

    def __init__(self, status: str, message: str, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.wait_s = status, wait_s


@dataclass
class _Progress:
    """What a round has done so far, reported whichever way it ends."""

    sent: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    model: str = "not checked"


class Syncer:
    """The sync side of one ``EdgePersona``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        zone: Zone,
        consent: Consent,
        decider: Decider,
        updater: ModelUpdater,
        features: Callable[[], tuple[float, ...]],
        backend_url: str | None,
        transport: httpx.BaseTransport | None,
        settings: SyncSettings,
        rng: np.random.Generator,
    ) -> None:
        self._store = store
        self._clock = clock
        self._zone = zone
        self._consent = consent
        self._decider = decider
        self._updater = updater
        self._features = features
        self.url = backend_url
        self.transport = transport
        self.settings = settings
        self._rng = rng

    # -- the round ------------------------------------------------------------------------

    def sync(self, force: bool) -> SyncResult:
        if not self._consent.allows("sync"):
            return SyncResult("no_consent", message="Sync is off: the user has not allowed it.")
        if not self.url:
            return SyncResult("no_backend", message="No backend URL is configured.")
        progress = _Progress()
        try:
            return self._round(self.url, force, progress)
        except StoreClosedError:
            raise
        except StoreError as exc:
            return self._storage_failure(exc, progress)

    def _round(self, url: str, force: bool, progress: _Progress) -> SyncResult:
        now = self._clock.time()
        state = self._state()
        wait_until = float(state.get("sync.next_attempt_at", 0.0))
        honour = float(state.get("sync.retry_after_until", 0.0))
        if now < honour or (now < wait_until and not force):
            until = max(wait_until, honour)
            return self._finish(
                SyncResult(
                    "backing_off",
                    pending=self._pending_count(),
                    next_attempt_at=until,
                    message=f"Waiting {until - now:.0f} s after failures before retrying.",
                ),
            )
        last = float(state.get("sync.last_success_at", -math.inf))
        if not force and now - last < self.settings.interval_s:
            return SyncResult(
                "not_due",
                pending=self._pending_count(),
                next_attempt_at=last + self.settings.interval_s,
                message="Synced recently; nothing to do yet.",
            )
        self._queue_week(now)
        trimmed = self._store.write(
            partial(
                uploads.trim_queue,
                max_uploads=self.settings.max_queued,
                oldest_week=self._oldest_week(now),
                now=now,
            )
        )
        if trimmed:
            progress.dropped["queue_full"] = trimmed
        try:
            with httpx.Client(
                base_url=url, transport=self.transport, timeout=self.settings.timeout_s
            ) as client:
                headers = self._registration(client, state)
                self._send(client, headers, progress)
                progress.model = self._check_model(client, progress)
        except _RoundError as failure:
            result = SyncResult(
                failure.status,
                sent=progress.sent,
                pending=self._pending_count(),
                dropped=progress.dropped,
                model=progress.model,
                message=str(failure),
            )
            return self._finish(self._back_off(result, failure.wait_s, now))
        self._set(
            {"sync.failures": "0", "sync.next_attempt_at": None, "sync.last_success_at": repr(now)}
        )
        sent = progress.sent
        message = (
            f"Sent {sent} weekly upload{'s' if sent != 1 else ''}." if sent else "Nothing to send."
        )
        return self._finish(
            SyncResult(
                "synced" if sent else "nothing_to_send",
                sent=sent,
                pending=self._pending_count(),
                dropped=progress.dropped,
                model=progress.model,
                message=message,
            )
        )

    def _storage_failure(self, exc: StoreError, progress: _Progress) -> SyncResult:
        """The round stopped at a write that failed; every earlier step is complete."""
        try:
            pending = self._pending_count()
            queue = f"{pending} upload{'s' if pending != 1 else ''} kept in the queue"
        except StoreError:  # not even readable: the queue is as the last commit left it
            pending, queue = 0, "the queue cannot be read, and is as the last commit left it"
        # Nothing is recorded: the write that could record it is what failed. No backoff is
        # stored either, so the next sync() tries again at once.
        return SyncResult(
            "storage_error",
            sent=progress.sent,
            pending=pending,
            dropped=progress.dropped,
            model=progress.model,
            message=f"The device's storage failed ({exc}); {queue}, "
            "and the next sync() tries again.",
        )

    def _registration(self, client: httpx.Client, state: dict[str, str]) -> dict[str, str]:
        token = state.get("sync.token")
        if token is None:
            response = self._request(client, "POST", "/v1/devices")
            if response.status_code != 201:
                self._fail_on(response, "registration")  # a 429/503's Retry-After is honoured
            try:
                body = response.json()
                device_id, token = str(body["device_id"]), str(body["token"])
            except (ValueError, KeyError, TypeError):
                raise _RoundError("server_error", "registration answered without a token") from None
            self._set({"sync.device_id": device_id, "sync.token": token})
        return {"Authorization": f"Bearer {token}"}

    def _send(self, client: httpx.Client, headers: dict[str, str], progress: _Progress) -> None:
        for upload_id, _week, payload in self._store.read_committed(uploads.pending):
            # Counted before sending: a store that cannot count it could not record the answer.
            self._store.write(partial(uploads.count_attempt, upload_id=upload_id))
            response = self._request(
                client,
                "POST",
                "/v1/aggregates",
                content=payload.encode(),
                headers={**headers, "Content-Type": "application/json"},
            )
            code = response.status_code
            now = self._clock.time()
            if 200 <= code < 300:
                self._store.write(partial(uploads.record_sent, upload_id=upload_id, now=now))
                progress.sent += 1
            elif code in DROP_STATUSES:
                reason = DROP_STATUSES[code]
                forget = code in FORGET_REGISTRATION
                record = _forgotten if forget else uploads.drop_upload
                detail = f"{upload_id}: {response.text[:200]}"
                self._store.write(
                    partial(record, upload_id=upload_id, reason=reason, detail=detail, now=now)
                )
                progress.dropped[reason] = progress.dropped.get(reason, 0) + 1
                if forget:
                    raise _RoundError(
                        "server_error", f"the server answered {code}; registering again next time"
                    )
            else:
                self._fail_on(response)

    def _check_model(self, client: httpx.Client, progress: _Progress) -> str:
        token = self._store.setting("sync.token")
        if token is None:
            return "not checked"
        try:
            return self._updater.check(client, {"Authorization": f"Bearer {token}"})
        except StoreError:
            progress.model = self._updater.outcome  # concluded, though it could not be stored
            raise
        except httpx.HTTPStatusError as exc:  # the manifest poll or the bundle download
            self._fail_on(exc.response, f"GET {exc.request.url.path}")
        except httpx.HTTPError as exc:
            raise _RoundError("offline", f"the model check failed: {type(exc).__name__}") from None

    def _request(
        self, client: httpx.Client, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            return client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _RoundError(
                "offline", f"{method} {path} failed: {type(exc).__name__}: {exc}"
            ) from None

    def _fail_on(self, response: httpx.Response, what: str = "the server") -> NoReturn:
        wait = retry_after(
            response.headers.get("Retry-After"), self._clock.time(), self.settings.max_retry_after_s
        )
        raise _RoundError("server_error", f"{what} answered {response.status_code}", wait)

    # -- the week's upload ----------------------------------------------------------------

    def _queue_week(self, now: float) -> None:
        """Queue the last complete week's upload once, if the device saw anything that week."""
        local_now = now + self._zone.offset(now)
        week = uploads.previous_week(local_now)
        start, end = uploads.week_bounds(week)
        bundle = self._decider.bundle()
        if bundle is None:
            return
        # Read before the write transaction: both read the store, which that would hold.
        estimate = self._decider.persona()
        features = self._features()

        def queue(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM privacy_budget WHERE week = ?", (week,)).fetchone():
                return
            first_day, last_day = day_key(start), day_key(end - 1)
            seen = conn.execute(
                "SELECT 1 FROM rollup_daily WHERE day BETWEEN ? AND ? LIMIT 1",
                (first_day, last_day),
            ).fetchone()
            if not seen:
                return
            counts: dict[str, list[float]] = {}
            for offer, outcome, n in conn.execute(
                "SELECT offer_id, outcome, COUNT(*) FROM feedback "
                "WHERE ts + utc_offset >= ? AND ts + utc_offset < ? GROUP BY 1, 2",
                (start, end),
            ):
                counts.setdefault(offer, [0.0, 0.0])[outcome == "dismissed"] += n
            payload = uploads.build_payload(
                week=week,
                features=features,
                persona=estimate.id if estimate is not None else bundle.persona_ids[0],
                personas=bundle.persona_ids,
                outcome_counts={k: (v[0], v[1]) for k, v in counts.items()},
                offers=sorted(bundle.playbook.offers),
                epsilon=float(self.settings.epsilon_per_week),
                model_version=bundle.version,
                rng=self._rng,
            )
            uploads.enqueue(conn, payload, now)

        self._store.write(queue)

    def _oldest_week(self, now: float) -> str:
        local_now = now + self._zone.offset(now)
        return uploads.iso_week(local_now - 7 * 86400 * self.settings.max_queued_weeks)

    # -- state ----------------------------------------------------------------------------

    def _back_off(self, result: SyncResult, wait_s: float | None, now: float) -> SyncResult:
        failures = int(self._state().get("sync.failures", "0")) + 1
        delay = next_delay(
            failures, self.settings.backoff_base_s, self.settings.backoff_cap_s, self._rng.random()
        )
        if wait_s is not None:
            delay = max(delay, wait_s)
        until = now + delay
        self._set(
            {
                "sync.failures": str(failures),
                "sync.next_attempt_at": repr(until),
                "sync.retry_after_until": repr(now + wait_s) if wait_s is not None else None,
            }
        )
        return SyncResult(
            result.status,
            sent=result.sent,
            pending=result.pending,
            dropped=result.dropped,
            next_attempt_at=until,
            model=result.model,
            message=result.message,
        )

    def _finish(self, result: SyncResult) -> SyncResult:
        self._set(
            {
                "sync.last_result": f"{result.status}: {result.message}",
                "sync.last_attempt_at": repr(self._clock.time()),
            }
        )
        return result

    def status(self) -> dict[str, Any]:
        """What ``EdgePersona.sync_status()`` reports."""
        state = self._state()
        now = self._clock.time()
        week = uploads.previous_week(now + self._zone.offset(now))

        def read(db: Any) -> tuple[Any, ...]:
            spent = db.execute(
                "SELECT COALESCE(SUM(epsilon), 0) FROM privacy_budget WHERE week = ?", (week,)
            ).fetchone()[0]
            total = db.execute("SELECT COALESCE(SUM(epsilon), 0) FROM privacy_budget").fetchone()[0]
            return spent, total

        spent, total = self._store.read_committed(read)
        drops = {
            key.removeprefix("sync.dropped."): int(value)
            for key, value in state.items()
            if key.startswith("sync.dropped.")
        }
        return {
            "enabled": self._consent.allows("sync") and bool(self.url),
            "backend_url": self.url,
            "registered": "sync.token" in state,
            "device_id": state.get("sync.device_id"),
            "pending": self._pending_count(),
            "last_sync_at": _float(state.get("sync.last_success_at")),
            "last_attempt_at": _float(state.get("sync.last_attempt_at")),
            "last_result": state.get("sync.last_result"),
            "next_attempt_at": _float(state.get("sync.next_attempt_at")),
            "failures": int(state.get("sync.failures", "0")),
            "epsilon": {
                "week": week,
                "spent": float(spent),
                "budget": float(self.settings.epsilon_per_week),
                "spent_all_time": float(total),
            },
            "dropped": drops,
        }

    def last_upload(self) -> dict[str, Any] | None:
        row = self._store.read_committed(
            lambda db: db.execute(
                "SELECT payload, sent_at, bytes FROM uploads_sent ORDER BY sent_at DESC, week DESC "
                "LIMIT 1"
            ).fetchone()
        )
        if row is None:
            return None
        return {"payload": json.loads(row[0]), "sent_at": row[1], "bytes": row[2]}

    def forget(self) -> None:
        """``sync`` was revoked: purge the queue (what was sent stays listed for the user)."""
        self._store.write(partial(uploads.purge, now=self._clock.time()))

    def registration(self) -> tuple[str | None, str | None]:
        state = self._state()
        return state.get("sync.device_id"), state.get("sync.token")

    def _pending_count(self) -> int:
        return int(
            self._store.read_committed(
                lambda db: db.execute("SELECT COUNT(*) FROM upload_queue").fetchone()[0]
            )
        )

    def _state(self) -> dict[str, str]:
        return self._store.settings_under("sync.")

    def _set(self, values: dict[str, str | None]) -> None:
        self._store.write(partial(put_settings, values=values))


def _forgotten(
    conn: sqlite3.Connection, upload_id: str, reason: str, detail: str, now: float
) -> None:
    """401/410: the upload dropped and counted, and the registration forgotten, at once."""
    uploads.drop_upload(conn, upload_id, reason, detail, now)
    put_settings(conn, {"sync.token": None, "sync.device_id": None})


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)
