"""A twelve-week fleet history, made through the real endpoints, for the dashboard's tests.

Devices register, then upload once per ISO week, joining week by week; deal hunters join
faster late on, so the persona mix shifts. Each upload reports the device's persona as a phone
does, through the SDK's randomized response at the upload's epsilon, with noised outcome
counts for every offer of the default playbook; its feature vector is near the persona's
centroid in the default model (not noised, so that the retrains have clusters to find).
Meanwhile the operator publishes the default bundle, retrains three times (the first is
refused: too few devices), and promotes.
Everything is a function of ``seed``; the clock only moves forward.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from edgepersona.sdk import ManualClock
from edgepersona.sdk._bundle import FILES
from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION
from edgepersona.sdk.privacy import PERSONA_SHARE, noised_outcomes, randomized_response

from ..conftest import T0
from .test_registry import ADMIN, DEFAULT_BUNDLE, promote, publish

WEEK = 7 * 86_400
WEEKS = 12
FIRST_MONDAY = T0 - (WEEKS - 1) * WEEK  # T0 is a Monday, 08:00 UTC
NOW = T0 + 3 * 86_400 + 6 * 3_600  # Thursday of T0's week, 14:00 UTC
PERSONA_IDS = (  # the default model's, in its order
    "weekend_explorer",
    "night_owl_gamer",
    "commuter",
    "deal_hunter",
    "homebody_streamer",
)
OFFERS = tuple(sorted(json.loads((DEFAULT_BUNDLE / "playbook.json").read_text())["offers"]))


@dataclass
class Fleet:
    """What was seeded, for the tests to compare the page with."""

    devices: int = 0
    # week, at, epsilon, persona (the device's), label (the persona it reported)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)  # version -> rollout percent
    retrains: list[int] = field(default_factory=list)  # HTTP status of each retrain


def centroids() -> dict[str, np.ndarray]:
    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    return {p["id"]: np.array(p["centroid"]) for p in manifest["personas"]}


def seed(app: Flask, clock: ManualClock, *, devices: int = 160, seed: int = 3) -> Fleet:
    """Make the history described above; leaves ``clock`` at ``NOW``."""
    rng = np.random.default_rng(seed)
    client = app.test_client()
    fleet = Fleet()
    spans = np.array([f.high - f.low for f in FEATURES])
    means = centroids()
    joins = np.sort(rng.integers(0, WEEKS, size=devices) * (rng.random(devices) > 0.15))
    tokens: list[dict[str, str]] = []
    personas: list[str] = []
    epsilons: list[float] = []
    for week in range(WEEKS):
        monday = FIRST_MONDAY + week * WEEK
        clock.set(monday)
        if week in _OPERATOR:
            _OPERATOR[week](client, clock, fleet)
        for index in np.flatnonzero(joins == week):
            clock.set(monday + float(index))
            tokens.append(_register(client))
            mix = [1, 1, 1.4, 0.6 + week * 0.25, 1]
            personas.append(str(rng.choice(PERSONA_IDS, p=np.array(mix) / sum(mix))))
            epsilons.append(float(rng.choice([5.0, 10.0, 10.0, 10.0])))
        fleet.devices = len(tokens)
        uploads = []
        for device, auth in enumerate(tokens):
            if rng.random() < 0.1:
                continue  # this device did not sync this week
            at = monday + rng.uniform(0.1, 6.9) * 86_400
            uploads.append((at, device, auth))
        for at, device, auth in sorted(uploads):
            if at > NOW:
                continue
            clock.set(at)
            persona = personas[device]
            if rng.random() < 0.08:
                persona = str(rng.choice(PERSONA_IDS))  # an unusual week
            vector = means[persona] + rng.normal(0, 0.03, len(FEATURES)) * spans
            epsilon = epsilons[device] if week < 8 else min(epsilons[device], 5.0)
            label = randomized_response(persona, PERSONA_IDS, PERSONA_SHARE * epsilon, rng)
            outcomes = noised_outcomes({}, OFFERS, epsilon, rng)
            _upload(client, auth, _week_label(monday), vector, epsilon, label, outcomes)
            fleet.uploads.append(
                {
                    "week": _week_label(monday),
                    "at": at,
                    "epsilon": epsilon,
                    "persona": persona,
                    "label": label,
                }
            )
    clock.set(NOW)
    return fleet


def _register(client: FlaskClient) -> dict[str, str]:
    response = client.post("/v1/devices")
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json['token']}"}  # type: ignore[index]


def _upload(
    client: FlaskClient,
    auth: dict[str, str],
    week: str,
    vector: np.ndarray,
    epsilon: float,
    label: str,
    outcomes: dict[str, tuple[float, float]],
) -> None:
    low = np.array([f.low for f in FEATURES])
    high = np.array([f.high for f in FEATURES])
    payload = {
        "upload_id": uuid.uuid4().hex,
        "schema_version": SCHEMA_VERSION,
        "week": week,
        "features": [round(float(v), 5) for v in np.clip(vector, low, high)],
        "epsilon": epsilon,
        "mechanism": "laplace",
        "model_version": 1,
        "persona": label,
        "outcomes": [
            {"offer": offer, "accepted": accepted, "dismissed": dismissed}
            for offer, (accepted, dismissed) in outcomes.items()
        ],
        "sdk_version": "0.1.0",
    }
    response = client.post("/v1/aggregates", json=payload, headers=auth)
    assert response.status_code == 201, response.json


def _week_label(ts: float) -> str:
    year, week, _ = dt.datetime.fromtimestamp(ts, dt.timezone.utc).isocalendar()
    return f"{year:04d}-W{week:02d}"


def _publish_default(client: FlaskClient, clock: ManualClock, fleet: Fleet) -> None:
    files = {name: (DEFAULT_BUNDLE / name).read_bytes() for name in FILES}
    assert publish(client, files).status_code == 201
    assert promote(client, 1, 100).status_code == 200
    fleet.versions[1] = 100


def _retrain(client: FlaskClient, fleet: Fleet) -> int | None:
    response = client.post("/v1/admin/retrain", json={"weeks": 4}, headers=ADMIN)
    fleet.retrains.append(response.status_code)
    if response.status_code != 201:
        return None
    version = int(response.json["published_version"])  # type: ignore[index]
    fleet.versions[version] = 0
    return version


def _promote(client: FlaskClient, fleet: Fleet, version: int, percent: int) -> None:
    assert promote(client, version, percent).status_code == 200
    fleet.versions[version] = percent


def _week_1(client: FlaskClient, clock: ManualClock, fleet: Fleet) -> None:
    assert _retrain(client, fleet) is None  # too few devices yet


def _week_8(client: FlaskClient, clock: ManualClock, fleet: Fleet) -> None:
    version = _retrain(client, fleet)
    assert version is not None
    _promote(client, fleet, version, 100)


def _week_11(client: FlaskClient, clock: ManualClock, fleet: Fleet) -> None:
    version = _retrain(client, fleet)
    assert version is not None
    _promote(client, fleet, version, 25)


_OPERATOR = {0: _publish_default, 1: _week_1, 8: _week_8, 11: _week_11}
