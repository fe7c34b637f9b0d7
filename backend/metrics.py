"""Prometheus metrics: counters summed over every worker of a host, gauges read from the database.

**Counters** (requests, uploads, rejections, model answers) are prometheus_client counters.
Under gunicorn, start the service with ``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory
that only this service writes: prometheus_client then keeps each worker's counters in a
memory-mapped file there (an increment is a write to memory, no lock shared between workers,
no database write on the request path), and ``/metrics``, whichever worker answers it, sums
the files of every worker, past and present. Without the variable each process counts alone,
which is right for one process (the dev server, tests). prometheus_client reads the variable
once, when it is imported, before any app exists; this module asks it which mode it chose.

**Gauges** that describe the fleet rather than a process (each version's rollout and the share
of devices it serves) are read from the database at every scrape, so every worker and every
host answers the same; a scrape that cannot reach the database still answers the counters,
with ``edgepersona_database_up 0``.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from .db import engine
from .errors import ConfigError
from .fleet import serving_versions

__all__ = ["METRICS", "Metrics", "metrics"]

_EXTENSION = "edgepersona.metrics"
# Every counter this service exports: help text and label names.
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
    "edgepersona_model_manifests_served_total": (
        "GET /v1/models/current answers by the version named (none for a 204) and status "
        "(200 sent the manifest, 304 the device already had it).",
        ("status", "version"),
    ),
    "edgepersona_model_bundles_served_total": (
        "Model bundle zips sent, by version.",
        ("version",),
    ),
}
# Gauges computed from the database at each scrape.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "edgepersona_model_rollout_percent": (
        "Rollout share of each version that can be served (and of the candidates above them).",
        ("kind", "version"),
    ),
    "edgepersona_model_device_share": (
        "Expected fraction of devices that GET /v1/models/current sends to each version.",
        ("version",),
    ),
    "edgepersona_database_up": ("1 if this scrape could read the model registry, else 0.", ()),
}


class Metrics:
    """The counters of one app and the registry ``/metrics`` renders."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        shared = bool(getattr(values.ValueClass, "_multiprocess", False))
        # Counters are not registered anywhere when shared: their values live in files,
        # which the multiprocess collector reads.
        own = None if shared else CollectorRegistry(auto_describe=True)
        self._counters = {
            name: Counter(name, help_text, labels, registry=own)
            for name, (help_text, labels) in METRICS.items()
        }
        self.registry = own or CollectorRegistry(auto_describe=True)
        if shared:
            try:
                multiprocess.MultiProcessCollector(self.registry)
            except ValueError:
                raise ConfigError(
                    "PROMETHEUS_MULTIPROC_DIR is set but is not a directory; create it (empty, "
                    "writable by the service) or unset the variable"
                ) from None
        self.registry.register(_RegistryGauges(app))

    def inc(self, name: str, **labels: str) -> None:
        """Add one to the counter ``name`` with exactly its declared labels."""
        declared = METRICS[name][1]
        if tuple(sorted(labels)) != declared:
            raise ValueError(f"{name} takes the labels {declared}, got {sorted(labels)}")
        counter = self._counters[name]
        (counter.labels(**labels) if declared else counter).inc()

    def render(self) -> str:
        """Every metric in the Prometheus text format 0.0.4, series sorted by labels.

        Written here rather than by ``prometheus_client.generate_latest`` so that counts print
        as integers and counters carry no ``_created`` series (multiprocess mode has none).
        """
        lines: list[str] = []
        for family in sorted(self.registry.collect(), key=lambda f: f.name):
            name = family.name + "_total" if family.type == "counter" else family.name
            lines += [f"# HELP {name} {family.documentation}", f"# TYPE {name} {family.type}"]
            samples = sorted(
                (tuple(sorted(s.labels.items())), s.value) for s in family.samples if s.name == name
            )
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
        return "\n".join(lines) + "\n"


class _RegistryGauges(Collector):
    """The model registry's gauges, read from the app's database at each scrape."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def describe(self) -> list[Metric]:
        return []  # nothing read from the database just to register the collector

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(name, help_text, labels=labels)
            for name, (help_text, labels) in GAUGES.items()
        }
        try:
            with engine(self._app).connect() as conn:
                versions = serving_versions(conn)
        except SQLAlchemyError as exc:
            self._app.logger.warning("metrics cannot read the model registry: %s", exc)
            families["edgepersona_database_up"].add_metric([], 0)
            yield families["edgepersona_database_up"]
            return
        for model in versions:
            version = str(model.version)
            rollout = families["edgepersona_model_rollout_percent"]
            rollout.add_metric([model.kind, version], model.rollout_percent)
            families["edgepersona_model_device_share"].add_metric([version], model.share)
        families["edgepersona_database_up"].add_metric([], 1)
        yield from families.values()


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def metrics(app: Flask) -> Metrics:
    """The metrics of ``app``, created on first use."""
    found = app.extensions.get(_EXTENSION)
    if found is None:
        found = app.extensions[_EXTENSION] = Metrics(app)
    assert isinstance(found, Metrics)
    return found
