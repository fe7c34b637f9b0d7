"""The dashboard: pure chart and fleet functions, its key, and its numbers on SQLite and PostgreSQL.

``DashboardContract`` seeds devices, uploads and models through the real endpoints, then reads
the page as an operator's browser gets it and checks every panel against what was sent.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from edgepersona.backend import charts
from edgepersona.backend.dashboard import CONTENT_SECURITY_POLICY
from edgepersona.backend.db import engine, init_db
from edgepersona.backend.fleet import (
    percentile,
    persona_order,
    recent_weeks,
    serving_shares,
)
from edgepersona.backend.keys import generate_keypair
from edgepersona.backend.persona_mix import Z_95, LabelCounts, estimate
from edgepersona.backend.rollout import in_rollout
from edgepersona.backend.schema import aggregates
from edgepersona.sdk import ManualClock
from edgepersona.sdk.privacy import PERSONA_SHARE, keep_probability, randomized_response

from ..conftest import T0
from .conftest import MakeApp, register, valid_payload
from .fleet_seed import centroids
from .test_http import error_of
from .test_persona_mix import one_hot_mean, store_uploads
from .test_registry import ADMIN, ADMIN_KEY, default_files, promote, publish, second_files


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    def select(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for found, attrs in self.found
            if found == tag and (cls is None or cls in attrs.get("class", "").split())
        ]


def rects(svg: str, cls: str) -> list[dict[str, str]]:
    return Elements(svg).select("rect", cls)


# Pure chart functions --------------------------------------------------------------------


def test_share_columns_draw_each_estimate_with_its_interval_on_a_0_100_axis() -> None:
    series = [
        charts.Series(
            "a", "A", "#111111", ((0.5, 0.6, 0.7), None, (0.0, 0.0, 0.2)), ("a1", "", "a3")
        ),
        charts.Series(
            "b", "B", "#222222", ((0.3, 0.4, 0.5), None, (0.8, 1.0, 1.0)), ("b1", "", "<&>")
        ),
    ]
    svg = charts.share_columns(
        ["W1", "W2", "W3"], series, description="mix", empty_titles=["", "2026-W02: none", ""]
    )
    groups = Elements(svg).select("g", "share")
    assert [(g["data-series"], g["data-column"], g["data-value"]) for g in groups] == [
        ("a", "W1", "0.6"),
        ("b", "W1", "0.4"),
        ("a", "W3", "0"),
        ("b", "W3", "1"),
    ]
    bars = [r for r in Elements(svg).select("rect") if "fill" in r]
    full = charts.HEIGHT - 14 - 34
    base = 14 + full
    heights = [float(r["height"]) for r in bars]
    assert heights == pytest.approx([0.6 * full, 0.4 * full, 0.0, full], abs=0.01)
    assert all(
        float(r["y"]) + h == pytest.approx(base, abs=0.01)
        for r, h in zip(bars, heights, strict=True)
    )
    # Whiskers from low to high: "M x y(low) V y(high)".
    whiskers = re.findall(r'class="whisker" d="M[\d.]+ ([\d.]+)V([\d.]+)', svg)
    ends = [base - full * share for share in (0.5, 0.7, 0.3, 0.5, 0.0, 0.2, 0.8, 1.0)]
    assert [float(y) for pair in whiskers for y in pair] == pytest.approx(ends, abs=0.01)
    # Two bars share a column, side by side, inside it.
    assert float(bars[0]["x"]) < float(bars[1]["x"])
    assert len(rects(svg, "empty")) == 1 and "2026-W02: none" in svg
    assert "&lt;&amp;&gt;" in svg and "<&>" not in svg
    assert re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg) == [
        "0%",
        "25%",
        "50%",
        "75%",
        "100%",
    ]


def test_share_columns_clamp_what_they_draw_to_the_axis() -> None:
    series = [charts.Series("a", "A", "#111", ((-0.3, 0.1, 1.4),), ("a",))]
    svg = charts.share_columns(["W1"], series, description="mix", empty_titles=[""])
    full = charts.HEIGHT - 14 - 34
    whisker = re.search(r'class="whisker" d="M[\d.]+ ([\d.]+)V([\d.]+)', svg)
    assert whisker is not None
    assert (float(whisker.group(1)), float(whisker.group(2))) == pytest.approx((14 + full, 14))


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40))
def test_column_heights_are_proportional_to_the_values(values: list[int]) -> None:
    labels = [f"d{i}" for i in range(len(values))]
    svg = charts.columns(
        labels, [float(v) for v in values], description="d", titles=labels, colour="#000"
    )
    bars = rects(svg, "bar")
    assert [b["data-value"] for b in bars] == [str(v) for v in values]
    top = charts.nice_ticks(max(values))[-1]
    full = charts.HEIGHT - 14 - 34
    for bar, value in zip(bars, values, strict=True):
        assert float(bar["height"]) == pytest.approx(full * value / top, abs=0.01)


def test_columns_label_every_nth_day_counting_back_from_today() -> None:
    labels = [str(day) for day in range(1, 11)]
    svg = charts.columns(
        labels, [1.0] * 10, description="d", titles=labels, colour="#000", label_every=3
    )
    written = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', svg)
    assert written == ["1", "4", "7", "10"]


def test_range_columns_draw_the_middle_as_a_bar_and_a_whisker_around_it() -> None:
    svg = charts.range_columns(
        ["W1"], [(0.5, 1.0, 2.0)], description="eps", titles=["W1"], colour="#000"
    )
    (group,) = Elements(svg).select("g", "range")
    assert (group["data-low"], group["data-value"], group["data-high"]) == ("0.5", "1", "2")
    bar = Elements(svg).select("rect")[0]
    full = charts.HEIGHT - 14 - 34
    assert float(bar["height"]) == pytest.approx(full / 2)  # median 1 on an axis up to 2


@given(st.floats(0.001, 1e9))
def test_nice_ticks_cover_the_top_in_a_few_round_steps(top: float) -> None:
    ticks = charts.nice_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= top * (1 - 1e-9)
    assert 2 <= len(ticks) <= 5
    step = ticks[1]
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert round(mantissa, 6) in (1, 2, 5, 10)
    assert ticks == pytest.approx([step * i for i in range(len(ticks))])


def test_nice_ticks_examples() -> None:
    assert charts.nice_ticks(23) == (0, 10, 20, 30)
    assert charts.nice_ticks(1) == (0, 0.5, 1)
    assert charts.nice_ticks(0) == (0, 1)


def test_meter_is_clamped_to_0_100() -> None:
    assert 'data-value="100"' in charts.meter(130, colour="#000", description="x")
    assert 'width="0"' in charts.meter(-5, colour="#000", description="x")


# Pure fleet functions ----------------------------------------------------------------------


def test_serving_shares_take_a_newer_rollout_from_the_older_versions() -> None:
    assert serving_shares([(2, 100), (3, 25)]) == {3: 0.25, 2: 0.75}
    assert serving_shares([(2, 50), (1, 50)]) == {2: 0.5, 1: 0.25}
    assert serving_shares([(4, 0), (3, 100), (2, 100)]) == {4: 0.0, 3: 1.0, 2: 0.0}


def test_serving_shares_match_the_real_rollout_buckets() -> None:
    ids = [uuid.UUID(int=i * 7919 + 13).hex for i in range(20_000)]
    served = {3: 0, 2: 0}
    for device in ids:
        served[3 if in_rollout(device, 3, 30) else 2] += 1
    expected = serving_shares([(3, 30), (2, 100)])
    assert served[3] / len(ids) == pytest.approx(expected[3], abs=0.01)


def test_percentile_is_nearest_rank_over_a_histogram() -> None:
    histogram = [(2.0, 1), (0.5, 2), (1.0, 7)]
    assert percentile(histogram, 0.05) == 0.5
    assert percentile(histogram, 0.2) == 0.5
    assert percentile(histogram, 0.5) == 1.0
    assert percentile(histogram, 0.95) == 2.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def test_persona_order_is_first_appearance_from_the_oldest_version() -> None:
    v1 = [("a", "A"), ("b", "B")]
    v2 = [("c", "C"), ("b", "B"), ("a", "A")]
    assert persona_order([v1, v2]) == ("a", "b", "c")


def test_recent_weeks_cross_the_new_year() -> None:
    assert recent_weeks(T0, 12)[0] == "2025-W51" and recent_weeks(T0, 12)[-1] == "2026-W10"
    assert recent_weeks(dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc).timestamp(), 2) == (
        "2026-W52",
        "2026-W53",
    )


# The key -----------------------------------------------------------------------------------


@pytest.fixture
def app(make_app: MakeApp, tmp_path: Path) -> Flask:
    """An app with the admin key and a signing key, on a migrated database."""
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    created = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))
    with created.app_context():
        init_db()
    return created


def test_a_browser_signs_in_with_the_admin_key_as_password(client: FlaskClient) -> None:
    asked = client.get("/dashboard")
    assert error_of(asked, 401)["code"] == "unauthorized"
    assert asked.headers["WWW-Authenticate"].startswith('Basic realm="edgepersona dashboard"')
    wrong = client.get("/dashboard", auth=("ops", "not-the-admin-key-at-all"))
    assert wrong.status_code == 401 and "Basic" in wrong.headers["WWW-Authenticate"]
    page = client.get("/dashboard", auth=("anyone", ADMIN_KEY))
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["Cache-Control"] == "no-store"


def test_a_tool_may_send_the_admin_key_as_a_bearer(client: FlaskClient) -> None:
    assert client.get("/dashboard", headers=ADMIN).status_code == 200
    device = register(client)
    assert error_of(client.get("/dashboard", headers=device), 403)["code"] == "forbidden"


def test_the_dashboard_is_off_without_an_admin_key(make_app: MakeApp) -> None:
    app = make_app()
    with app.app_context():
        init_db()
    refused = app.test_client().get("/dashboard", auth=("ops", ADMIN_KEY))
    error = error_of(refused, 403)
    assert error["code"] == "forbidden" and "EDGEPERSONA_ADMIN_API_KEY" in error["message"]


def test_an_empty_service_says_what_to_do(client: FlaskClient) -> None:
    html = client.get("/dashboard", headers=ADMIN).get_data(as_text=True)
    assert "No model is published yet" in html
    assert "No uploads yet" in html and "Devices sync weekly" in html
    assert "No privacy budget spent" in html
    assert "No retrain has run yet" in html
    assert stat(html, "devices") == "0"
    assert '<svg class="chart"' not in html


def test_the_page_loads_nothing_from_anywhere(client: FlaskClient) -> None:
    html = client.get("/dashboard", headers=ADMIN).get_data(as_text=True)
    assert not re.search(r"(src|href)=|url\(|@import|<script|<link", html)


def test_uploads_without_labels_are_said_to_be_left_out(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    assert publish(client, default_files()).status_code == 201
    with engine(client.application).begin() as conn:
        store_uploads(conn, [("2026-W10", 1.0, None)])  # stored before migration 5
    html = client.get("/dashboard", headers=ADMIN).get_data(as_text=True)
    assert "No labelled uploads in the last 12 weeks" in html
    assert "Left out: 1 upload without a label" in html
    assert 'class="share"' not in html


# Numbers on SQLite and PostgreSQL ----------------------------------------------------------

START = T0 - 7 * 86_400  # Monday of 2026-W09, 08:00 UTC


def stat(html: str, key: str) -> str:
    match = re.search(
        rf'data-stat="{key}">\s*<div class="label">[^<]*</div>\s*<div class="value">([^<]*)<',
        html,
    )
    assert match, key
    return match.group(1)


def upload(client: FlaskClient, auth: dict[str, str], week: str, label: str, eps: float) -> None:
    """An upload reporting persona ``label`` with two offers' outcomes."""
    features = [round(float(v), 6) for v in centroids()["commuter"]]
    outcomes = [
        {"offer": offer, "accepted": 0.5, "dismissed": -1.25}
        for offer in ("coffee_to_go", "flash_sale")
    ]
    payload = valid_payload(
        week=week,
        features=features,
        epsilon=eps,
        model_version=1,
        persona=label,
        outcomes=outcomes,
    )
    assert client.post("/v1/aggregates", json=payload, headers=auth).status_code == 201


