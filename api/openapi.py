"""The OpenAPI document as the API answers: every 422 is `ValidationErrorOut` (what
`api/errors.py` sends: the fields, and one readable line), not FastAPI's default shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.schemas.common import ValidationErrorOut

_DEFAULT = "#/components/schemas/HTTPValidationError"
_OURS = "#/components/schemas/ValidationErrorOut"


def _point_422s_at_ours(document: dict[str, Any]) -> None:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            content = operation.get("responses", {}).get("422", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if schema.get("$ref") == _DEFAULT:
                schema["$ref"] = _OURS
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    ours = ValidationErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(ours.pop("$defs", {}))
    schemas["ValidationErrorOut"] = ours
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _point_422s_at_ours(generate())  # FastAPI caches what it made in openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
