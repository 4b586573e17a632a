"""The OpenAPI document a dashboard client is generated from: valid OpenAPI 3.1, one stable
operationId per operation, and the machine's states and event types as enums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from openapi_spec_validator import OpenAPIV31SpecValidator

from api.app import create_app
from core.contracts.events import EventType
from core.contracts.states import MachineState
from tests.api.conftest import closed_port, make_settings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _app(tmp_path: Path) -> FastAPI:
    return create_app(make_settings(tmp_path, "sqlite://", f"127.0.0.1:{closed_port()}"))


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    spec = _app(tmp_path).openapi()
    assert spec["openapi"].startswith("3.1.")
    errors = [str(error) for error in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_operation_ids_are_tag_dash_function_and_unique(tmp_path: Path) -> None:
    operations = _operations(_app(tmp_path).openapi())
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation in operations:
        tag = operation["tags"][0]
        assert operation["operationId"].startswith(f"{tag}-"), operation["operationId"]
        assert operation["operationId"].removeprefix(f"{tag}-").isidentifier()
    assert "machines-create_machine" in ids and "instances-hibernate" in ids


def test_states_and_event_types_are_enums(tmp_path: Path) -> None:
    schemas = _app(tmp_path).openapi()["components"]["schemas"]
    assert set(schemas["MachineState"]["enum"]) == set(MachineState)
    assert set(schemas["EventType"]["enum"]) == set(EventType)
    assert schemas["MachineOut"]["properties"]["status"] == {
        "$ref": "#/components/schemas/MachineState"
    }
    assert schemas["EventOut"]["properties"]["event_type"] == {
        "$ref": "#/components/schemas/EventType"
    }


def test_every_422_is_documented_as_the_shape_the_api_sends(tmp_path: Path) -> None:
    spec = _app(tmp_path).openapi()
    documented = [
        operation["responses"]["422"]["content"]["application/json"]["schema"]
        for operation in _operations(spec)
        if "422" in operation["responses"]
    ]
    assert len(documented) > 20
    assert all(s == {"$ref": "#/components/schemas/ValidationErrorOut"} for s in documented)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    shape = spec["components"]["schemas"]["FieldError"]
    assert set(shape["required"]) == {"loc", "msg", "type"}
