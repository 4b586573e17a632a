"""Google's v1 error envelope, and the `error` blocks failed operations carry."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# The canonical status names Google puts next to each HTTP code.
_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
# What an operation's httpErrorMessage says for each code.
HTTP_MESSAGES = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    503: "SERVICE UNAVAILABLE",
}


class GceError(Exception):
    """A synchronous API error, answered in Google's envelope."""

    def __init__(self, code: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.domain = code, reason, message, domain

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": _STATUS.get(self.code, "UNKNOWN"),
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.code)


def resource(project: str, *parts: str) -> str:
    return "/".join(("projects", project, *parts))


def not_found(path: str) -> GceError:
    return GceError(404, "notFound", f"The resource '{path}' was not found")


def invalid(message: str) -> GceError:
    return GceError(400, "invalid", message)


def already_exists(path: str) -> GceError:
    return GceError(409, "alreadyExists", f"The resource '{path}' already exists")


def condition_not_met(message: str) -> GceError:
    return GceError(412, "conditionNotMet", message)


def not_ready(path: str) -> GceError:
    return GceError(400, "resourceNotReady", f"The resource '{path}' is not ready", domain="global")


def quota_message(metric: str, limit: float, region: str) -> str:
    return f"Quota '{metric}' exceeded.  Limit: {limit:.1f} in region {region}."


def quota_exceeded(metric: str, limit: float, region: str) -> GceError:
    return GceError(403, "quotaExceeded", quota_message(metric, limit, region), "usageLimits")


def stockout_error(code: str, project: str, zone: str, machine_type: str) -> dict[str, Any]:
    """An operation's `error` for a zone out of capacity (arrives only inside operations)."""
    message = (
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources "
        "available to fulfill the request.  Try a different zone, or try again later."
    )
    entry: dict[str, Any] = {"code": code, "message": message}
    if code.endswith("_WITH_DETAILS"):
        entry["errorDetails"] = [
            {
                "errorInfo": {
                    "domain": "compute.googleapis.com",
                    "reason": "resource_availability",
                    "metadatas": {"vmType": machine_type, "zone": zone, "attachment": ""},
                }
            },
            {
                "localizedMessage": {
                    "locale": "en-US",
                    "message": f"A {machine_type} VM instance is currently unavailable in the "
                    f"{zone} zone. Consider trying your request in the {zone} zone at a later "
                    "time or in a different zone.",
                }
            },
        ]
    return {"errors": [entry]}


def quota_error(metric: str, limit: float, region: str) -> dict[str, Any]:
    """An operation's `error` for an allocation quota hit while the operation ran."""
    return {
        "errors": [
            {
                "code": "QUOTA_EXCEEDED",
                "message": quota_message(metric, limit, region),
                "errorDetails": [
                    {
                        "quotaInfo": {
                            "metricName": f"compute.googleapis.com/{metric.lower()}",
                            "limitName": f"{metric}-per-project-region",
                            "limit": limit,
                            "dimensions": {"region": region},
                        }
                    }
                ],
            }
        ]
    }


# Storms: the synchronous throttling and backend errors the admin API can arm.
STORMS: dict[str, tuple[int, str, str, str]] = {
    "429": (429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
    "403": (
        403,
        "rateLimitExceeded",
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute'.",
        "usageLimits",
    ),
    "503": (503, "backendError", "Backend Error", "global"),
}


def storm_error(kind: str) -> GceError:
    code, reason, message, domain = STORMS[kind]
    return GceError(code, reason, message, domain)
