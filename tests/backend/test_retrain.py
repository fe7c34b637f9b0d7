"""Retraining on SQLite and PostgreSQL: from stored aggregates to a candidate at 0% rollout.

The aggregates are the synthetic population's feature vectors (replayed through the SDK, as on
a phone), stored through ``backend.store`` as uploads of the week of T0, a few with noised
outcomes. ``RetrainContract`` holds the storage-dependent tests; the refusals that never
reach the database run once, on SQLite, below it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from edgepersona.backend import registry, store
from edgepersona.backend.db import engine, init_db, read_tx
from edgepersona.backend.keys import generate_keypair, load_private_key
from edgepersona.backend.payload import Outcome, Upload
from edgepersona.backend.retrain import RetrainError, retrain, week_window
from edgepersona.backend.retrain_priors import OUTCOME_SCALE_AT_1, OutcomeSums, read_outcome_sums
from edgepersona.backend.schema import retrains
from edgepersona.backend.upload_write import write_upload
from edgepersona.edge_models.bundle import fleet_vectors
from edgepersona.edge_models.population import population
from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION

from ..conftest import T0
from .conftest import WEEK_OF_T0, MakeApp, register, valid_payload
from .test_registry import ADMIN, ADMIN_KEY, default_files, stored_versions

DEVICES = 120
OLD_WEEK = "2026-W01"  # outside any window of a few weeks before T0
# Noised outcome rows of some devices, whose uploads report the persona "commuter":
# (offer, accepted, dismissed).
OUTCOMES = (
    ("coffee_to_go", 3.2, -0.4),
    ("flash_sale", -1.5, 0.3),  # the accepted sum is negative: clipped at 0
    ("no_such_offer", 1.0, 1.0),  # an offer the playbook lacks: ignored
)
OUTCOME_DEVICES = 10


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """Feature vectors of a synthetic fleet, one per device (a few seconds: replays traces)."""
    return fleet_vectors(population(DEVICES, seed=7), 3)


@pytest.fixture
def app(make_app: MakeApp, tmp_path: Path) -> Flask:
    """An app with the admin key and a signing key, on a migrated database."""
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    created = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))
    with created.app_context():
        init_db()
    return created


def store_uploads(app: Flask, vectors: np.ndarray, week: str = WEEK_OF_T0) -> None:
    """One device per vector, each uploading it for ``week``; the first ones with outcomes."""
    tokens = [uuid.uuid4().hex + uuid.uuid4().hex for _ in vectors]
    with engine(app).begin() as conn:
        for token in tokens:
            store.create_device(conn, uuid.uuid4().hex, token, T0)
    for index, (token, vector) in enumerate(zip(tokens, vectors, strict=True)):
        rows = OUTCOMES if index < OUTCOME_DEVICES else ()
        upload = Upload(
            upload_id=uuid.uuid4().hex,
            schema_version=SCHEMA_VERSION,
            week=week,
            features=tuple(float(v) for v in vector),
            epsilon=1.0,
            mechanism="laplace",
            model_version=1,
            persona="commuter",
            outcomes=tuple(Outcome(*row) for row in rows),
            sdk_version="0.1.0",
        )
        assert write_upload(engine(app), token, upload, T0, limit=1).status == "accepted"


def planted_around_default_personas(seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Device vectors around the default model's persona centroids (noise 2% of each
    feature's range), a different number per persona, shuffled; and those numbers."""
    personas = json.loads(default_files()["manifest.json"])["personas"]
    sizes = {p["id"]: 100 + 50 * i for i, p in enumerate(personas)}
    rng = np.random.default_rng(seed)
    centroids = np.array([p["centroid"] for p in personas])
    truth = rng.permutation(np.repeat(np.arange(len(personas)), list(sizes.values())))
    width = np.array([f.high - f.low for f in FEATURES])
    return centroids[truth] + rng.normal(0.0, 0.02, (len(truth), len(FEATURES))) * width, sizes


def publish_default(app: Flask) -> None:
    key = load_private_key(Path(app.config["SIGNING_KEY_PATH"]))
    with engine(app).begin() as conn:
        registry.publish(conn, default_files(), key, T0)


