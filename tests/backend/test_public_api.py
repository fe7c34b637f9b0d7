"""The backend's public names are its ``__all__``; errors form one documented tree."""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import edgepersona.backend as backend
from edgepersona.backend import errors

BACKEND = Path(backend.__file__).parent


def test_all_is_complete_and_sorted() -> None:
    # create_app is imported lazily (module __getattr__), so look names up, not vars().
    defined_here = {
        name
        for name, value in vars(backend).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", None) == backend.__name__
    }
    assert defined_here <= set(backend.__all__)
    assert all(callable(getattr(backend, name)) for name in backend.__all__)
    assert list(backend.__all__) == sorted(backend.__all__)


def test_every_error_is_in_the_tree_and_its_docstring() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert {c.__name__ for c in classes} == set(errors.__all__) - {"register_error_handlers"}
    for cls in classes:
        assert issubclass(cls, errors.BackendError)
        assert cls.__name__ in (errors.__doc__ or "")
        assert cls.__doc__


def test_modules_are_documented_and_small() -> None:
    for path in sorted(BACKEND.glob("*.py")):
        text = path.read_text()
        assert text.startswith('"""'), path.name
        assert text.count("\n") < 400, path.name  # STYLE.md: modules under ~400 lines
