"""A client for the local cloud's admin API (`/sim/admin`): GPU load and fault injection."""

from __future__ import annotations

from typing import Any

import httpx

from dumont.client import ApiError, ApiUnreachable, error_message
from dumont.config import SimAdminConfig


class SimUnreachable(ApiUnreachable):
    def __init__(self, url: str, reason: str) -> None:
        Exception.__init__(
            self,
            f"cannot reach the sim at {url} ({reason}); is `dumont dev` running? "
            "(VAST_URL points elsewhere)",
        )
        self.url = url


class SimAdminClient:
    def __init__(self, config: SimAdminConfig, timeout: float = 30.0) -> None:
        self.config = config
        headers = {"X-Admin-Token": config.token} if config.token else {}
        self._http = httpx.Client(
            base_url=f"{config.url}/sim/admin", headers=headers, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimAdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise SimUnreachable(self.config.url, str(exc) or type(exc).__name__) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _sim_message(response))
        return response.json()

    def set_gpu_load(
        self, instance_id: int, utilization: float, memory_used_mb: float
    ) -> dict[str, Any]:
        """The instance as the sim sees it afterwards (with `gpu_file`, its agent's source)."""
        result: dict[str, Any] = self.request(
            "PUT",
            f"/instances/{instance_id}/gpu",
            {"utilization": utilization, "memory_used_mb": memory_used_mb},
        )
        return result

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/faults", body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        self.request("DELETE", "/faults")


def _sim_message(response: httpx.Response) -> str:
    """The sim answers as vast.ai does, `{"error": code, "msg": text}`: the text is the news."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("msg"), str):
        return str(body["msg"])
    return error_message(response)
