"""A small synchronous client for Dumont's HTTP API, with errors a person can read."""

from __future__ import annotations

from typing import Any

import httpx

from dumont.config import ClientConfig

JSON = Any


class ApiError(Exception):
    """The API answered with an error; `message` is the server's own words."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status_code})")
        self.status_code = status_code
        self.message = message


class ApiUnreachable(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Dumont API at {url} ({reason}); is it running? "
            "(`dumont dev` starts one; DUMONT_API_URL points elsewhere)"
        )
        self.url = url


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        # Validation errors carry a one-line summary next to the field-by-field list.
        for key in ("message", "detail", "error", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return str(body)


class DumontClient:
    def __init__(self, config: ClientConfig, timeout: float = 60.0) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.api_url,
            headers={"Authorization": f"Bearer {config.token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DumontClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: JSON = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.config.api_url, str(exc) or type(exc).__name__) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: JSON = None,
        timeout: float | None = None,
    ) -> JSON:
        response = self._send(method, path, params=params, json=json, timeout=timeout)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def list_all(
        self, path: str, params: dict[str, Any] | None = None, *, at_most: int | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a list route, page after page (`Link: rel="next"`), or the first
        `at_most` of them."""
        items: list[dict[str, Any]] = []
        url, query = path, params
        while at_most is None or len(items) < at_most:
            response = self._send("GET", url, params=query)
            items += response.json()
            following = response.links.get("next")
            if following is None:
                break
            url, query = following["url"], None  # the link carries the whole query
        return items if at_most is None else items[:at_most]

    # Machines
    def list_machines(self) -> list[dict[str, Any]]:
        return self.list_all("/api/v1/machines")

    def get_machine(self, machine_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/machines/{machine_id}")
        return result

    def create_machine(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/machines", json=body)
        return result

    def machine_action(
        self, machine_id: str, action: str, *, wait: bool, reason: str | None = None
    ) -> dict[str, Any]:
        # Actions that wait may take as long as a boot: no client-side timeout cuts them.
        params = {"wait": str(wait).lower()}
        if reason:
            params["reason"] = reason
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/machines/{machine_id}/{action}",
            params=params,
            timeout=None if wait else 60.0,
        )
        return result

    def delete_machine(self, machine_id: str, *, wait: bool) -> JSON:
        return self.request(
            "DELETE",
            f"/api/v1/machines/{machine_id}",
            params={"wait": str(wait).lower()},
            timeout=None if wait else 60.0,
        )

    def machine_events(self, machine_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return self.list_all(
            f"/api/v1/machines/{machine_id}/events", {"limit": limit}, at_most=limit
        )

    # Auto-hibernation (the seed's /api/instances routes)
    def instance_status(self, machine_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/instances/{machine_id}/status")
        return result

    def instance_config(self, machine_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/instances/{machine_id}/config")
        return result

    def update_instance_config(self, machine_id: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/instances/{machine_id}/config", json=body
        )
        return result

    def hibernate(self, machine_id: str, *, wait: bool, reason: str | None = None) -> JSON:
        """`{"success", "snapshot_id", "instance_destroyed"}`, or the 202 answer (no wait)."""
        return self.request(
            "POST",
            f"/api/instances/{machine_id}/hibernate",
            params={"wait": str(wait).lower()},
            json={"reason": reason} if reason else None,
            timeout=None if wait else 60.0,
        )

    def wake(self, machine_id: str, body: dict[str, Any], *, wait: bool) -> JSON:
        """`{"success", "instance_id", "vast_instance_id", "ssh_host", "ssh_port",
        "ssh_user", "time_taken"}`, or the 202 answer (no wait)."""
        return self.request(
            "POST",
            f"/api/instances/{machine_id}/wake",
            params={"wait": str(wait).lower()},
            json=body or None,
            timeout=None if wait else 60.0,
        )

    def machine_progress(self, machine_id: str) -> dict[str, Any]:
        """`{"state", "operation", "phase", "files", "bytes_scanned", "bytes_uploaded",
        "bytes_downloaded"}`."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/machines/{machine_id}/progress")
        return result

    def machine_snapshots(self, machine_id: str) -> list[dict[str, Any]]:
        """Committed snapshots, newest first."""
        return self.list_all(f"/api/v1/machines/{machine_id}/snapshots")

    def hibernation_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/hibernation/stats")
        return result

    def machine_metrics(
        self, machine_id: str, range_: str, series: str | None = None
    ) -> dict[str, Any]:
        """`{"machine_id", "range", "step_seconds", "series": {name: [[ts, avg, max], ...]}}`."""
        result: dict[str, Any] = self.request(
            "GET",
            f"/api/v1/machines/{machine_id}/metrics",
            params={"range": range_, "series": series},
        )
        return result

    # Alerts
    def list_alerts(
        self, state: str | None = None, machine_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return self.list_all(
            "/api/v1/alerts",
            {"state": state, "machine_id": machine_id, "limit": limit},
            at_most=limit,
        )

    def alert_rules(self) -> dict[str, Any]:
        """`{"rules": [{"kind", "threshold", "duration_seconds", "enabled"}], "webhook_url",
        "webhook_secret_created_at"}`."""
        result: dict[str, Any] = self.request("GET", "/api/v1/alerts/rules")
        return result

    def update_alert_rules(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change the rules and/or the webhook URL named in `body`; the rest is kept."""
        result: dict[str, Any] = self.request("PUT", "/api/v1/alerts/rules", json=body)
        return result

    def rotate_webhook_secret(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/alerts/webhook-secret")
        return result

    def alert_deliveries(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.list_all(
            "/api/v1/alerts/deliveries", {"status": status, "limit": limit}, at_most=limit
        )

    # Offers
    def offers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.list_all("/api/v1/offers", params, at_most=params.get("limit"))

    # SSH keys
    def list_ssh_keys(self) -> list[dict[str, Any]]:
        return self.list_all("/api/v1/ssh-keys")

    def add_ssh_key(self, name: str, public_key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/ssh-keys", json={"name": name, "public_key": public_key}
        )
        return result

    def delete_ssh_key(self, key_id: int) -> None:
        self.request("DELETE", f"/api/v1/ssh-keys/{key_id}")
