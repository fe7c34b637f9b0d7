"""Counters in the Prometheus text format, kept per worker process.

Each gunicorn worker counts what it served; Prometheus scrapes workers and sums them (or, behind
one address, sees whichever worker answered). Counting per process keeps the request path free
of database writes; a fleet-wide view of uploads comes from the aggregates table itself.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from flask import Flask

__all__ = ["METRICS", "Metrics", "metrics"]

_EXTENSION = "edgepersona.metrics"
# Every metric this service exports (all counters): help text and label names.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "edgepersona_http_requests_total": (
        "HTTP requests answered, by endpoint, method and status.",
        ("endpoint", "method", "status"),
    ),
    "edgepersona_uploads_accepted_total": ("Aggregate uploads stored.", ()),
    "edgepersona_uploads_duplicate_total": ("Aggregate uploads answered as already stored.", ()),
    "edgepersona_upload_rejections_total": (
        "Aggregate uploads refused, by error code and (for invalid payloads) top-level field.",
        ("field", "reason"),
    ),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Thread-safe counters, rendered in the Prometheus text exposition format 0.0.4."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[Labels, int]] = {name: defaultdict(int) for name in METRICS}

    def inc(self, name: str, **labels: str) -> None:
        """Add one to the counter ``name`` with exactly its declared labels."""
        key = _key(name, labels)
        with self._lock:
            self._counts[name][key] += 1

    def value(self, name: str, **labels: str) -> int:
        """The current count of ``name`` with these labels (0 if never counted)."""
        key = _key(name, labels)
        with self._lock:
            return self._counts[name].get(key, 0)

    def render(self) -> str:
        """Every counter as Prometheus text; an unlabelled one never incremented shows 0."""
        lines: list[str] = []
        with self._lock:
            for name, (help_text, label_names) in METRICS.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                series = dict(self._counts[name])
                if not label_names:
                    series.setdefault((), 0)
                for labels, count in sorted(series.items()):
                    lines.append(f"{name}{_labels(labels)} {count}")
        return "\n".join(lines) + "\n"


def metrics(app: Flask) -> Metrics:
    """The counters of ``app``, created on first use."""
    found: Metrics = app.extensions.setdefault(_EXTENSION, Metrics())
    return found


def _key(name: str, labels: dict[str, str]) -> Labels:
    if tuple(sorted(labels)) != METRICS[name][1]:
        raise ValueError(f"{name} takes the labels {METRICS[name][1]}, got {sorted(labels)}")
    return tuple(sorted(labels.items()))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
