"""Retraining: learn a candidate persona model from the stored aggregates and register it at 0%.

``retrain`` opens its own transactions on the engine it is given, so that uploads never wait
for it: every read (the current model, the window, its outcome sums) happens in one read-only
transaction (``db.read_tx``: one consistent snapshot, no write lock); training and evaluation
in none; registering, or storing a refusal's report, in one short write transaction.

1. **Read** the aggregates of the last ``weeks`` ISO weeks (by their ``week`` field, the week
   of ``now`` included) in chunks (``retrain_window``): memory stays bounded however many
   device-weeks the window holds.
2. **Refuse** (``RetrainError``, code ``too_few_devices``) when fewer than ``floor``
   distinct devices contributed: the k-anonymity floor (``K_ANONYMITY_FLOOR``).
3. **Train**, by one of two methods (``report["method"]``):

   * ``private_estimates``, whenever a model is published and ``k`` is its number of
     personas (the normal case): the uploads are locally private (``edgepersona.sdk.privacy``)
     and far too noisy to cluster, so each persona's centroid is estimated from them without
     bias through the randomized-response channel, shrunk towards the current centroid by its
     variance, and the model is rebuilt around the new centroids with each persona's spread
     (``edge_models.private_training``). Persona ids are the current model's by construction.
     ``cluster_sizes`` are then the estimated device-weeks per persona among labelled uploads.
   * ``kmeans``, with no published model or another ``k``: ``training.train`` on a uniform
     sample of the window (every vector when it holds no more than ``sample_rows``), the
     current personas (if any) keeping their ids; a second pass assigns every device-week.
     Only meaningful on vectors with little noise (a pilot fleet at a large epsilon).
4. **Priors** (``retrain_priors``): the Beta prior of each (persona, offer) cell of the
   playbook becomes the previous prior plus the summed noised counts of the window's
   uploads, where a sum stands out of its noise; other cells keep their prior and are
   counted (``cells_below_noise``). Cells whose persona or offer the new bundle lacks are left
   out and counted.
5. **Evaluate**: agreement of the new model with the current one (both run through the SDK's
   ``PersonaModel``, as on a device; on the window's vectors for ``kmeans``, on the synthetic
   vectors for ``private_estimates``), the distilled model's held-out agreement, model size;
   gates are the training gates plus the floor.
6. **Register** the candidate with ``registry.publish`` (0% rollout; never version 1, which
   every SDK ships) if every gate passed, and store the report in ``retrains`` in every case.
   A model published (or rolled back) while training ran makes the candidate's version stale:
   ``version_not_newer``, nothing registered, since it was trained against a replaced model.

Known limit: a week in two consecutive retrain windows adds its outcome counts to the priors
twice.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, func, insert, select

from edgepersona.edge_models.bundle import default_playbook, write_bundle
from edgepersona.edge_models.private_training import PrivateSums, retrain_private
from edgepersona.edge_models.training import (
    MAX_CLUSTER_ROWS,
    Persona,
    Trained,
    train,
)
from edgepersona.sdk._inference import PersonaModel
from edgepersona.sdk.features import FEATURES

from . import registry
from .db import read_tx
from .errors import BackendError, RegistryError
from .retrain_priors import playbook_with_priors, read_outcome_sums
from .retrain_window import CHUNK_ROWS, Window, read_window
from .schema import models, retrains

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_K",
    "DEFAULT_WEEKS",
    "RetrainError",
    "list_retrains",
    "retrain",
    "week_window",
]

DEFAULT_K = 5  # personas when no model is published yet
DEFAULT_WEEKS = 4
BUILT_IN_VERSION = 1
BUNDLE_LIFETIME = dt.timedelta(days=365)
_PREDICT_ROWS = 20_000


class RetrainError(BackendError):
    """Retraining stopped without publishing; ``report`` was stored (committed).

    ``code``: ``too_few_devices`` (below the k-anonymity floor), ``training_refused`` (the
    data cannot be split into ``k`` personas: fewer than 5 device-weeks per persona, or a
    cluster too small to hold out), ``gates_failed`` or ``version_not_newer`` (a model was
    published while it trained: run it again).
    """

    def __init__(self, code: str, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.report = report


def week_window(now: float, weeks: int) -> tuple[str, str]:
    """The first and last ISO week labels (``YYYY-Www``) of the ``weeks`` weeks ending at now."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    first = today - dt.timedelta(weeks=weeks - 1)
    return _label(first), _label(today)