def stored_reports(app: Flask) -> list[tuple[int | None, dict[str, object]]]:
    with engine(app).connect() as conn:
        rows = conn.execute(select(retrains.c.published_version, retrains.c.report))
        return [(row.published_version, row.report) for row in rows]


def priors_of(app: Flask, version: int) -> dict[str, dict[str, list[float]]]:
    with engine(app).connect() as conn:
        files = registry.bundle_files(conn, version)
    assert files is not None
    return dict(json.loads(files["playbook.json"])["priors"])


def retrain_paused_in_training(app: Flask, while_training: Callable[[], None]) -> dict[str, Any]:
    """Run ``retrain`` in a thread, call ``while_training`` once it is in its training phase
    (the window read), then let it go on; its report, or the ``RetrainError`` it raised."""
    training, proceed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def pause() -> None:
        training.set()
        proceed.wait()

    def run() -> None:
        key = load_private_key(Path(app.config["SIGNING_KEY_PATH"]))
        try:
            outcome["report"] = retrain(
                engine(app), weeks=1, k=None, floor=50, private_key=key, now=T0, on_training=pause
            )
        except RetrainError as exc:
            outcome["refused"] = exc
        finally:
            training.set()  # so that a retrain ending early fails the test instead of hanging it

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert training.wait(timeout=300) and not outcome, f"no training phase: {outcome}"
        while_training()
    finally:
        proceed.set()
        thread.join()
    return outcome


