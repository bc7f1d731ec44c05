"""AOM and IAM API calls as data: request building and response parsing, no transport.

Both the sync hook (``requests``) and the async trigger use these functions, so a
path, a field name or an error rule exists exactly once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aom.auth.signer import canonical_query, encode_segment
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomApiError,
    AomConfigurationError,
    AomInvalidResponseError,
    error_for_status,
)

#: How much of an error body is kept for its message (AOM's ``error_msg`` is at most 1,024 characters).
ERROR_BODY_BYTES = 64 * 1024

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PROJECT_ID_RE = re.compile(r"[A-Za-z0-9]{32}")


@dataclass(frozen=True)
class ApiRequest:
    """One API call. ``path`` is percent-encoded; ``query`` is canonical (it is signed as sent)."""

    method: str
    path: str
    action: str
    query: str = ""
    #: Not in repr(): the IAM token request's body holds the password.
    body: bytes = field(default=b"", repr=False)
    #: False for calls that start something (the execute POST): never re-sent blindly.
    idempotent: bool = True
    #: "aom" or "iam": which base URL the path belongs to.
    service: str = "aom"
    #: Headers this call needs beyond the authentication ones (e.g. IAM's X-Subject-Token); may hold secrets.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP answer; header names are lower-cased."""

    status: int
    #: A bytearray when read by the transport (no copy of a large body).
    body: bytes | bytearray
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, status: int, body: bytes | bytearray, headers: Mapping[str, str]) -> ApiResponse:
        return cls(status=status, body=body, headers={k.lower(): v for k, v in headers.items()})

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id") or self.headers.get("x-openstack-request-id")


# --------------------------------------------------------------------------- validation


