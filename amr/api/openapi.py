"""The OpenAPI document, completed with what the API refuses in every text it is sent.

No text of a request (body field, query or path parameter) may hold a control character (see
`amr.api.schemas.CONTROL_CHARACTERS`); the document says so by a pattern on every request string
that has no pattern or format of its own, so that generated clients and property-based tests
know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from amr.api.schemas import PLAIN_TEXT_PATTERN, ErrorBody

REF = "#/components/schemas/"


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` inside `node`."""
    found: list[str] = []

    def visit(item: dict[str, Any]) -> None:
        if isinstance(item.get("$ref"), str):
            found.append(item["$ref"])

    _walk(node, visit)
    return found


def _request_components(document: dict[str, Any]) -> set[str]:
    """Names of the component schemas a request body refers to, directly or through another."""
    components = document.get("components", {}).get("schemas", {})
    found: set[str] = set()
    pending: list[Any] = [
        operation.get("requestBody", {}) for item in document.get("paths", {}).values() for operation in item.values()
    ]
    while pending:
        for ref in _refs(pending.pop()):
            name = ref.removeprefix(REF)
            if ref.startswith(REF) and name not in found and name in components:
                found.add(name)
                pending.append(components[name])
    return found


def _plain(node: dict[str, Any]) -> None:
    if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
        node["pattern"] = PLAIN_TEXT_PATTERN


def declare_plain_text(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with `PLAIN_TEXT_PATTERN` on every request string without a pattern or format."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                _walk(parameter.get("schema", {}), _plain)
            _walk(operation.get("requestBody", {}), _plain)
    components = document.get("components", {}).get("schemas", {})
    for name in _request_components(document):
        _walk(components[name], _plain)
    return document


def with_error_body(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with `ErrorBody` and the schemas it refers to among its components (the error answers of
    `amr.api.errors.responses` refer to it by ``$ref``)."""
    schema = ErrorBody.model_json_schema(ref_template=REF + "{model}", mode="serialization")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(ErrorBody.__name__, schema)
    return document


def install_openapi(api: FastAPI) -> None:
    """Serve the completed document as ``api.openapi()`` (built once)."""

    def build() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(
                title=api.title,
                version=api.version,
                openapi_version=api.openapi_version,
                description=api.description,
                routes=api.routes,
            )
            api.openapi_schema = declare_plain_text(with_error_body(document))
        return api.openapi_schema

    api.openapi = build  # type: ignore[method-assign]
