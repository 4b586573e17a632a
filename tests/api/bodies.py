"""Minimal valid request bodies built from a route's body model, so a test can send a request
that passes validation without knowing the route: each required field gets its first example
or the smallest value its constraints allow, then optional fields are added one at a time until
the model (and its model validators) accepts the body."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import annotated_types
from pydantic import BaseModel, HttpUrl, ValidationError
from pydantic.fields import FieldInfo


def _bound(field: FieldInfo, kind: type[int] | type[float]) -> int | float:
    value: int | float = kind(1)
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            value = kind(cast(Any, rule.ge))
        elif isinstance(rule, annotated_types.Gt):
            value = kind(cast(Any, rule.gt)) + 1
    return value


def _length(field: FieldInfo) -> int:
    for rule in field.metadata:
        if isinstance(rule, annotated_types.MinLen):
            return max(1, rule.min_length)
    return 1


def value_for(annotation: Any, field: FieldInfo | None = None) -> Any:
    """A JSON value of this type that the field's constraints accept."""
    if field is not None and field.examples:
        return field.examples[0]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return value_for(args[0], field)
    if origin in (Union, types.UnionType):
        return value_for(next(a for a in args if a is not type(None)), field)
    if origin is Literal:
        return args[0]
    if origin in (list, set, frozenset, tuple):
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return next(iter(annotation)).value
        if issubclass(annotation, BaseModel):
            return body_for(annotation)
        if annotation is bool:
            return True
        if annotation in (int, float):
            return _bound(field, annotation) if field is not None else annotation(1)
        if annotation is str:
            return "x" * (_length(field) if field is not None else 1)
        if annotation is datetime:
            return datetime.now(UTC).isoformat()
        if annotation is HttpUrl:
            return "https://example.com/hook"
    raise TypeError(f"no example value for {annotation!r}")


def _errors(model: type[BaseModel], body: dict[str, Any]) -> list[Any] | None:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        return exc.errors()
    return None


def body_for(model: type[BaseModel]) -> dict[str, Any]:
    """The smallest body `model` accepts; TypeError when none is found."""
    body = {
        name: value_for(field.annotation, field)
        for name, field in model.model_fields.items()
        if field.is_required()
    }
    for name, field in model.model_fields.items():
        errors = _errors(model, body)
        if errors is None:
            return body
        if name in body:
            continue
        body[name] = value_for(field.annotation, field)
        still = _errors(model, body)
        if still is not None and any(e["loc"][:1] == (name,) for e in still):
            del body[name]  # this field's example does not fit: leave it out
    errors = _errors(model, body)
    if errors is not None:
        raise TypeError(f"no valid body for {model.__name__}: {errors}")
    return body
