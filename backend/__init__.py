"""Flask sync service: ingest, model registry, retraining and dashboard (issue 4)."""

__all__: list[str] = []
