"""The persona mix estimate: equal to the mean of per-upload one-hot estimates (by property),
honest about its error on labels drawn by the SDK's own randomized response, and its labels
counted in SQL on SQLite and PostgreSQL (left-out uploads counted, not guessed at)."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, insert

from edgepersona.backend.db import engine, init_db
from edgepersona.backend.keys import generate_keypair
from edgepersona.backend.persona_mix import Z_95, LabelCounts, estimate, read_reports
from edgepersona.backend.schema import aggregates, devices
from edgepersona.sdk import ManualClock
from edgepersona.sdk.features import FEATURES, SCHEMA_VERSION
from edgepersona.sdk.privacy import PERSONA_SHARE, keep_probability, randomized_response

from ..conftest import T0
from .conftest import MakeApp
from .test_registry import ADMIN_KEY, default_files, publish

POOL = ("a", "b", "c", "d", "e", "f")


def one_hot_mean(
    uploads: list[tuple[float, tuple[str, ...], str]], personas: list[str]
) -> list[float]:
    """Each persona's mean of ``(e_r - q) / (p - q)`` over uploads ``(epsilon, labels, report)``,
    written out upload by upload, independently of the module (0 where labels lack it)."""
    total = np.zeros(len(personas))
    for epsilon, labels, report in uploads:
        k = len(labels)
        p = np.exp(PERSONA_SHARE * epsilon) / (np.exp(PERSONA_SHARE * epsilon) + k - 1)
        q = (1 - p) / (k - 1)
        for j, persona in enumerate(personas):
            if persona in labels:
                total[j] += ((report == persona) - q) / (p - q)
    return list(total / len(uploads))


@st.composite
def channel_groups(draw: st.DrawFn) -> list[LabelCounts]:
    groups = []
    for _ in range(draw(st.integers(1, 4))):
        labels = tuple(draw(st.lists(st.sampled_from(POOL), min_size=2, max_size=6, unique=True)))
        counts = tuple(
            draw(st.lists(st.integers(0, 40), min_size=len(labels), max_size=len(labels)))
        )
        epsilon = draw(st.sampled_from([0.1, 0.5, 1.0, 2.0, 10.0]))
        groups.append(LabelCounts(epsilon, labels, counts))
    return groups


@given(channel_groups(), st.lists(st.sampled_from(POOL), min_size=1, max_size=6, unique=True))
def test_the_estimate_is_the_mean_of_per_upload_one_hot_estimates(
    groups: list[LabelCounts], personas: list[str]
) -> None:
    uploads = [
        (g.epsilon, g.labels, label)
        for g in groups
        for label, count in zip(g.labels, g.counts, strict=True)
        for _ in range(count)
    ]
    found = estimate(groups, personas)
    assert found.uploads == len(uploads)
    if not uploads:
        assert found.shares == (0.0,) * len(personas)
        return
    np.testing.assert_allclose(found.shares, one_hot_mean(uploads, personas), atol=1e-9)
    if set(personas) >= {label for g in groups for label in g.labels}:
        assert sum(found.shares) == pytest.approx(1.0)  # every label is a shown persona


def test_the_95_percent_intervals_hold_the_true_mix_95_percent_of_the_time() -> None:
    """Fleets of 400 devices, 60/40 over two of five personas, a third at epsilon 2 and the rest
    at 10, report through the SDK's mechanism; 300 such weeks."""
    personas = ["weekend_explorer", "night_owl_gamer", "commuter", "deal_hunter", "homebody"]
    truth = np.array([0.6, 0.4, 0.0, 0.0, 0.0])
    rng = np.random.default_rng(11)
    shares, errors = [], []
    for _ in range(300):
        counts = {(eps, label): 0 for eps in (2.0, 10.0) for label in personas}
        for device in range(400):
            epsilon = 2.0 if device % 3 == 0 else 10.0
            held = personas[0] if device < 240 else personas[1]
            counts[epsilon, randomized_response(held, personas, PERSONA_SHARE * epsilon, rng)] += 1
        groups = [
            LabelCounts(eps, tuple(personas), tuple(counts[eps, p] for p in personas))
            for eps in (2.0, 10.0)
        ]
        found = estimate(groups, personas)
        shares.append(found.shares)
        errors.append(found.errors)
    shares_a, errors_a = np.array(shares), np.array(errors)
    covered = np.abs(shares_a - truth) <= Z_95 * errors_a
    assert np.all(covered.mean(axis=0) >= 0.92), covered.mean(axis=0)
    assert np.all(covered.mean(axis=0) <= 0.985), covered.mean(axis=0)
    # Unbiased, and the reported error is the spread the estimates really have.
    assert np.all(np.abs(shares_a.mean(axis=0) - truth) < 3 * shares_a.std(axis=0) / np.sqrt(300))
    np.testing.assert_allclose(errors_a.mean(axis=0), shares_a.std(axis=0), rtol=0.12)


