"""``docs/rest-api.md``: the REST reference, generated from the OpenAPI document.

Run ``python -m edgepersona.backend.rest_doc > docs/rest-api.md``; a test renders the document
the app serves at ``/openapi.json`` and compares, so the page follows every endpoint change.
"""

from __future__ import annotations

import re
from typing import Any

from .apidoc import JsonObject

__all__ = ["rest_markdown"]

_HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def rest_markdown(document: JsonObject) -> str:
    """The reference page of an OpenAPI 3.1 ``document`` (a dict, as ``openapi_document()``)."""
    info = document["info"]
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _HTTP_METHODS
    ]
    tags = list(dict.fromkeys(operation["tags"][0] for _, _, operation in operations))
    schemas = document["components"].get("schemas", {})
    lines = [
        "# REST API reference",
        "",
        f"{info['title']} (API version {info['version']}, OpenAPI {document['openapi']}).",
        info.get("description", ""),
        "",
        "Generated from the OpenAPI document the service serves at `GET /openapi.json`: run",
        "`python -m edgepersona.backend.rest_doc > docs/rest-api.md`; do not edit by hand.",
        "",
        "## Contents",
        "",
        "- [Authentication](#authentication)",
        "- [Endpoints](#endpoints): "
        + ", ".join(f"[{tag.capitalize()}](#{_anchor(tag)})" for tag in tags),
        "- [Schemas](#schemas): " + ", ".join(f"[`{n}`](#{_anchor(n)})" for n in schemas),
        "",
        "## Authentication",
        "",
        *_table(
            ["scheme", "how", "what"],
            [
                [f"`{name}`", _scheme(scheme), scheme.get("description", "")]
                for name, scheme in document["components"]["securitySchemes"].items()
            ],
        ),
        "",
        "## Endpoints",
        "",
        *_table(
            ["method", "path", "auth", "summary"],
            [
                [
                    method.upper(),
                    f"[`{path}`](#{_anchor(f'{method} {path}')})",
                    _auth(operation),
                    operation["summary"],
                ]
                for method, path, operation in operations
            ],
        ),
    ]
    for tag in tags:
        lines += ["", f"## {tag.capitalize()}"]
        for method, path, operation in operations:
            if operation["tags"][0] == tag:
                lines += ["", *_operation(method, path, operation, document)]
    lines += ["", "## Schemas"]
    for name, schema in schemas.items():
        lines += ["", f"### {name}", "", *_schema(schema)]
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, operation: JsonObject, document: JsonObject) -> list[str]:
    lines = [
        f"### {method.upper()} {path}",
        "",
        operation["summary"],
        "",
        f"Auth: {_auth(operation)}.",
    ]
    if operation.get("parameters"):
        rows = [
            [f"`{p['name']}`", p["in"], _yes(p.get("required", False)), _brief(p["schema"])]
            for p in operation["parameters"]
        ]
        lines += ["", "Parameters:", "", *_table(["name", "in", "required", "type"], rows)]
    body = operation.get("requestBody")
    if body is not None:
        ((media, content),) = body["content"].items()
        need = "required" if body.get("required") else "optional"
        if "properties" in content["schema"]:
            lines += ["", f"Request body (`{media}`, {need}):", "", *_schema(content["schema"])]
        else:
            lines += ["", f"Request body (`{media}`, {need}): {_brief(content['schema'])}"]
    rows = []
    for status, answer in sorted(operation["responses"].items()):
        resolved = _resolve(answer, document)
        meaning = resolved["description"] + "".join(
            f" Sends `{name}`: {header['description']}"
            for name, header in resolved.get("headers", {}).items()
        )
        bodies = [
            f"`{media}`: {_brief(content.get('schema', {}))}"
            for media, content in resolved.get("content", {}).items()
        ]
        rows.append([status, meaning, "; ".join(bodies) or "none"])
    return [*lines, "", "Responses:", "", *_table(["status", "meaning", "body"], rows)]


def _schema(schema: JsonObject) -> list[str]:
    """A schema's description, type, then a table of its fields (nested ones by dotted path)."""
    lines = [_sentence(schema["description"]), ""] if "description" in schema else []
    notes = _notes({**schema, "description": ""})
    lines.append(f"Type: {_type(schema)}" + (f" ({notes})" if notes else ""))
    rows = _rows(schema, "")
    return lines + (["", *_table(["field", "type", "required", "notes"], rows)] if rows else [])


def _rows(schema: JsonObject, prefix: str) -> list[list[str]]:
    rows = []
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        rows.append([f"`{path}`", _type(field), _yes(name in required), _notes(field)])
        rows += _rows(field, f"{path}.")
        items = field.get("items")
        if isinstance(items, dict):
            rows += _rows(items, f"{path}[].")
        for index, item in enumerate(field.get("prefixItems", ())):
            rows.append([f"`{path}[{index}]`", _type(item), "yes", _notes(item)])
    return rows


def _brief(schema: JsonObject) -> str:
    """Type and constraints in a few words, for a table cell or a sentence."""
    if "allOf" in schema:
        return " and ".join(_brief(part) for part in schema["allOf"])
    if "properties" in schema:
        fields = ", ".join(
            f"`{name}`: {_type(field)}" for name, field in schema["properties"].items()
        )
        return f"object with {fields}"
    notes = _notes(schema)
    return _type(schema) + (f" ({notes})" if notes else "")


def _type(schema: JsonObject) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rpartition("/")[2]
        return f"[`{name}`](#{_anchor(name)})"
    if "allOf" in schema:
        return " and ".join(_type(part) for part in schema["allOf"])
    kind = schema.get("type")
    if kind is None:
        return "any"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type(schema['items'])}"
    if schema.get("format") == "binary":
        return "binary"
    return str(kind)


def _notes(schema: JsonObject) -> str:
    """The constraints of one schema, then its title and description."""
    notes = [f"`{schema['title']}`"] if "title" in schema else []
    if "enum" in schema:
        notes.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        notes.append(f"{_number(low)} .. {_number(high)}")
    elif low is not None:
        notes.append(f">= {_number(low)}")
    elif high is not None:
        notes.append(f"<= {_number(high)}")
    if "pattern" in schema:
        notes.append(f"pattern `{schema['pattern']}`")
    fewest, most = schema.get("minItems"), schema.get("maxItems")
    if fewest is not None and fewest == most:
        notes.append(f"exactly {fewest} items")
    elif most is not None:
        notes.append(f"at most {most} items")
    if schema.get("additionalProperties") is False:
        notes.append("no other fields")
    if "required" in schema and "properties" not in schema:
        notes.append("with " + ", ".join(f"`{name}`" for name in schema["required"]))
    if schema.get("description"):
        notes.append(_sentence(schema["description"]))
    return "; ".join(notes)


def _resolve(answer: JsonObject, document: JsonObject) -> JsonObject:
    if "$ref" not in answer:
        return answer
    found: Any = document
    for part in answer["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def _auth(operation: JsonObject) -> str:
    names = [name for requirement in operation.get("security", []) for name in requirement]
    return " or ".join(f"[`{name}`](#authentication)" for name in names) or "none"


def _scheme(scheme: JsonObject) -> str:
    if scheme["type"] == "http":
        return f"`Authorization: {scheme['scheme'].capitalize()} <credential>`"
    return str(scheme["type"])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _sentence(text: str) -> str:
    return text.replace("\n", " ").strip()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [row(header), "|" + "---|" * len(header), *(row(cells) for cells in rows)]


def _anchor(heading: str) -> str:
    """GitHub's id of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


if __name__ == "__main__":
    from .openapi import openapi_document

    print(rest_markdown(openapi_document()), end="")