def check_id(name: str, value: Any, max_length: int = 64) -> str:
    """Check an id that becomes one path segment; values from templates are untrusted."""
    if not isinstance(value, str):
        raise AomConfigurationError(f"{name} must be a string, got {type(value).__name__}.")
    if not 1 <= len(value) <= max_length:
        raise AomConfigurationError(f"{name} must be 1 to {max_length} characters long, got {len(value)}.")
    if _CONTROL_RE.search(value):
        raise AomConfigurationError(f"{name} must not contain control characters.")
    if value.strip() != value:
        raise AomConfigurationError(f"{name} must not start or end with white space.")
    if value in (".", ".."):
        raise AomConfigurationError(f"{name} must not be {value!r}.")
    return value


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` passes :func:`check_id`: the rule for ids sent by the server too (submit, adoption)."""
    try:
        check_id("id", value)
    except AomConfigurationError:
        return False
    return True


def check_project_id(value: Any) -> str:
    if not isinstance(value, str) or not _PROJECT_ID_RE.fullmatch(value):
        raise AomConfigurationError(
            "project_id must be the 32-character project id from IAM (letters and digits only)."
        )
    return value


def _workflow_path(project_id: str, workflow_id: str) -> str:
    project = encode_segment(check_project_id(project_id))
    return f"/v1/{project}/cms/workflow/{encode_segment(check_id('workflow_id', workflow_id))}"


# --------------------------------------------------------------------------- AOM requests


def execute_workflow(project_id: str, workflow_id: str) -> ApiRequest:
    return ApiRequest(
        "POST",
        _workflow_path(project_id, workflow_id) + "/executions",
        action=f"Execute workflow {workflow_id!r}",
        idempotent=False,
    )


def get_execution(project_id: str, workflow_id: str, execution_id: str) -> ApiRequest:
    return ApiRequest(
        "GET",
        f"{_workflow_path(project_id, workflow_id)}/executions/"
        f"{encode_segment(check_id('execution_id', execution_id))}/status",
        action=f"Get execution {execution_id!r} of workflow {workflow_id!r}",
    )


def list_executions(project_id: str, workflow_id: str) -> ApiRequest:
    return ApiRequest(
        "GET",
        _workflow_path(project_id, workflow_id) + "/executions",
        action=f"List executions of workflow {workflow_id!r}",
    )


def terminate_execution(project_id: str, workflow_id: str, execution_id: str) -> ApiRequest:
    return ApiRequest(
        "POST",
        f"{_workflow_path(project_id, workflow_id)}/executions/"
        f"{encode_segment(check_id('execution_id', execution_id))}/terminate",
        action=f"Terminate execution {execution_id!r} of workflow {workflow_id!r}",
    )


#: Fields of the documented ``WorkflowQueryParam`` body of the workflow list.
WORKFLOW_FILTERS = frozenset(
    {
        "search",
        "type",
        "tags",
        "page",
        "size",
        "enterprise_project_id",
        "create_by",
        "sort_field",
        "sort_type",
        "search_time_start",
        "search_time_end",
        "status",
    }
)


def list_workflows(project_id: str, filters: Mapping[str, Any]) -> ApiRequest:
    unknown = sorted(set(filters) - WORKFLOW_FILTERS)
    if unknown:
        raise AomConfigurationError(
            f"Unknown workflow-list filter(s) {', '.join(unknown)}; use {', '.join(sorted(WORKFLOW_FILTERS))}."
        )
    return ApiRequest(
        "POST",
        f"/v1/{encode_segment(check_project_id(project_id))}/cms/workflow-list",
        action="List workflows",
        body=json.dumps(dict(filters), separators=(",", ":")).encode(),
    )


# --------------------------------------------------------------------------- IAM requests


def list_projects(region: str) -> ApiRequest:
    return ApiRequest(
        "GET",
        "/v3/projects",
        action=f"Look up the project id of region {region!r}",
        query=canonical_query([("name", region)]),
        service="iam",
    )


def verify_token(token: str) -> ApiRequest:
    """IAM ``GET /v3/auth/tokens``: a user may verify its own token, which names the user."""
    return ApiRequest(
        "GET",
        "/v3/auth/tokens",
        action="Look up the IAM user of the connection's token",
        query=canonical_query([("nocatalog", "true")]),
        service="iam",
        headers={"X-Subject-Token": token},
    )


def get_credential(access_key: str) -> ApiRequest:
    """IAM ``GET /v3.0/OS-CREDENTIAL/credentials/{access_key}``: a user may read its own permanent AK."""
    return ApiRequest(
        "GET",
        f"/v3.0/OS-CREDENTIAL/credentials/{encode_segment(access_key)}",
        action="Look up the IAM user of the connection's access key",
        service="iam",
    )


def get_user(user_id: str) -> ApiRequest:
    """IAM ``GET /v3/users/{user_id}``: a user may read its own details."""
    return ApiRequest(
        "GET",
        f"/v3/users/{encode_segment(check_id('user_id', user_id))}",
        action="Look up the IAM user name",
        service="iam",
    )


def password_token(
    *, username: str, password: str, domain_name: str, project_id: str | None, region: str | None
) -> ApiRequest:
    """IAM ``POST /v3/auth/tokens`` for a project-scoped token (by id when known, else by region name)."""
    scope = {"id": project_id} if project_id else {"name": region}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": username, "password": password, "domain": {"name": domain_name}}},
            },
            "scope": {"project": scope},
        }
    }
    return ApiRequest(
        "POST",
        "/v3/auth/tokens",
        action=f"Get an IAM token for user {username!r}",
        query=canonical_query([("nocatalog", "true")]),
        body=json.dumps(body, separators=(",", ":")).encode(),
        service="iam",
    )


# --------------------------------------------------------------------------- parsing


def _find_error_fields(payload: Any) -> tuple[str, str]:
    """``error_code``/``error_msg`` (AOM, gateway), ``errorCode``/``errorMsg``, ``code``/``message``, nested."""
    if isinstance(payload, Mapping):
        for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
            if code_key in payload or msg_key in payload:
                return str(payload.get(code_key, "")), str(payload.get(msg_key, ""))
        for value in payload.values():
            if isinstance(value, Mapping):
                code, msg = _find_error_fields(value)
                if code or msg:
                    return code, msg
    return "", ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _finite(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def loads(body: bytes | bytearray) -> Any:
    """JSON as Airflow can store it: NaN, Infinity and numbers too large for a float become ``null``."""
    return json.loads(body, parse_constant=lambda _: None, parse_float=_finite)


def error_from_response(response: ApiResponse, request: ApiRequest) -> AomApiError:
    """The typed error for a non-2xx answer; the server's text is kept, truncated (and escaped by the error)."""
    code, msg, request_id = "", "", response.request_id
    try:
        payload = loads(response.body[:ERROR_BODY_BYTES])
        code, msg = _find_error_fields(payload)
        if isinstance(payload, Mapping) and payload.get("request_id"):
            request_id = request_id or str(payload["request_id"])
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        code, msg = "", bytes(response.body[:300]).decode("utf-8", "replace").strip()
    return error_for_status(response.status)(
        status=response.status,
        error_code=code[:64],
        error_msg=msg[:1024],
        request_id=request_id,
        action=request.action,
        retry_after=_retry_after(response.headers),
    )


def check_success(response: ApiResponse, request: ApiRequest) -> ApiResponse:
    """Raise the typed error for a status other than 2xx; else return the response.

    Alone, it is the whole check for calls whose 2xx body is not specified (terminate).
    """
    if not 200 <= response.status < 300:
        raise error_from_response(response, request)
    return response


def json_body(response: ApiResponse, request: ApiRequest) -> Any:
    """Raise the typed error for an error status; else the parsed JSON body (the transport capped its size)."""
    check_success(response, request)
    try:
        return loads(response.body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise AomInvalidResponseError(
            f"{request.action}: the answer is not valid JSON (truncated or not from the AOM API?)",
            status=response.status,
            request_id=response.request_id,
        ) from None


def _invalid(request: ApiRequest, response: ApiResponse, what: str) -> AomInvalidResponseError:
    return AomInvalidResponseError(
        f"{request.action}: unexpected answer, {what}", status=response.status, request_id=response.request_id
    )


def parse_execution_id(response: ApiResponse, request: ApiRequest) -> str:
    payload = json_body(response, request)
    execution_id = payload.get("execution_id") if isinstance(payload, Mapping) else None
    if not is_valid_id(execution_id):
        raise _invalid(request, response, "no valid execution_id in the body")
    assert isinstance(execution_id, str)
    return execution_id


def parse_execution(response: ApiResponse, request: ApiRequest) -> dict[str, Any]:
    """The execution detail, validated field by field (:func:`~airflow_provider_aom.execution.parse_detail`)."""
    from airflow_provider_aom.execution import parse_detail

    return parse_detail(
        json_body(response, request), action=request.action, status=response.status, request_id=response.request_id
    )


def parse_execution_list(response: ApiResponse, request: ApiRequest) -> list[dict[str, Any]]:
    payload = json_body(response, request)
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        raise _invalid(request, response, "expected a JSON array of executions")
    return payload


def parse_workflow_list(response: ApiResponse, request: ApiRequest) -> list[dict[str, Any]]:
    payload = json_body(response, request)
    elements = payload.get("elements") if isinstance(payload, Mapping) else None
    if not isinstance(elements, list) or not all(isinstance(item, dict) for item in elements):
        raise _invalid(request, response, "expected an object with an 'elements' array")
    return elements


def parse_token_user(response: ApiResponse, request: ApiRequest) -> tuple[str | None, str | None]:
    """``(user name, user id)`` from an IAM token body (``token.user``)."""
    payload = json_body(response, request)
    token = payload.get("token") if isinstance(payload, Mapping) else None
    user = token.get("user") if isinstance(token, Mapping) else None
    return name_and_id(user)


def parse_credential_user_id(response: ApiResponse, request: ApiRequest) -> str:
    payload = json_body(response, request)
    credential = payload.get("credential") if isinstance(payload, Mapping) else None
    user_id = credential.get("user_id") if isinstance(credential, Mapping) else None
    if not is_valid_id(user_id):
        raise _invalid(request, response, "no valid credential.user_id in the body")
    assert isinstance(user_id, str)
    return user_id


def parse_user(response: ApiResponse, request: ApiRequest) -> tuple[str | None, str | None]:
    """``(user name, user id)`` from IAM's ``{"user": {...}}``."""
    payload = json_body(response, request)
    return name_and_id(payload.get("user") if isinstance(payload, Mapping) else None)


def name_and_id(user: Any) -> tuple[str | None, str | None]:
    """``(name, id)`` of an IAM user object, each None unless a valid id-like string."""
    if not isinstance(user, Mapping):
        return None, None
    name, user_id = user.get("name"), user.get("id")
    return (name if is_valid_id(name) else None), (user_id if is_valid_id(user_id) else None)


def parse_project_id(response: ApiResponse, request: ApiRequest, region: str) -> str:
    payload = json_body(response, request)
    projects = payload.get("projects") if isinstance(payload, Mapping) else None
    if not isinstance(projects, list):
        raise _invalid(request, response, "expected an object with a 'projects' array")
    ids = [p.get("id") for p in projects if isinstance(p, Mapping) and p.get("name") == region]
    if len(ids) != 1 or not isinstance(ids[0], str):
        raise AomConfigurationError(
            f"Found {len(ids)} IAM projects named {escape(region, 64)!r}, expected one: set extra.project_id in the "
            "connection."
        )
    return check_project_id(ids[0])
