"""When to try the backend again: exponential backoff with jitter, and ``Retry-After``.

Pure functions of the failure count, a random draw and the clock, so the schedule is tested
without waiting. The state they act on (failures, next attempt) is kept in the store by the
caller, so a restarted app does not hammer a server that was failing before it died.
"""

from __future__ import annotations

import email.utils
import math

__all__ = ["next_delay", "retry_after"]


def next_delay(failures: int, base_s: float, cap_s: float, draw: float) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1 for the first).

    "Equal jitter": half of the capped exponential step is fixed, the other half random
    (``draw`` in [0, 1)), so devices that failed together do not retry together, yet none
    retries sooner than half the step.
    """
    step = min(cap_s, base_s * 2.0 ** min(max(failures, 1) - 1, 60))
    return step / 2 + draw * step / 2


def retry_after(value: str | None, now: float, cap_s: float) -> float | None:
    """The delay a ``Retry-After`` header asks for (delta-seconds or an HTTP date), capped.

    ``None`` when the header is absent or unreadable: the caller's own backoff applies.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)