def retrain(
    bound: Engine,
    *,
    weeks: int,
    k: int | None,
    floor: int,
    private_key: Ed25519PrivateKey,
    now: float,
    seed: int = 0,
    sample_rows: int = MAX_CLUSTER_ROWS,
    on_training: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Retrain from the last ``weeks`` weeks of aggregates; return the stored report.

    Clustering learns from a uniform sample of at most ``sample_rows`` device-weeks (all of
    them in a smaller window). ``on_training``, if given, is called once the window is read and
    its read transaction closed, just before training: for a caller's progress display, or a
    test acting while a retrain trains. Raises ``RetrainError`` (after storing the report)
    when it does not publish.
    """
    started = time.perf_counter()
    first_week, last_week = week_window(now, weeks)
    with tempfile.TemporaryFile(prefix="ep-retrain-") as spool:
        with read_tx(bound) as conn:
            newest = _newest_version(conn)
            current = _current_bundle(conn, newest)
            previous = _personas(current["manifest"]) if current else ()
            k = k if k is not None else (len(previous) or DEFAULT_K)
            use_private = bool(previous) and k == len(previous)
            private = PrivateSums([p.id for p in previous]) if use_private else None
            window = read_window(conn, first_week, last_week, spool, sample_rows, seed, private)
            outcome_sums = read_outcome_sums(conn, first_week, last_week)
        report: dict[str, Any] = {
            "created_at": now,
            "weeks": weeks,
            "first_week": first_week,
            "last_week": last_week,
            "k": k,
            "method": "private_estimates" if private is not None else "kmeans",
            "seed": seed,
            "device_weeks": window.device_weeks,
            "devices": window.devices,
            "k_anonymity_floor": floor,
            "current_version": current["version"] if current else None,
            "gates": {"k_anonymity_floor": window.devices >= floor},
            "published_version": None,
            "refusal": None,
        }
        if window.devices < floor:
            _refuse(
                bound,
                report,
                started,
                "too_few_devices",
                f"{window.devices} distinct devices sent aggregates in {first_week}..{last_week}, "
                f"fewer than the k-anonymity floor of {floor}; nothing was trained.",
            )
        if on_training is not None:
            on_training()
        spreads = _spreads(current["manifest"]) if current else {}
        try:
            if private is not None:
                estimates = private.estimates(previous)
                trained, synthetic = retrain_private(estimates, previous, spreads, seed=seed)
                report["estimates"] = [e.as_report() for e in estimates]
            else:
                trained = train(window.sample, k=k, previous=previous, seed=seed)
        except ValueError as exc:
            _refuse(bound, report, started, "training_refused", f"Training was refused: {exc}.")
        # v1 is the bundle every SDK ships: a retrained model must be newer than it
        version = max(newest, BUILT_IN_VERSION) + 1
        base = json.loads(current["files"]["playbook.json"]) if current else default_playbook()
        playbook, priors_report = playbook_with_priors(base, trained.personas, outcome_sums)
        # Spreads cannot be learnt from noised uploads: a private retrain carries them over.
        kept = {p.id: spreads[p.id] for p in trained.personas if p.id in spreads}
        files = _bundle_files(trained, version, playbook, now, kept if private else {})
        if private is not None:
            agreement = _agreement_on(synthetic, trained, current, files["model.onnx"])
            sizes = [round(max(e.share or 0.0, 0.0) * private.labelled) for e in estimates]
        else:
            sizes, agreement = _assign_window(window, trained, current, files["model.onnx"])
    report.update(
        personas=[{"id": p.id, "name": p.name, "traits": list(p.traits)} for p in trained.personas],
        cluster_sizes={p.id: size for p, size in zip(trained.personas, sizes, strict=True)},
        clustered_device_weeks=trained.clustered_rows,
        distilled_device_weeks=trained.distilled_rows,
        agreement_with_current=agreement,
        held_out_agreement=round(trained.agreement, 4),
        model_bytes=len(files["model.onnx"]),
        priors=priors_report,
    )
    report["gates"].update(trained.gates(len(files["model.onnx"])))
    failed = sorted(name for name, ok in report["gates"].items() if not ok)
    if failed:
        _refuse(
            bound,
            report,
            started,
            "gates_failed",
            f"The candidate failed the gates {', '.join(failed)}; nothing was published.",
        )
    return _register(bound, files, private_key, now, report, started)


def list_retrains(conn: Connection) -> list[dict[str, Any]]:
    """Every stored report, newest first, each with its ``id``."""
    rows = conn.execute(select(retrains.c.id, retrains.c.report).order_by(retrains.c.id.desc()))
    return [{**_as_dict(row.report), "id": row.id} for row in rows]


def _current_bundle(conn: Connection, version: int) -> dict[str, Any] | None:
    """The newest published version's (``version``) number, manifest and files, or None."""
    files = registry.bundle_files(conn, version) if version else None
    if files is None:
        return None
    return {"version": version, "manifest": json.loads(files["manifest.json"]), "files": files}


def _personas(manifest: dict[str, Any]) -> tuple[Persona, ...]:
    return tuple(
        Persona(
            str(p["id"]),
            str(p["name"]),
            tuple(str(t) for t in p.get("traits", ())),
            tuple(float(v) for v in p["centroid"]),
        )
        for p in manifest["personas"]
    )


def _bundle_files(
    trained: Trained,
    version: int,
    playbook: dict[str, Any],
    now: float,
    spreads: dict[str, list[float]],
) -> dict[str, bytes]:
    created = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="ep-retrain-") as tmp:
        write_bundle(
            trained,
            Path(tmp),
            version=version,
            playbook=playbook,
            created_at=created.isoformat(),
            expires_at=(created + BUNDLE_LIFETIME).isoformat(),
            rollout_percent=0,
            spreads=spreads,
        )
        return {
            name: (Path(tmp) / name).read_bytes()
            for name in ("model.onnx", "playbook.json", "manifest.json")
        }


