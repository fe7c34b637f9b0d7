"""The reference of bench/backend.py: a bare Flask app whose upload endpoint only parses JSON.

Served by gunicorn with the same settings as the backend (2 sync workers), it measures what
the machine, the WSGI stack and the load generator allow before any of the backend's work:
``POST /v1/aggregates`` parses the same bodies with ``request.get_json()`` and answers 201.
"""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask("bare")

    @app.post("/v1/aggregates")
    def upload():  # type: ignore[no-untyped-def]
        request.get_json()
        return jsonify(status="accepted"), 201

    return app