class RetrainContract:
    """Retraining behaviour every supported database must show."""

    @pytest.mark.slow
    def test_retrain_publishes_a_candidate_at_zero_percent(
        self, app: Flask, client: FlaskClient, vectors: np.ndarray
    ) -> None:
        publish_default(app)
        store_uploads(app, vectors)
        store_uploads(app, vectors[:5], week=OLD_WEEK)  # outside the window: not read
        response = client.post("/v1/admin/retrain", json={"weeks": 2}, headers=ADMIN)
        assert response.status_code == 201, response.json
        report = response.json
        assert report["published_version"] == 2 and report["current_version"] == 1
        assert report["device_weeks"] == DEVICES and report["devices"] == DEVICES
        assert report["gates"] == {"k_anonymity_floor": True, "agreement": True, "size": True}
        assert report["agreement_with_current"] > 0.8
        assert report["held_out_agreement"] >= 0.9
        # 120 noised uploads at epsilon 1 cannot move a centroid: the model stays as it was
        assert report["method"] == "private_estimates"
        assert sorted(e["persona"] for e in report["estimates"]) == sorted(report["cluster_sizes"])
        assert all(e["weight"] < 0.01 for e in report["estimates"])
        assert response.headers["Location"] == "/v1/models/2/bundle"

        default = json.loads(default_files()["manifest.json"])
        with engine(app).connect() as conn:
            listed = registry.list_models(conn)
            files = registry.bundle_files(conn, 2)
        assert [(m["version"], m["rollout_percent"]) for m in listed] == [(2, 0), (1, 0)]
        assert files is not None
        manifest = json.loads(files["manifest.json"])
        ids = sorted(p["id"] for p in default["personas"])
        assert sorted(p["id"] for p in manifest["personas"]) == ids
        assert sorted(report["cluster_sizes"]) == ids

        # 10 devices' counts at epsilon 1 are within their noise: no prior moves
        old = json.loads(default_files()["playbook.json"])["priors"]
        assert priors_of(app, 2) == old
        n = OUTCOME_DEVICES
        assert report["priors"] == {
            "outcome_rows": 3 * n,
            "cells_updated": 0,
            "cells_below_noise": 2,
            "cells_ignored": 1,
        }

        assert stored_reports(app) == [(2, {k: v for k, v in report.items() if k != "id"})]
        listed_reports = client.get("/v1/admin/retrains", headers=ADMIN).json["retrains"]
        assert listed_reports == [report]

    def test_a_window_beyond_the_sample_is_clustered_from_it_and_counted_in_full(
        self, app: Flask
    ) -> None:
        # With no model published, k-means (for vectors with little noise, such as these)
        vectors, sizes = planted_around_default_personas(seed=5)
        store_uploads(app, vectors)
        key = load_private_key(Path(app.config["SIGNING_KEY_PATH"]))
        report = retrain(
            engine(app), weeks=1, k=None, floor=50, private_key=key, now=T0, sample_rows=300
        )
        assert report["method"] == "kmeans" and report["clustered_device_weeks"] == 300
        assert report["device_weeks"] == report["devices"] == len(vectors) == 1000
        # Every device-week was assigned, and each planted group was found whole.
        assert sorted(report["cluster_sizes"].values()) == sorted(sizes.values())
        assert report["agreement_with_current"] is None
        assert report["published_version"] == 2  # never 1: every SDK ships a version 1

    def test_below_the_floor_nothing_is_published_and_the_report_is_kept(
        self, app: Flask, client: FlaskClient, vectors: np.ndarray
    ) -> None:
        publish_default(app)
        store_uploads(app, vectors[:10])
        response = client.post("/v1/admin/retrain", headers=ADMIN)
        assert response.status_code == 409
        assert response.json["error"]["code"] == "too_few_devices"
        assert "10 distinct devices" in response.json["error"]["message"]
        assert response.json["report"]["gates"] == {"k_anonymity_floor": False}
        assert stored_versions(app) == [1]
        ((version, report),) = stored_reports(app)
        assert version is None and report["refusal"]["code"] == "too_few_devices"
        assert report["devices"] == 10 and report["k_anonymity_floor"] == 50

    def test_uploads_are_accepted_while_a_retrain_trains(
        self, app: Flask, client: FlaskClient, vectors: np.ndarray
    ) -> None:
        publish_default(app)
        store_uploads(app, vectors)
        device = register(client)
        answers = []

        def upload() -> None:  # on SQLite, before read_tx: 503 after the busy timeout
            answers.append(client.post("/v1/aggregates", json=valid_payload(), headers=device))

        outcome = retrain_paused_in_training(app, upload)
        assert [a.status_code for a in answers] == [201], answers[0].json
        report = outcome["report"]
        assert report["published_version"] == 2 and stored_versions(app) == [1, 2]
        # trained on the snapshot it read: the upload that came in meanwhile is not in it
        assert report["device_weeks"] == report["devices"] == DEVICES
        assert [version for version, _ in stored_reports(app)] == [2]

    def test_a_model_published_while_training_makes_the_retrain_refuse(
        self, app: Flask, vectors: np.ndarray
    ) -> None:
        publish_default(app)
        store_uploads(app, vectors)
        key = load_private_key(Path(app.config["SIGNING_KEY_PATH"]))

        def roll_back() -> None:  # publishes version 2 while the retrain means to be 2
            with engine(app).begin() as conn:
                registry.rollback(conn, 1, key, T0)

        refused = retrain_paused_in_training(app, roll_back)["refused"]
        assert refused.code == "version_not_newer"
        assert "trained against version 1" in refused.message
        assert stored_versions(app) == [1, 2]  # the rollback only
        ((version, report),) = stored_reports(app)
        assert version is None and report["refusal"]["code"] == "version_not_newer"

    def test_outcome_sums_add_up_each_persona_and_offer_over_the_window(self, app: Flask) -> None:
        # (week, epsilon, persona, outcomes): two personas, an offer only some uploads name,
        # an upload without outcomes, and uploads either side of the window.
        uploads = [
            ("2026-W09", 1.0, "commuter", [("coffee", 3.25, -0.5), ("lunch", -1.0, 2.0)]),
            ("2026-W10", 2.0, "commuter", [("coffee", 0.5, 4.0)]),
            ("2026-W10", 0.5, "night_owl", [("coffee", 7.0, 1.5), ("games", 2.0, -3.0)]),
            ("2026-W10", 1.0, "night_owl", []),
            ("2026-W08", 1.0, "commuter", [("coffee", 100.0, 100.0)]),  # before the window
            ("2026-W11", 1.0, "commuter", [("coffee", 100.0, 100.0)]),  # after it
        ]
        for week, epsilon, persona, outcomes in uploads:
            token = uuid.uuid4().hex + uuid.uuid4().hex
            with engine(app).begin() as conn:
                store.create_device(conn, uuid.uuid4().hex, token, T0)
            upload = Upload(
                upload_id=uuid.uuid4().hex,
                schema_version=SCHEMA_VERSION,
                week=week,
                features=(0.0,) * len(FEATURES),
                epsilon=epsilon,
                mechanism="laplace",
                model_version=1,
                persona=persona,
                outcomes=tuple(Outcome(*o) for o in outcomes),
                sdk_version="0.1.0",
            )
            assert write_upload(engine(app), token, upload, T0, limit=1).status == "accepted"
        with read_tx(engine(app)) as conn:
            sums = sorted(read_outcome_sums(conn, "2026-W09", "2026-W10"))
        per_row = 2 * OUTCOME_SCALE_AT_1**2  # a row's noise variance at epsilon 1
        assert sums == [
            OutcomeSums("commuter", "coffee", 3.75, 3.5, 2, pytest.approx(per_row * 1.25)),
            OutcomeSums("commuter", "lunch", -1.0, 2.0, 1, pytest.approx(per_row)),
            OutcomeSums("night_owl", "coffee", 7.0, 1.5, 1, pytest.approx(per_row * 4)),
            OutcomeSums("night_owl", "games", 2.0, -3.0, 1, pytest.approx(per_row * 4)),
        ]

    def test_a_read_transaction_lets_writers_commit_keeps_its_snapshot_and_cannot_write(
        self, app: Flask
    ) -> None:
        row = {"created_at": T0, "report": {}, "published_version": None}
        with read_tx(engine(app)) as conn:
            assert conn.execute(select(func.count()).select_from(retrains)).scalar_one() == 0
            # on SQLite under BEGIN IMMEDIATE, this would wait out the busy timeout and fail
            with engine(app).begin() as writer:
                writer.execute(insert(retrains).values(**row))
            assert conn.execute(select(func.count()).select_from(retrains)).scalar_one() == 0
            with pytest.raises(DBAPIError):
                conn.execute(insert(retrains).values(**row))
        # The pool hands out its two connections in turn: read_tx's is writable again.
        for _ in range(2):
            with engine(app).begin() as writer:
                writer.execute(insert(retrains).values(**row))
        assert len(stored_reports(app)) == 3