def test_the_error_follows_the_channel_and_the_number_of_uploads() -> None:
    """At epsilon 10 and k = 5, the error of a share s over n uploads is written out."""
    p = keep_probability(PERSONA_SHARE * 10, 5)
    q = (1 - p) / 4
    found = estimate([LabelCounts(10.0, tuple("abcde"), (0, 0, 0, 0, 0))], list("abcde"))
    assert found.uploads == 0
    # Reports exactly as expected for a 60/40 mix over a and b: the estimate is the mix.
    n = 10_000
    expected = [n * (0.6 * p + 0.4 * q), n * (0.4 * p + 0.6 * q)] + [n * q] * 3
    counts = tuple(round(c) for c in expected)
    found = estimate([LabelCounts(10.0, tuple("abcde"), counts)], list("abcde"))
    np.testing.assert_allclose(found.shares, [0.6, 0.4, 0, 0, 0], atol=2e-4)
    for share, error in zip([0.6, 0.4, 0, 0, 0], found.errors, strict=True):
        per_upload = share * p * (1 - p) + (1 - share) * q * (1 - q)
        assert error == pytest.approx(np.sqrt(per_upload / n) / (p - q), rel=1e-3)
    assert found.half_width(0) == pytest.approx(Z_95 * found.errors[0])


def test_uploads_of_models_with_other_personas_count_only_for_the_personas_they_had() -> None:
    old = LabelCounts(10.0, ("a", "b", "z"), (30, 10, 0))  # "z" is gone from the newest model
    new = LabelCounts(10.0, ("a", "b", "c"), (5, 5, 50))
    found = estimate([old, new], ["a", "b", "c"])
    assert found.uploads == 100
    uploads = [(10.0, old.labels, "a")] * 30 + [(10.0, old.labels, "b")] * 10
    uploads += [
        (10.0, new.labels, r) for r, n in zip("abc", (5, 5, 50), strict=True) for _ in range(n)
    ]
    np.testing.assert_allclose(found.shares, one_hot_mean(uploads, ["a", "b", "c"]))
    # The rest is the estimated share of "z", which only the older uploads could report.
    (z_share,) = one_hot_mean(uploads, ["z"])
    assert sum(found.shares) + z_share == pytest.approx(1.0)
    # Likewise "c": its error comes from the newer uploads alone.
    p = keep_probability(PERSONA_SHARE * 10, 3)
    q = (1 - p) / 2
    share = min(max(found.shares[2], 0), 1)
    per_upload = share * p * (1 - p) + (1 - share) * q * (1 - q)
    assert found.errors[2] == pytest.approx(np.sqrt(60 * per_upload) / (p - q) / 100)


def test_a_single_persona_is_never_randomized() -> None:
    found = estimate([LabelCounts(1.0, ("a",), (7,))], ["a", "b"])
    assert found.shares == (1.0, 0.0) and found.errors == (0.0, 0.0)


def test_bad_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="one count per label"):
        estimate([LabelCounts(1.0, ("a", "b"), (1,))], ["a"])
    with pytest.raises(ValueError, match="positive epsilon"):
        estimate([LabelCounts(0.0, ("a", "b"), (1, 1))], ["a"])


# Labels counted in SQL -----------------------------------------------------------------------

DEFAULT_IDS = (
    "weekend_explorer",
    "night_owl_gamer",
    "commuter",
    "deal_hunter",
    "homebody_streamer",
)


@pytest.fixture
def app(make_app: MakeApp, tmp_path: Path) -> Flask:
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    created = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))
    with created.app_context():
        init_db()
    return created


