"""Fences: app callbacks that fire when a condition over the moment becomes true.

An app registers ``on("moment.place == 'work' and not moment.is_weekend", callback)``; after
each commit of new signals (at most ``flush_interval_s`` after they were tracked, or at an
explicit ``flush()``) every fence is evaluated against the same context the playbook sees,
and fires once on each entry, that is when its condition turns from false to true. Google's
Awareness fences are being turned down; these run on the device with no service at all.

Callbacks run on the thread that committed (usually the SDK's writer thread): hand UI work
to your UI thread (Kivy: ``Clock.schedule_once``). An exception in a callback is logged and
never reaches the SDK.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ._conditions import Condition
from ._types import Moment

log = logging.getLogger("edgepersona.fences")


class Fence:
    """A registered fence; ``cancel()`` removes it."""

    def __init__(
        self, condition: Condition, callback: Callable[[Moment], object], registry: Fences
    ) -> None:
        self.condition = condition
        self.callback = callback
        self.inside = False
        self._registry = registry

    def cancel(self) -> None:
        self._registry.remove(self)


class Fences:
    def __init__(self) -> None:
        self._fences: list[Fence] = []
        self._lock = threading.Lock()
        self._evaluating = threading.Lock()

    def add(self, condition: Condition, callback: Callable[[Moment], object]) -> Fence:
        fence = Fence(condition, callback, self)
        with self._lock:
            self._fences.append(fence)
        return fence

    def remove(self, fence: Fence) -> None:
        with self._lock:
            if fence in self._fences:
                self._fences.remove(fence)

    def __bool__(self) -> bool:
        return bool(self._fences)

    def evaluate(self, context: Callable[[], tuple[Moment, Mapping[str, Any]]]) -> int:
        """Check every fence; call those just entered. Returns how many fired."""
        if not self._fences or not self._evaluating.acquire(blocking=False):
            return 0  # nothing to do, or a callback's own flush came back here
        try:
            moment, values = context()
            with self._lock:
                entered = []
                for fence in self._fences:
                    now_inside = fence.condition(values)
                    if now_inside and not fence.inside:
                        entered.append(fence)
                    fence.inside = now_inside
            for fence in entered:
                try:
                    fence.callback(moment)
                except Exception:
                    log.exception("fence callback for %r failed", fence.condition.source)
            return len(entered)
        finally:
            self._evaluating.release()
