"""The SDK's public surface is exactly its ``__all__``, and every error is documented."""

from __future__ import annotations

import inspect
import types

import edgepersona.sdk as sdk
from edgepersona.sdk import errors


def test_all_is_complete_sorted_and_importable() -> None:
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(sdk.__all__)
    assert list(sdk.__all__) == sorted(sdk.__all__, key=lambda n: (not n.isupper(), n))


def test_every_exception_is_in_the_tree_and_its_docstring() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)
    ]
    assert {c.__name__ for c in classes} == set(errors.__all__)
    for cls in classes:
        assert issubclass(cls, errors.EdgePersonaError)
        assert cls.__name__ in errors.__doc__
        assert cls.__doc__


def test_public_methods_are_typed_and_documented() -> None:
    for name, member in inspect.getmembers(sdk.EdgePersona, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert member.__doc__, name
        hints = inspect.signature(member)
        assert hints.return_annotation is not inspect.Signature.empty, name
