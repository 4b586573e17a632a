"""vast.ai's error bodies: `{"success": false, "error": code, "msg": text, ...}`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class VastError(Exception):
    def __init__(self, status: int, error: str, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.status = status
        self.error = error
        self.msg = msg
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"success": False, "error": self.error, "msg": self.msg, **self.extra}
        return JSONResponse(body, status_code=self.status)


def auth_error() -> VastError:
    return VastError(401, "auth_error", "Invalid user key")


def no_such_ask(offer_id: int) -> VastError:
    return VastError(
        404,
        "invalid_args",
        f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.",
        ask_id=offer_id,
    )


def no_such_instance(instance_id: int | str) -> VastError:
    return VastError(404, "no_such_instance", f"Instance {instance_id} not found.")


def invalid_args(msg: str, **extra: Any) -> VastError:
    return VastError(400, "invalid_args", msg, **extra)