def store_uploads(
    conn: Connection, uploads: list[tuple[str, float, str | None]], model_version: int = 1
) -> None:
    """Uploads ``(week, epsilon, label)``, each of its own device, written straight into the
    table; a label of None is an upload stored before migration 5 without outcome rows."""
    device_ids = [uuid.uuid4().hex for _ in uploads]
    conn.execute(
        insert(devices),
        [{"id": d, "token_sha256": secrets.token_hex(32), "created_at": T0} for d in device_ids],
    )
    conn.execute(
        insert(aggregates),
        [
            {
                "device_id": device,
                "upload_id": uuid.uuid4().hex,
                "week": week,
                "schema_version": SCHEMA_VERSION,
                "model_version": model_version,
                "epsilon": epsilon,
                "mechanism": "laplace",
                "features": [0.0] * len(FEATURES),
                "sdk_version": "0.1.0",
                "received_at": T0,
                "persona": label,
                "outcomes": {} if label is None else {"offer-0": [1.0, 0.0]},
            }
            for device, (week, epsilon, label) in zip(device_ids, uploads, strict=True)
        ],
    )


def store_upload(
    app: Flask, week: str, epsilon: float, label: str | None, model_version: int = 1
) -> None:
    with engine(app).begin() as conn:
        store_uploads(conn, [(week, epsilon, label)], model_version)


class ReportsContract:
    def test_labels_are_counted_by_week_and_channel(self, app: Flask, clock: ManualClock) -> None:
        with engine(app).begin() as conn:
            assert read_reports(conn, ("2026-W09", "2026-W10")) is None  # no model yet
        assert publish(app.test_client(), default_files()).status_code == 201
        for _ in range(3):
            store_upload(app, "2026-W10", 1.0, "commuter")
        store_upload(app, "2026-W10", 1.004, "deal_hunter")  # rounds to the same channel
        store_upload(app, "2026-W10", 2.0, "commuter")
        store_upload(app, "2026-W09", 2.0, "night_owl_gamer")
        store_upload(app, "2026-W10", 1.0, None)  # stored before migration 5 with no outcomes
        store_upload(app, "2026-W10", 1.0, None)
        store_upload(app, "2026-W10", 1.0, "commuter")
        store_upload(app, "2026-W10", 1.0, "no_such_persona")
        store_upload(app, "2026-W10", 1.0, "commuter", model_version=9)  # not in the registry
        store_upload(app, "2026-W08", 1.0, "commuter")  # before the window
        with engine(app).begin() as conn:
            reports = read_reports(conn, ("2026-W09", "2026-W10"))
        assert reports is not None
        assert reports.version == 1 and [p for p, _ in reports.personas] == list(DEFAULT_IDS)
        groups = {
            week: sorted(found, key=lambda g: g.epsilon) for week, found in reports.groups.items()
        }
        assert groups == {
            "2026-W09": [LabelCounts(2.0, DEFAULT_IDS, (0, 1, 0, 0, 0))],
            "2026-W10": [
                LabelCounts(1.0, DEFAULT_IDS, (0, 0, 4, 1, 0)),
                LabelCounts(2.0, DEFAULT_IDS, (0, 0, 1, 0, 0)),
            ],
        }
        assert reports.unlabelled == {"2026-W09": 0, "2026-W10": 2}
        assert reports.unusable == {"2026-W09": 0, "2026-W10": 2}

    def test_uploads_of_older_weeks_stay_out_whenever_they_came(
        self, app: Flask, clock: ManualClock
    ) -> None:
        """Uploads are picked by their week, whenever they came (ids follow arrival)."""
        assert publish(app.test_client(), default_files()).status_code == 201
        store_upload(app, "2026-W02", 1.0, "commuter")
        store_upload(app, "2026-W10", 1.0, "commuter")
        store_upload(app, "2026-W02", 1.0, "deal_hunter")
        store_upload(app, "2026-W10", 1.0, "commuter")
        with engine(app).begin() as conn:
            reports = read_reports(conn, ("2026-W10",))
        assert reports is not None
        assert reports.groups == {"2026-W10": (LabelCounts(1.0, DEFAULT_IDS, (0, 0, 2, 0, 0)),)}


class TestReportsOnSQLite(ReportsContract):
    pass


class TestReportsOnPostgreSQL(ReportsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
