"""The dashboard in headless Chromium, served by a real WSGI server on 127.0.0.1.

Twelve weeks of a fleet are made through the real endpoints (``fleet_seed``); the browser signs
in with the admin key, and the test checks that the charts it drew hold the seeded numbers,
that it fetched nothing but the page, and that nothing went wrong in its console. The
screenshot is saved under the test's tmp_path, copied into ``$EDGEPERSONA_ARTIFACTS`` when that
is set, and written to ``$EDGEPERSONA_DASHBOARD_PNG`` when that is set: the README's picture is
made with ``EDGEPERSONA_DASHBOARD_PNG=docs/dashboard.png pytest
tests/backend/test_dashboard_browser.py``. Chromium is Debian's ``/usr/bin/chromium``;
Playwright never downloads a browser here.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import ConsoleMessage, Page, Request, sync_playwright
from werkzeug.serving import make_server

from edgepersona.backend.db import init_db
from edgepersona.backend.keys import generate_keypair
from edgepersona.backend.persona_mix import Z_95, LabelCounts, estimate
from edgepersona.sdk import ManualClock

from . import fleet_seed
from .conftest import MakeApp
from .test_persona_mix import one_hot_mean
from .test_registry import ADMIN_KEY

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(fleet_seed.FIRST_MONDAY)


@pytest.fixture
def seeded(make_app: MakeApp, clock: ManualClock, tmp_path: Path) -> tuple[Flask, fleet_seed.Fleet]:
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    app = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))
    with app.app_context():
        init_db()
    return app, fleet_seed.seed(app, clock)


@pytest.fixture
def server(seeded: tuple[Flask, fleet_seed.Fleet]) -> Iterator[str]:
    """The seeded app on a real socket; its base URL."""
    httpd = make_server("127.0.0.1", 0, seeded[0])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join()


def values(page: Page, selector: str, attribute: str = "data-value") -> list[str]:
    return [
        str(v)
        for v in page.eval_on_selector_all(
            selector, f"els => els.map(e => e.getAttribute('{attribute}'))"
        )
    ]


def nearest_rank(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


@pytest.mark.slow
def test_chromium_draws_the_seeded_fleet_and_fetches_nothing_else(
    server: str, seeded: tuple[Flask, fleet_seed.Fleet], tmp_path: Path
) -> None:
    _, fleet = seeded
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            http_credentials={"username": "ops", "password": ADMIN_KEY},
        )
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda msg: _note_console(msg, problems))
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda request: problems.append(_failed(request)))
        response = page.goto(f"{server}/dashboard", wait_until="load")
        assert response is not None and response.status == 200

        _check_personas(page, fleet)
        _check_uploads(page, fleet)
        _check_privacy(page, fleet)
        _check_models_and_retrains(page, fleet)

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 50_000
    _publish(shot)
    assert requests and all(url.startswith(f"{server}/") for url in requests), requests
    assert problems == []


def _check_personas(page: Page, fleet: fleet_seed.Fleet) -> None:
    """Each drawn share and whisker is the estimate from the labels the devices sent."""
    ids = list(fleet_seed.PERSONA_IDS)
    sent: dict[str, list[tuple[float, tuple[str, ...], str]]] = defaultdict(list)
    for upload in fleet.uploads:
        sent[upload["week"][5:]].append((upload["epsilon"], tuple(ids), upload["label"]))
    groups = page.locator("#personas g.share")
    drawn = {
        (str(g.get_attribute("data-column")), str(g.get_attribute("data-series"))): [
            float(str(g.get_attribute(f"data-{end}"))) for end in ("low", "value", "high")
        ]
        for g in groups.all()
    }
    assert {week for week, _ in drawn} == set(sent)  # every seeded week, and only those
    for week, reports in sent.items():
        expected = one_hot_mean(reports, ids)
        by_channel: Counter[tuple[float, str]] = Counter((eps, label) for eps, _, label in reports)
        found = estimate(
            [
                LabelCounts(eps, tuple(ids), tuple(by_channel[eps, p] for p in ids))
                for eps in {eps for eps, _ in by_channel}
            ],
            ids,
        )
        assert found.uploads == len(reports)
        for i, persona in enumerate(ids):
            half = Z_95 * found.errors[i]
            assert drawn[week, persona] == pytest.approx(
                [_clip(expected[i] - half), _clip(expected[i]), _clip(expected[i] + half)],
                abs=1e-5,
            )
    assert len(values(page, "#personas .legend li", "data-persona")) == 5
    assert page.locator("#personas g.share title").count() == groups.count()
    # The browser drew each bar as high as its share: pixels per share are the same for all.
    ratios = []
    for group in groups.all():
        box = group.locator("rect").bounding_box()
        share = float(str(group.get_attribute("data-value")))
        assert box is not None
        if share > 0.05:
            ratios.append(box["height"] / share)
    assert ratios and max(ratios) - min(ratios) < 0.02 * max(ratios)


def _clip(share: float) -> float:
    return min(max(share, 0.0), 1.0)


def _check_uploads(page: Page, fleet: fleet_seed.Fleet) -> None:
    today = dt.datetime.fromtimestamp(fleet_seed.NOW, dt.timezone.utc).date()
    days = [today - dt.timedelta(days=back) for back in range(29, -1, -1)]
    per_day = Counter(
        dt.datetime.fromtimestamp(upload["at"], dt.timezone.utc).date() for upload in fleet.uploads
    )
    expected = [str(per_day[day]) for day in days]
    assert values(page, "#uploads rect.bar") == expected
    # Bar heights on screen are proportional to the counts.
    bars = page.locator("#uploads rect.bar").all()
    ratios = []
    for bar, count in zip(bars, expected, strict=True):
        box = bar.bounding_box()
        assert box is not None
        if int(count):
            ratios.append(box["height"] / int(count))
    assert max(ratios) - min(ratios) < 0.05 * max(ratios)


def _check_privacy(page: Page, fleet: fleet_seed.Fleet) -> None:
    this_week = sorted(u["epsilon"] for u in fleet.uploads if u["week"] == "2026-W10")
    assert len(values(page, "#privacy g.range")) == 12
    medians = dict(
        zip(
            values(page, "#privacy g.range", "data-column"),
            values(page, "#privacy g.range"),
            strict=True,
        )
    )
    assert float(medians["W10"]) == nearest_rank(this_week, 0.5)
    row = page.locator('#privacy tr[data-week="2026-W10"] td').all_inner_texts()
    assert row[1] == f"{len(this_week):,}" and row[2] == f"{sum(this_week):,.1f}"


def _check_models_and_retrains(page: Page, fleet: fleet_seed.Fleet) -> None:
    assert page.locator('[data-stat="devices"] .value').inner_text() == f"{fleet.devices:,}"
    assert values(page, "#models tr[data-version]", "data-version") == ["3", "2"]
    assert page.locator("#models [data-share]").all_inner_texts() == ["25%", "75%"]
    assert fleet.versions == {1: 100, 2: 100, 3: 25}
    rows = page.locator("#retrains tr.retrain").all()
    assert len(rows) == len(fleet.retrains) == 3
    passed = [
        values(page, f"#retrains tr.retrain:nth-child({n}) [data-gate]", "data-passed")
        for n in (1, 2, 3)
    ]
    assert passed == [["true"] * 3, ["true"] * 3, ["false"]]


def _note_console(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type in ("error", "warning"):
        problems.append(f"console {message.type}: {message.text}")


def _failed(request: Request) -> str:
    return f"request failed: {request.url} ({request.failure})"


def _publish(shot: Path) -> None:
    """Copy the screenshot where the environment asks for it (CI artifacts, the docs)."""
    artifacts = os.environ.get("EDGEPERSONA_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(artifacts) / shot.name)
    target = os.environ.get("EDGEPERSONA_DASHBOARD_PNG")
    if target:
        shutil.copyfile(shot, target)