class TestRetrainSQLite(RetrainContract):
    """The default database: a file in a temporary folder."""


class TestRetrainPostgreSQL(RetrainContract):
    """The real server; this session's own database, emptied before each test."""

    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


def test_device_tokens_and_missing_keys_cannot_retrain(app: Flask, client: FlaskClient) -> None:
    device = register(client)
    assert client.post("/v1/admin/retrain", headers=device).status_code == 403
    assert client.post("/v1/admin/retrain").status_code == 401
    assert client.get("/v1/admin/retrains", headers=device).status_code == 403
    assert stored_reports(app) == []


@pytest.mark.parametrize(
    "body",
    [{"weeks": 0}, {"weeks": 53}, {"k": 1}, {"k": 13}, {"k": True}, {"weeks": "4"}, {"x": 1}, []],
)
def test_bad_retrain_options_are_refused(app: Flask, client: FlaskClient, body: object) -> None:
    response = client.post("/v1/admin/retrain", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_retrain_options"
    assert stored_reports(app) == []


def test_no_model_and_no_data_is_refused_with_k_5(app: Flask, client: FlaskClient) -> None:
    response = client.post("/v1/admin/retrain", json={"weeks": 1}, headers=ADMIN)
    assert response.status_code == 409
    report = response.json["report"]
    assert report["k"] == 5 and report["current_version"] is None and report["devices"] == 0


def test_the_window_is_the_last_weeks_iso_weeks() -> None:
    assert week_window(T0, 1) == (WEEK_OF_T0, WEEK_OF_T0)
    assert week_window(T0, 10) == ("2026-W01", WEEK_OF_T0)
    assert week_window(T0, 11) == ("2025-W52", WEEK_OF_T0)
