"""Flask sync service: ingest, model registry, retraining and dashboard (issue 4)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that loading ``edgepersona.backend.cli`` to build the ``edgepersona`` help
    # does not import Flask; ``flask --app edgepersona.backend`` still finds create_app.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
