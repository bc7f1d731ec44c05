"""Error bodies of the three layers a real call crosses: API gateway, AOM, IAM (keystone)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

AOM_INVALID_PARAM = "AOM.31001302"
AOM_WORKFLOW_NOT_EXIST = "AOM.31001306"
# Not documented: AOM's real code for an unknown execution could not be read
# (the doc pages are cut off), so the emulator picks the next free number.
AOM_EXECUTION_NOT_EXIST = "AOM.31001307"
AOM_INTERNAL_ERROR = "AOM.31001405"
AOM_AUTH_FAILED = "AOM.31009004"
APIG_API_NOT_FOUND = "APIG.0101"
APIG_BACKEND_ERROR = "APIG.0201"
APIG_AUTH_FAILED = "APIG.0301"
APIG_THROTTLED = "APIG.0308"

IAM_PREFIX = "Incorrect IAM authentication information: "
THROTTLED_MESSAGE = "The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 minute"
_KEYSTONE_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


class ApiError(Exception):
    """An error response: raised anywhere in request handling, rendered by the server."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def aom_error(status: int, code: str, message: str) -> ApiError:
    """AOM's own error body: ``error_code``, ``error_msg``, ``http_code``."""
    return ApiError(status, {"error_code": code, "error_msg": message, "http_code": status})


def gateway_error(status: int, code: str, message: str, request_id: str) -> ApiError:
    """API gateway (APIG) error body: ``error_code``, ``error_msg``, ``request_id``."""
    return ApiError(status, {"error_code": code, "error_msg": message, "request_id": request_id})


def iam_auth_error(detail: str, request_id: str) -> ApiError:
    """The gateway's 401 for a rejected token or signature."""
    return gateway_error(401, APIG_AUTH_FAILED, IAM_PREFIX + detail, request_id)


def keystone_error(status: int, message: str) -> ApiError:
    """IAM (keystone) error body: ``{"error": {"code", "message", "title"}}``."""
    title = _KEYSTONE_TITLES.get(status, "Error")
    return ApiError(status, {"error": {"code": status, "message": message, "title": title}})


# AOM's (code, message) per class of error; every AOM error body but the
# execution-specific ones comes from here, injected ``status`` faults included.
_AOM_FAILURES = {
    400: (AOM_INVALID_PARAM, "Invalid param"),
    401: (AOM_AUTH_FAILED, "auth failed."),
    404: (AOM_WORKFLOW_NOT_EXIST, "workflow not exist."),
    500: (AOM_INTERNAL_ERROR, "execution internal server error."),
}


def aom_failure(status: int, code: str | None = None) -> ApiError:
    """AOM's body for ``status``: 5xx, 401 and 404 have their own entry, anything else is 400's.

    ``code`` (when non-empty) replaces the entry's error code.
    """
    key = 500 if status >= 500 else status if status in (401, 404) else 400
    default_code, message = _AOM_FAILURES[key]
    return aom_error(status, code or default_code, message)


def invalid_param() -> ApiError:
    return aom_failure(400)


def workflow_missing() -> ApiError:
    return aom_failure(404)


def execution_missing() -> ApiError:
    return aom_error(404, AOM_EXECUTION_NOT_EXIST, "execution not exist.")


def token_expired(expires_at: float, request_id: str) -> ApiError:
    """The gateway's 401 for an IAM token past its ``expires_at``."""
    return iam_auth_error(f"token expires, expires_at: {iso_utc(expires_at)}", request_id)


def iso_utc(moment: float) -> str:
    """``2019-02-13T06:52:13.855000Z``: the IAM timestamp format."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
