"""`POST /api/agent/status`: the agent's heartbeat (agent/PROTOCOL.md).

The hot path of the API: no DB session, no transaction. The token resolves from a cache, the
body is validated, and the samples are queued for the background writer (api/ingest/writer).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.ingest.convert import to_heartbeat, to_sample
from api.ingest.payload import AgentStatusReport, agent_status_body, parse_agent_status
from api.ingest.service import Ingest
from api.ingest.writer import WriterOverloaded
from api.schemas.common import ErrorOut, ValidationErrorOut

MAX_BODY_BYTES = 1 << 20

router = APIRouter(prefix="/api/agent", tags=["agent"])


class _BodyTooLarge(Exception):
    pass


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing agent token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing or invalid agent token")
    return token.strip()


def _declared_length(request: Request) -> int | None:
    header = request.headers.get("content-length")
    if header is None:
        return None
    try:
        return int(header)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid Content-Length") from None


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"body over {MAX_BODY_BYTES} bytes: send the backlog in smaller batches",
    )


def _invalid(exc: ValidationError) -> RequestValidationError:
    # The first loc element is the body's kind ("report"/"batch"): say "body" instead.
    errors = [{**err, "loc": ("body", *err["loc"][1:])} for err in exc.errors()]
    return RequestValidationError(errors)


def _answer(accepted: int, interval_seconds: int) -> Response:
    body: dict[str, Any] = {
        "success": True,
        "commands": [],
        "hibernate_in_seconds": None,
        "next_heartbeat_in": interval_seconds,
        "accepted": accepted,
    }
    return Response(json.dumps(body), media_type="application/json")


@router.post(
    "/status",
    summary="Post the machine's status (agent token only)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": agent_status_body.json_schema()}},
        }
    },
    responses={
        200: {"description": "Accepted: queued for the database"},
        401: {"model": ErrorOut, "description": "Missing, unknown or revoked agent token"},
        403: {"model": ErrorOut, "description": "The body names another machine"},
        413: {"model": ErrorOut, "description": "Body over 1 MiB"},
        422: {"model": ValidationErrorOut, "description": "A field is invalid; nothing stored"},
        503: {"model": ErrorOut, "description": "Overloaded; retry later"},
    },
)
async def post_status(request: Request) -> Response:
    ingest: Ingest = request.app.state.ingest
    declared = _declared_length(request)
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _too_large()
    machine_id = await ingest.tokens.machine_for(_bearer_token(request))
    if machine_id is None:
        raise _unauthorized("missing or invalid agent token")
    try:
        body = await _read_body(request)
    except _BodyTooLarge:
        raise _too_large() from None
    now = ingest.now()
    try:
        reports = parse_agent_status(body, now)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if any(report.instance_id != machine_id for report in reports):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token posts for another machine")
    newest: AgentStatusReport = max(reports, key=lambda report: report.timestamp)
    try:
        committed = ingest.writer.submit(
            [to_sample(report) for report in reports], to_heartbeat(newest, now)
        )
    except WriterOverloaded:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "too many heartbeats queued; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    if committed is not None:
        try:
            await committed
        except Exception:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "the database could not store the report"
            ) from None
    return _answer(len(reports), newest.interval_seconds)
