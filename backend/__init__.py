"""Flask sync service: ingest, model registry, retraining and dashboard (issue 4)."""

from .app import create_app

__all__ = ["create_app"]
