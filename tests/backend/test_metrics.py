"""/metrics in one process: model answers counted by version, registry gauges from the database.

The registry gauges are read from the database, so they run on SQLite and PostgreSQL
(``MetricsContract``); test_metrics_gunicorn.py checks the counters across worker processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from edgepersona.backend.db import init_db
from edgepersona.backend.keys import generate_keypair
from edgepersona.backend.metrics import Metrics, metrics

from .conftest import MakeApp, register
from .test_registry import ADMIN_KEY, default_files, promote, publish, second_files


def scrape(client: FlaskClient) -> set[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return set(response.get_data(as_text=True).splitlines())


@pytest.fixture
def app(make_app: MakeApp, tmp_path: Path) -> Flask:
    private = tmp_path / "registry-key.pem"
    generate_keypair(private, tmp_path / "registry-key.pub.json")
    created = make_app(ADMIN_API_KEY=ADMIN_KEY, SIGNING_KEY_PATH=str(private))
    with created.app_context():
        init_db()
    return created


class MetricsContract:
    def test_model_answers_are_counted_by_version(
        self, client: FlaskClient, auth: dict[str, str]
    ) -> None:
        assert client.get("/v1/models/current", headers=auth).status_code == 204
        publish(client, default_files())
        promote(client, 1, 100)
        first = client.get("/v1/models/current", headers=auth)
        etag = {"If-None-Match": first.headers["ETag"]}
        assert client.get("/v1/models/current", headers=auth | etag).status_code == 304
        assert client.get("/v1/models/1/bundle", headers=auth).status_code == 200
        assert client.get("/v1/models/9/bundle", headers=auth).status_code == 404
        lines = scrape(client)
        for expected in (
            'edgepersona_model_manifests_served_total{status="204",version="none"} 1',
            'edgepersona_model_manifests_served_total{status="200",version="1"} 1',
            'edgepersona_model_manifests_served_total{status="304",version="1"} 1',
            'edgepersona_model_bundles_served_total{version="1"} 1',
            "# TYPE edgepersona_model_bundles_served_total counter",
        ):
            assert expected in lines
        assert not any('version="9"' in line for line in lines)

    def test_rollout_gauges_are_read_from_the_registry(
        self, make_app: MakeApp, client: FlaskClient
    ) -> None:
        assert "edgepersona_database_up 1" in scrape(client)
        publish(client, default_files())
        promote(client, 1, 100)
        publish(client, second_files())
        promote(client, 2, 30)
        # Another app on the same database (think: another host) sees the same gauges.
        other = make_app(ADMIN_API_KEY=ADMIN_KEY).test_client()
        for lines in (scrape(client), scrape(other)):
            for expected in (
                'edgepersona_model_rollout_percent{kind="model",version="2"} 30',
                'edgepersona_model_rollout_percent{kind="model",version="1"} 100',
                'edgepersona_model_device_share{version="2"} 0.3',
                'edgepersona_model_device_share{version="1"} 0.7',
                "# TYPE edgepersona_model_rollout_percent gauge",
                "edgepersona_database_up 1",
            ):
                assert expected in lines


class TestMetricsOnSQLite(MetricsContract):
    pass


class TestMetricsOnPostgreSQL(MetricsContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


def test_a_scrape_without_the_database_still_answers_the_counters(make_app: MakeApp) -> None:
    app = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    client = app.test_client()
    client.get("/nowhere")
    lines = scrape(client)
    assert "edgepersona_database_up 0" in lines
    assert 'edgepersona_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1' in (
        lines
    )
    assert not any(line.startswith("edgepersona_model_rollout_percent{") for line in lines)


def test_counters_take_exactly_their_declared_labels(app: Flask) -> None:
    counters = metrics(app)
    assert isinstance(counters, Metrics)
    with pytest.raises(ValueError, match="takes the labels"):
        counters.inc("edgepersona_model_bundles_served_total", status="200")


def test_every_app_counts_on_its_own_in_one_process(app: Flask, make_app: MakeApp) -> None:
    second = make_app()
    register(app.test_client())
    text = "\n".join(scrape(second.test_client()))
    assert "devices.register" not in text