def _spreads(manifest: dict[str, Any]) -> dict[str, list[float]]:
    """Each persona's spread kept in the manifest (see ``private_training``)."""
    return {
        str(p["id"]): [float(v) for v in p["spread"]]
        for p in manifest["personas"]
        if isinstance(p.get("spread"), list) and len(p["spread"]) == len(FEATURES)
    }


def _agreement_on(
    vectors: np.ndarray, trained: Trained, current: dict[str, Any] | None, new_onnx: bytes
) -> float | None:
    """How often the current and the new model agree on ``vectors`` (synthetic: uploads are
    too noisy to compare the models on)."""
    if current is None:
        return None
    old_model = PersonaModel.from_bytes(current["files"]["model.onnx"])
    old_ids = np.array([p["id"] for p in json.loads(old_model.metadata.get("personas", "[]"))])
    new_ids = np.array([p.id for p in trained.personas])
    batch = vectors.astype(np.float32)
    old = old_ids[np.argmax(old_model.predict_proba(batch), axis=1)]
    new = new_ids[np.argmax(PersonaModel.from_bytes(new_onnx).predict_proba(batch), axis=1)]
    return round(float(np.mean(old == new)), 4)


def _assign_window(
    window: Window, trained: Trained, current: dict[str, Any] | None, new_onnx: bytes
) -> tuple[list[int], float | None]:
    """Device-weeks per new persona, and the fraction to which the current and the new
    model (both as a device runs them) give the same persona (None without a current one)."""
    sizes = np.zeros(len(trained.personas), dtype=np.int64)
    models_and_ids = []  # (model, persona id of each class): the current one, then the new
    if current is not None:
        old_model = PersonaModel.from_bytes(current["files"]["model.onnx"])
        old_ids = [p["id"] for p in json.loads(old_model.metadata.get("personas", "[]"))]
        models_and_ids.append((old_model, np.array(old_ids)))
        models_and_ids.append(
            (PersonaModel.from_bytes(new_onnx), np.array([p.id for p in trained.personas]))
        )
    same = 0
    for batch in window.batches(_PREDICT_ROWS):
        sizes += np.bincount(trained.assign(batch), minlength=len(sizes))
        if models_and_ids:
            old, new = (ids[np.argmax(m.predict_proba(batch), axis=1)] for m, ids in models_and_ids)
            same += int(np.sum(old == new))
    agreement = round(same / window.device_weeks, 4) if models_and_ids else None
    return sizes.tolist(), agreement


def _register(
    bound: Engine,
    files: dict[str, bytes],
    private_key: Ed25519PrivateKey,
    now: float,
    report: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """Publish the candidate and store its report in one short write transaction."""
    try:
        with bound.begin() as conn:
            # publish re-checks, under its lock, that the version read at the start is newest
            report["published_version"] = registry.publish(conn, files, private_key, now)["version"]
            return _store(conn, report, started)
    except RegistryError as exc:
        if exc.code != "version_not_newer":
            raise
    report["published_version"] = None
    _refuse(
        bound,
        report,
        started,
        "version_not_newer",
        f"A model was published or rolled back while this retrain trained against version "
        f"{report['current_version']}, so its candidate is stale; nothing was registered. "
        "Run the retrain again to train against the new current model.",
    )


def _refuse(
    bound: Engine, report: dict[str, Any], started: float, code: str, message: str
) -> NoReturn:
    report["refusal"] = {"code": code, "message": message}
    with bound.begin() as conn:
        stored = _store(conn, report, started)
    raise RetrainError(code, message, stored)


def _store(conn: Connection, report: dict[str, Any], started: float) -> dict[str, Any]:
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["id"] = conn.execute(
        insert(retrains)
        .values(
            created_at=report["created_at"],
            report=report,
            published_version=report["published_version"],
        )
        .returning(retrains.c.id)
    ).scalar_one()
    return report


def _label(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


def _newest_version(conn: Connection) -> int:
    return int(conn.execute(select(func.max(models.c.version))).scalar_one_or_none() or 0)
