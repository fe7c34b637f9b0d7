"""docs/sdk-api.md and docs/rest-api.md are generated from the code and kept in step with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from edgepersona import sdk
from edgepersona.backend import create_app
from edgepersona.backend.db import engine
from edgepersona.backend.openapi import openapi_document
from edgepersona.backend.rest_doc import rest_markdown
from edgepersona.sdk._apidoc import _signature, api_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"
SDK_COMMAND = "python -m edgepersona.sdk._apidoc > docs/sdk-api.md"
REST_COMMAND = "python -m edgepersona.backend.rest_doc > docs/rest-api.md"


def run_module(module: str, cwd: Path) -> str:
    """The generator's output from a fresh interpreter, as the regenerate command runs it."""
    result = subprocess.run(
        [sys.executable, "-m", module], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sdk_reference_is_current(tmp_path: Path) -> None:
    generated = run_module("edgepersona.sdk._apidoc", tmp_path)
    assert (DOCS / "sdk-api.md").read_text() == generated, (
        f"docs/sdk-api.md is stale; regenerate it: {SDK_COMMAND}"
    )
    # Stable: the same page whatever this process has imported and run before.
    assert api_markdown(sdk) == generated


def test_rest_reference_is_current(tmp_path: Path) -> None:
    generated = run_module("edgepersona.backend.rest_doc", tmp_path)
    assert (DOCS / "rest-api.md").read_text() == generated, (
        f"docs/rest-api.md is stale; regenerate it: {REST_COMMAND}"
    )


def test_rest_reference_is_built_from_the_document_the_app_serves(tmp_path: Path) -> None:
    app = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "ADMIN_API_KEY": None}
    )
    try:
        served = app.test_client().get("/openapi.json").json
    finally:
        engine(app).dispose()
    # Flask sorts the keys it serves; the page keeps the document's own order, which reads better.
    assert served == json.loads(json.dumps(openapi_document()))


@pytest.mark.parametrize("page", ["sdk-api.md", "rest-api.md"])
def test_every_link_points_at_a_heading_of_the_page(page: str) -> None:
    text = (DOCS / page).read_text()
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    assert len(anchors) == len(headings), "two headings share an anchor"
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and targets <= anchors, targets - anchors


def sections(text: str) -> dict[str, str]:
    """Each ``### `` section of a page by its heading (deeper headings stay inside)."""
    parts = re.split(r"^### (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_public_name_and_method_has_its_section() -> None:
    found = sections((DOCS / "sdk-api.md").read_text())
    main = sdk.EdgePersona
    members = [n for n in vars(main) if n[0] != "_" and callable(getattr(main, n))]
    for name in [*sdk.__all__, *(f"EdgePersona.{m}" for m in members), "EdgePersona.consent"]:
        assert name in found, name
    assert "**Raises**\n\n- `StoreError`: the database cannot" in found["EdgePersona.open"]
    assert "- `data_dir`: a private directory" in found["EdgePersona.open"]
    assert "##### Consent.grant" in found["EdgePersona.consent"]  # held, not exported
    assert "##### Fence.cancel" in found["EdgePersona.on"]  # returned, not exported
    assert "| `epsilon_per_week` | `float` | `1.0` | the local DP budget" in found["SyncSettings"]
    assert "│   └── StoreClosedError" in (DOCS / "sdk-api.md").read_text()


def test_docstring_markup_becomes_markdown() -> None:
    text = re.sub(r"```.*?```", "", (DOCS / "sdk-api.md").read_text(), flags=re.DOTALL)
    assert "``" not in text
    assert ":class:`" not in text and ":meth:`" not in text
    assert "ForwardRef" not in text


def test_a_public_name_in_no_group_stops_the_generator() -> None:
    extended = types.ModuleType("fake_sdk")
    vars(extended).update(vars(sdk))
    extended.__all__ = [*sdk.__all__, "NEW_THING"]
    with pytest.raises(ValueError, match=r"not placed \['NEW_THING'\]"):
        api_markdown(extended)


def test_a_new_method_in_no_group_stops_the_generator() -> None:
    def shiny(self: object) -> None:
        """New."""

    namespace = {
        k: v for k, v in vars(sdk.EdgePersona).items() if k not in ("__dict__", "__weakref__")
    }
    grown = type("EdgePersona", (), {**namespace, "shiny": shiny})
    extended = types.ModuleType("fake_sdk")
    vars(extended).update({**vars(sdk), "EdgePersona": grown})
    with pytest.raises(ValueError, match=r"not placed \['EdgePersona.shiny'\], not public \[\]"):
        api_markdown(extended)


def test_signatures_are_written_as_in_the_source() -> None:
    def short(a: int, /, b: str = "x", *rest: float, k: bool = False, **kw: object) -> None:
        """A function with every kind of parameter."""

    assert _signature("short", short) == (
        'short(a: int, /, b: str = "x", *rest: float, k: bool = False, **kw: object) -> None'
    )

    def wide(
        first_argument_name: str, *, second_argument_name: dict[str, int] | None = None
    ) -> int:
        return 0

    assert _signature("wide", wide).splitlines() == [
        "wide(",
        "    first_argument_name: str,",
        "    *,",
        "    second_argument_name: dict[str, int] | None = None,",
        ") -> int",
    ]


def test_every_operation_lists_exactly_its_statuses() -> None:
    document = openapi_document()
    found = sections(rest_markdown(document))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            section = found[f"{method.upper()} {path}"]
            table = section.split("Responses:")[1]
            statuses = re.findall(r"^\| (\d{3}) \|", table, flags=re.MULTILINE)
            assert statuses == sorted(operation["responses"]), (method, path)
            assert operation["summary"] in section