def shares(page: Elements) -> dict[tuple[str, str], tuple[float, float, float]]:
    """``(week column, persona) -> (low, share, high)`` as the persona chart draws them."""
    return {
        (g["data-column"], g["data-series"]): (
            float(g["data-low"]),
            float(g["data-value"]),
            float(g["data-high"]),
        )
        for g in page.select("g", "share")
    }


class DashboardContract:
    """The page's numbers are the seeded ones, on every supported database."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(START)

    def test_every_panel_shows_what_was_sent(self, app: Flask, clock: ManualClock) -> None:
        client = app.test_client()
        assert publish(client, default_files()).status_code == 201
        assert promote(client, 1, 100).status_code == 200
        a, b, c, _quiet = (register(client) for _ in range(4))
        clock.set(START + 3_600)
        upload(client, a, "2026-W09", "commuter", 1.0)
        upload(client, b, "2026-W09", "deal_hunter", 0.5)
        clock.set(T0 + 3_600)
        upload(client, a, "2026-W10", "commuter", 1.0)
        upload(client, b, "2026-W10", "deal_hunter", 0.5)
        upload(client, c, "2026-W10", "homebody_streamer", 2.0)
        with engine(app).begin() as conn:  # b's as if stored before migration 5, no outcomes
            unlabel = aggregates.c.week == "2026-W10", aggregates.c.epsilon == 0.5
            conn.execute(update(aggregates).where(*unlabel).values(persona=None, outcomes={}))
        assert publish(client, second_files()).status_code == 201
        assert promote(client, 2, 30).status_code == 200
        refused = client.post("/v1/admin/retrain", headers=ADMIN)
        assert refused.status_code == 409  # 3 devices, below the floor of 50

        response = client.get("/dashboard", auth=("ops", ADMIN_KEY))
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        page = Elements(html)

        assert stat(html, "devices") == "4"
        assert stat(html, "uploads_this_week") == "3"
        assert stat(html, "current_version") == "v1"  # 70% of devices
        assert stat(html, "newest_version") == "v2"
        assert stat(html, "median_epsilon") == "1"

        ids = list(centroids())
        drawn = shares(page)
        assert {week for week, _ in drawn} == {"W09", "W10"}
        sent = {
            "W09": [(1.0, tuple(ids), "commuter"), (0.5, tuple(ids), "deal_hunter")],
            "W10": [(1.0, tuple(ids), "commuter"), (2.0, tuple(ids), "homebody_streamer")],
        }
        for week, reports in sent.items():
            expected = one_hot_mean(reports, ids)
            groups = [
                LabelCounts(eps, labels, tuple(int(r == p) for p in ids))
                for eps, labels, r in reports
            ]
            found = estimate(groups, ids)
            for i, persona in enumerate(ids):
                low, value, high = drawn[week, persona]
                assert value == pytest.approx(min(max(expected[i], 0), 1), abs=1e-5)
                half = Z_95 * found.errors[i]
                assert low == pytest.approx(min(max(expected[i] - half, 0), 1), abs=1e-5)
                assert high == pytest.approx(min(max(expected[i] + half, 0), 1), abs=1e-5)
        assert len(page.select("rect", "empty")) == 10  # the other weeks of the twelve
        assert "per persona of model v2" in html
        assert "is drawn clipped" in html  # two uploads: estimates far outside [0, 1]
        assert 'data-noisy="true"' in html
        assert "Left out: 1 upload without a label" in html
        assert re.search(
            r"2026-W10: each share within ±\d+ points \(95%\),\s+from 2 labelled", html
        )
        legend = [li["data-persona"] for li in page.select("li") if "data-persona" in li]
        assert legend[:5] == ids  # v1's order: stable colours

        bars = page.select("rect", "bar")
        assert len(bars) == 30
        counts = {b["data-column"]: b["data-value"] for b in bars if b["data-value"] != "0"}
        assert counts == {"23 Feb": "2", "2 Mar": "3"}

        ranges = {g["data-column"]: g for g in page.select("g", "range")}
        assert set(ranges) == {"W09", "W10"}
        assert (ranges["W09"]["data-low"], ranges["W09"]["data-value"]) == ("0.5", "0.5")
        assert (ranges["W10"]["data-value"], ranges["W10"]["data-high"]) == ("1", "2")
        assert re.search(r"<td>2026-W10</td><td[^>]*>3</td>\s*<td[^>]*>3.5</td>", html)

        versions = [row["data-version"] for row in page.select("tr") if "data-version" in row]
        assert versions == ["2", "1"]
        served = re.findall(r"<td class=\"num\" data-share>([^<]*)</td>", html)
        assert served == ["30%", "70%"]
        meters = [m["data-value"] for m in page.select("svg", "meter")]
        assert meters == ["30", "100"]
        listed = re.findall(r'class="persona"><span class="swatch"[^>]*></span>([^<]*)<', html)
        assert listed.count("Commuting professional") == 2 and len(listed) == 10

        gates = [
            (g["data-gate"], g["data-passed"])
            for g in page.select("span", "pill")
            if "data-gate" in g
        ]
        assert gates == [("k_anonymity_floor", "false")]
        assert "refused: too_few_devices" in html
        assert "2026-W07 \u2013 W10" in html

    def test_a_large_fleets_estimated_mix_holds_the_true_one(
        self, app: Flask, clock: ManualClock
    ) -> None:
        """2,000 devices, 60% commuters and 40% deal hunters, report at epsilon 10 through the
        SDK's randomized response; every drawn interval holds the true share, and is as wide
        as the channel says."""
        client = app.test_client()
        assert publish(client, default_files()).status_code == 201
        ids = list(centroids())
        truth = {"commuter": 0.6, "deal_hunter": 0.4}
        rng = np.random.default_rng(5)
        held = ["commuter"] * 1_200 + ["deal_hunter"] * 800
        reports = [randomized_response(h, ids, PERSONA_SHARE * 10, rng) for h in held]
        with engine(app).begin() as conn:
            store_uploads(conn, [("2026-W10", 10.0, r) for r in reports])
        clock.set(T0 + 3_600)
        html = client.get("/dashboard", headers=ADMIN).get_data(as_text=True)
        drawn = {p: v for (week, p), v in shares(Elements(html)).items() if week == "W10"}
        assert set(drawn) == set(ids)
        keep = keep_probability(PERSONA_SHARE * 10, len(ids))
        other = (1 - keep) / (len(ids) - 1)
        raw = one_hot_mean([(10.0, tuple(ids), r) for r in reports], ids)
        for persona, estimated in zip(ids, raw, strict=True):
            share = truth.get(persona, 0.0)
            low, value, high = drawn[persona]
            assert low <= share <= high, (persona, drawn[persona])
            per_upload = share * keep * (1 - keep) + (1 - share) * other * (1 - other)
            half = Z_95 * math.sqrt(per_upload / len(held)) / (keep - other)
            assert value == pytest.approx(max(estimated, 0), abs=1e-5)
            assert high == pytest.approx(estimated + half, abs=0.1 * half), persona
            assert low == pytest.approx(max(estimated - half, 0), abs=0.1 * half), persona
        assert 'data-noisy="false"' in html and "Left out" not in html
        assert "from 2,000 labelled uploads" in html


class TestDashboardOnSQLite(DashboardContract):
    pass


class TestDashboardOnPostgreSQL(DashboardContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url
