"""The emulator's HTTP server: routing, IAM and AOM handlers, admin endpoints, faults."""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import itertools
import json
import logging
import select
import socket
import socketserver
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from airflow_provider_aom import endpoints
from airflow_provider_aom.emulator.auth import Caller, auth_kind, authenticate
from airflow_provider_aom.emulator.errors import (
    AOM_INVALID_PARAM,
    APIG_API_NOT_FOUND,
    APIG_BACKEND_ERROR,
    APIG_THROTTLED,
    THROTTLED_MESSAGE,
    ApiError,
    aom_error,
    aom_failure,
    execution_missing,
    gateway_error,
    invalid_param,
    iso_utc,
    keystone_error,
    token_expired,
    workflow_missing,
)
from airflow_provider_aom.emulator.models import MAX_ID_LENGTH, EmulatorConfig, WorkflowSpec
from airflow_provider_aom.emulator.payloads import (
    CHUNK_SIZE,
    bytewise,
    chunked,
    gzip_bomb,
    huge_pieces,
    json_array,
    split,
    take,
)
from airflow_provider_aom.emulator.state import (
    ENDLESS,
    OPERATION_ACTIONS,
    RUNTIME_CONFIG_FIELDS,
    TRIGGER_ACTIONS,
    WORKFLOW_SORT_FIELDS,
    EmulatorState,
    Fault,
    RequestRecord,
    TokenRecord,
    WorkflowQuery,
    same_secret,
)
from airflow_provider_aom.endpoints import Endpoint

logger = logging.getLogger("airflow_provider_aom.emulator")

JsonDict = dict[str, Any]

ADMIN_PREFIX = "/_emulator"
PROJECT_ID_LENGTH = 32
WORKFLOW_TYPES = ("cron", "event", "manual")
WORKFLOW_STATUSES = (
    "success",
    "fail",
    "executing",
    "cancel",
    "waitExecute",
    "waitApproval",
    "approvalFailed",
    "pausing",
    "canceling",
)
ALREADY_FINISHED_MESSAGE = "execution already finished."
# The length limits of the §1.5 and §1.8 query parameters.
MAX_ACTION_LENGTH = 10
MALFORMED_BODY = b"<html>oops</html>"
ID_NAMESPACE = uuid.UUID("5f0b7c8e-0d47-4b8e-9a4e-6d1c2f3a4b5c")


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: A JSON array answer too big to hold (an execution list with seeded history): called for a fresh
    #: iterator over its elements, each one JSON-encoded, every time the answer is sent or measured;
    #: ``body`` is then unused and the answer goes out chunked.
    elements: Callable[[], Iterator[bytes]] | None = None
    #: With ``elements``: send only the first ``length`` bytes of the array, with that Content-Length
    #: (the ``truncated`` fault).
    length: int | None = None

    def pieces(self) -> Iterator[bytes]:
        """The body, in pieces of about CHUNK_SIZE when it is streamed."""
        if self.elements is None:
            yield self.body
            return
        pieces = json_array(self.elements())
        yield from (pieces if self.length is None else take(pieces, self.length))


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode("utf-8"), headers=headers or {})


def _stable_id(kind: str, name: str) -> str:
    """A 32-hex id derived from a name, so user/domain ids are stable across restarts."""
    return uuid.uuid5(ID_NAMESPACE, f"{kind}:{name}").hex


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class _Request:
    """One parsed request as the route handlers see it."""

    method: str
    raw_path: str
    raw_query: str
    params: dict[str, str]
    headers: Message
    body: bytes
    request_id: str
    base_url: str
    # auth_kind() of the headers: "aksk", "token" or "none".
    auth: str
    caller: Caller | None = None

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.raw_query, keep_blank_values=True)


_Handler = Callable[[EmulatorState, _Request], _Response]


@dataclass(frozen=True)
class _Route:
    method: str
    template: tuple[str, ...]
    handler: _Handler
    authenticated: bool
    aom: bool

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if method != self.method or len(segments) != len(self.template):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.template, segments, strict=True):
            if pattern.startswith("{"):
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


# -- IAM -----------------------------------------------------------------------


def _field(container: Any, *names: str) -> Any:
    """Walk nested dicts; a missing or non-dict level raises the keystone 400."""
    value = container
    for name in names:
        if not isinstance(value, dict) or name not in value:
            raise keystone_error(400, f"Invalid input for field '{'.'.join(names)}'.")
        value = value[name]
    return value


def _issue_token(state: EmulatorState, request: _Request) -> _Response:
    config = state.config
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        raise keystone_error(400, "The request body is not valid JSON.") from None
    methods = _field(payload, "auth", "identity", "methods")
    if not isinstance(methods, list) or "password" not in methods:
        raise keystone_error(400, "Invalid input for field 'auth.identity.methods'.")
    user = _field(payload, "auth", "identity", "password", "user")
    domain = _field(user, "domain")
    password = _field(user, "password")
    if not isinstance(domain, dict) or not isinstance(password, str):
        raise keystone_error(400, "Invalid input for field 'auth.identity.password.user'.")
    if "name" not in user and "id" not in user:
        raise keystone_error(400, "Invalid input for field 'auth.identity.password.user.name'.")
    if "name" not in domain and "id" not in domain:
        raise keystone_error(400, "Invalid input for field 'auth.identity.password.user.domain.name'.")
    project = _field(payload, "auth", "scope", "project")
    if not isinstance(project, dict) or ("name" not in project and "id" not in project):
        raise keystone_error(400, "Invalid input for field 'auth.scope.project'.")

    domain_id = _stable_id("domain", config.iam_domain)
    user_id = _user_id(state)
    # Every comparison runs so the answer time does not tell which part was wrong.
    checks = [
        same_secret(user["name"], config.iam_user) if "name" in user else same_secret(user["id"], user_id),
        same_secret(password, config.iam_password),
        same_secret(domain["name"], config.iam_domain) if "name" in domain else same_secret(domain["id"], domain_id),
    ]
    if not all(checks):
        raise keystone_error(401, "The username or password is wrong.")
    if ("name" in project and project["name"] != config.region) or (
        "id" in project and project["id"] != config.project_id
    ):
        raise keystone_error(400, "The project in the scope does not exist.")

    token, record = state.issue_token()
    return _json(201, {"token": _token_body(state, request, record, "password")}, {"X-Subject-Token": token})


def _token_body(state: EmulatorState, request: _Request, record: TokenRecord, method: str) -> JsonDict:
    """The ``token`` object IAM answers when issuing or verifying a token."""
    config = state.config
    domain_ref = {"id": _stable_id("domain", config.iam_domain), "name": config.iam_domain}
    body: JsonDict = {
        "expires_at": iso_utc(record.expires_at),
        "issued_at": iso_utc(record.issued_at),
        "methods": [method],
        "project": {"id": config.project_id, "name": config.region, "domain": domain_ref},
        "user": {
            "id": _user_id(state),
            "name": config.iam_user,
            "domain": domain_ref,
            "password_expires_at": "",
        },
        "roles": [
            {"id": _stable_id("role", "te_admin"), "name": "te_admin"},
            {"id": _stable_id("role", "op_service"), "name": "op_service"},
        ],
    }
    # IAM drops the catalog when ``nocatalog`` has any non-empty value.
    if not any(name == "nocatalog" and value for name, value in request.query()):
        body["catalog"] = [
            _catalog_entry("aom", "aom", request.base_url, config.region),
            _catalog_entry("identity", "iam", request.base_url + "/v3", config.region),
        ]
    return body


def _user_id(state: EmulatorState) -> str:
    return _stable_id("user", state.config.iam_user)


def _show_token(state: EmulatorState, request: _Request) -> _Response:
    """``GET /v3/auth/tokens`` (Verifying a Token): describe the ``X-Subject-Token``."""
    subject = (request.headers.get("X-Subject-Token") or "").strip()
    if not subject:
        raise keystone_error(400, "The request you have made requires the 'X-Subject-Token' header.")
    found = state.token_info(subject)
    if found is None:
        raise keystone_error(404, "The token could not be found.")
    method, record = found
    return _json(200, {"token": _token_body(state, request, record, method)}, {"X-Subject-Token": subject})


def _show_credential(state: EmulatorState, request: _Request) -> _Response:
    """``GET /v3.0/OS-CREDENTIAL/credentials/{access_key}``: the caller's permanent AK only."""
    config = state.config
    # A temporary AK is not a stored credential, so IAM does not know it here either.
    if not same_secret(request.params["access_key"], config.ak):
        raise keystone_error(404, "Could not find credential.")
    credential = {
        "user_id": _user_id(state),
        "access": config.ak,
        "status": "active",
        "create_time": iso_utc(state.started_at),
        "description": "",
    }
    return _json(200, {"credential": credential})


def _show_user(state: EmulatorState, request: _Request) -> _Response:
    """``GET /v3/users/{user_id}``: an IAM user may read itself and nobody else."""
    config = state.config
    user_id = _user_id(state)
    if request.params["user_id"] != user_id:
        raise keystone_error(403, "You are not authorized to perform the requested action: identity:get_user.")
    user = {
        "id": user_id,
        "name": config.iam_user,
        "domain_id": _stable_id("domain", config.iam_domain),
        "enabled": True,
        "links": {"self": f"{request.base_url}/v3/users/{user_id}"},
        "password_expires_at": None,
        "description": "",
    }
    return _json(200, {"user": user})


def _catalog_entry(service_type: str, name: str, url: str, region: str) -> JsonDict:
    return {
        "type": service_type,
        "id": _stable_id("service", name),
        "name": name,
        "endpoints": [
            {
                "id": _stable_id("endpoint", name),
                "interface": "public",
                "region": region,
                "region_id": region,
                "url": url,
            }
        ],
    }


def _list_projects(state: EmulatorState, request: _Request) -> _Response:
    config = state.config
    names = [value for name, value in request.query() if name == "name"]
    projects: list[JsonDict] = []
    if not names or config.region in names:
        domain_id = _stable_id("domain", config.iam_domain)
        projects.append(
            {
                "id": config.project_id,
                "name": config.region,
                "domain_id": domain_id,
                "enabled": True,
                "is_domain": False,
                "parent_id": domain_id,
                "description": "",
                "links": {"self": f"{request.base_url}/v3/projects/{config.project_id}"},
            }
        )
    suffix = f"?{request.raw_query}" if request.raw_query else ""
    links = {"self": f"{request.base_url}/v3/projects{suffix}", "previous": None, "next": None}
    return _json(200, {"projects": projects, "links": links})


# -- AOM -----------------------------------------------------------------------


def _known_workflow(state: EmulatorState, request: _Request) -> str:
    """The request's ``workflow_id``; the AOM 404 when no such workflow exists."""
    workflow_id = request.params["workflow_id"]
    if not state.has_workflow(workflow_id):
        raise workflow_missing()
    return workflow_id


def _execute(state: EmulatorState, request: _Request) -> _Response:
    # The API takes no body; anything sent is ignored as the reference advises.
    # Existence is checked inside create_execution, under the state lock.
    execution_id = state.create_execution(request.params["workflow_id"], state.config.iam_user)
    if execution_id is None:
        raise workflow_missing()
    return _json(200, {"execution_id": execution_id})


def _execution_status(state: EmulatorState, request: _Request) -> _Response:
    workflow_id = _known_workflow(state, request)
    detail = state.execution_detail(workflow_id, request.params["execution_id"])
    if detail is None:
        raise execution_missing()
    return _json(200, detail)


def _list_executions(state: EmulatorState, request: _Request) -> _Response:
    for name, value in request.query():
        # Every emulated workflow lives in enterprise project "0", so the filter
        # is validated but selects nothing away.
        if name == "x_enterprise_project_id" and not 1 <= len(value) <= MAX_ID_LENGTH:
            raise invalid_param()
    workflow_id = _known_workflow(state, request)
    executions = state.list_executions(workflow_id)
    history = state.history(workflow_id)
    if history is None:
        return _json(200, executions)
    # The seeded rows (newest first), then the real executions: the array is never held, so neither
    # is a 100,000-row history.
    encoded = [json.dumps(brief).encode("utf-8") for brief in executions]
    return _Response(200, b"", elements=lambda: itertools.chain(history.rows(), encoded))


def _terminate(state: EmulatorState, request: _Request) -> _Response:
    workflow_id = _known_workflow(state, request)
    outcome = state.terminate(workflow_id, request.params["execution_id"])
    if outcome == "missing":
        raise execution_missing()
    if outcome == "finished":
        # Emulator's choice: the documented 400 code of this API family, with a
        # message that says why.
        raise aom_error(400, AOM_INVALID_PARAM, ALREADY_FINISHED_MESSAGE)
    return _json(200, {"result": "success"})


def _query_value(request: _Request, name: str, allowed: tuple[str, ...] | None, max_length: int) -> str:
    """The one value of a required query parameter; "Invalid param" when missing, repeated or out of range."""
    values = [value for key, value in request.query() if key == name]
    if len(values) != 1 or not 1 <= len(values[0]) <= max_length:
        raise invalid_param()
    if allowed is not None and values[0] not in allowed:
        raise invalid_param()
    return values[0]


def _operate(state: EmulatorState, request: _Request) -> _Response:
    """``StartPausingWorkflowExecutions`` (§1.5): restart or skip a failed node, continue a pause node."""
    # Query checks (400) come before existence checks (404), as path checks do.
    action = _query_value(request, "action", OPERATION_ACTIONS, MAX_ACTION_LENGTH)
    node_id = _query_value(request, "node_id", None, MAX_ID_LENGTH)
    workflow_id = _known_workflow(state, request)
    outcome, message = state.operate(workflow_id, request.params["execution_id"], action, node_id)
    if outcome == "missing":
        raise execution_missing()
    if outcome == "refused":
        # Emulator's choice: the documented 400 code, with a message that says why.
        raise aom_error(400, AOM_INVALID_PARAM, message)
    return _json(200, {"result": "success"})


def _set_trigger(state: EmulatorState, request: _Request) -> _Response:
    """``UpdateWorkflowTriggerStatus`` (§1.8): enable or disable a scheduled workflow's trigger."""
    action = _query_value(request, "action", TRIGGER_ACTIONS, MAX_ACTION_LENGTH)
    workflow_id = request.params["workflow_id"]
    outcome = state.set_trigger(workflow_id, action)
    if outcome == "missing":
        raise workflow_missing()
    if outcome == "no_trigger":
        raise aom_error(400, AOM_INVALID_PARAM, f"workflow {workflow_id} has no trigger: it is not a cron workflow.")
    # The SDK models this body as a plain str and the doc shows {"success"},
    # which is not JSON; the JSON string "success" is what the SDK reads back
    # as body == "success".
    return _json(200, "success")


def _optional_str(data: JsonDict, name: str, max_length: int) -> str | None:
    value = data.get(name)
    # Empty strings are read as "no filter": lenient where AOM's rule (1-N chars)
    # would only turn a harmless client habit into a 400.
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise invalid_param()
    return value


def _optional_int(data: JsonDict, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid_param()
    return value


def _parse_workflow_query(body: bytes) -> WorkflowQuery:
    if not body.strip():
        return WorkflowQuery()
    try:
        data = json.loads(body)
    except ValueError:
        raise invalid_param() from None
    if not isinstance(data, dict):
        raise invalid_param()
    query = WorkflowQuery(
        search=_optional_str(data, "search", 64),
        type=_optional_str(data, "type", 16),
        status=_optional_str(data, "status", 32),
        enterprise_project_id=_optional_str(data, "enterprise_project_id", 64),
        create_by=_optional_str(data, "create_by", 64),
        sort_field=_optional_str(data, "sort_field", 64),
        search_time_start=_optional_int(data, "search_time_start", 0, 9999999999999),
        search_time_end=_optional_int(data, "search_time_end", 0, 9999999999999),
    )
    if query.type is not None and query.type not in WORKFLOW_TYPES:
        raise invalid_param()
    if query.status is not None and query.status not in WORKFLOW_STATUSES:
        raise invalid_param()
    if query.sort_field is not None and query.sort_field not in WORKFLOW_SORT_FIELDS:
        raise invalid_param()
    sort_type = _optional_str(data, "sort_type", 16)
    if sort_type is not None:
        if sort_type.upper() not in ("ASC", "DESC"):
            raise invalid_param()
        query.sort_type = sort_type.upper()
    tags = data.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or len(tags) > 10:
            raise invalid_param()
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise invalid_param()
        query.tags = dict(tags)
    page = _optional_int(data, "page", 1, 9999999)
    size = _optional_int(data, "size", 1, 100)
    query.page = 1 if page is None else page
    query.size = 10 if size is None else size
    return query


def _list_workflows(state: EmulatorState, request: _Request) -> _Response:
    elements, total = state.list_workflows(_parse_workflow_query(request.body))
    return _json(200, {"elements": elements, "total_elements": total})


def _route(endpoint: Endpoint, handler: _Handler, *, authenticated: bool = True) -> _Route:
    return _Route(endpoint.method, endpoint.segments, handler, authenticated, aom=endpoint.service == "aom")


# The client builds its requests from the same endpoint table (airflow_provider_aom/endpoints.py).
ROUTES: tuple[_Route, ...] = (
    _route(endpoints.IAM_ISSUE_TOKEN, _issue_token, authenticated=False),
    _route(endpoints.IAM_VERIFY_TOKEN, _show_token),
    _route(endpoints.IAM_LIST_PROJECTS, _list_projects),
    _route(endpoints.IAM_GET_USER, _show_user),
    _route(endpoints.IAM_GET_CREDENTIAL, _show_credential),
    _route(endpoints.EXECUTE_WORKFLOW, _execute),
    _route(endpoints.LIST_EXECUTIONS, _list_executions),
    _route(endpoints.GET_EXECUTION, _execution_status),
    _route(endpoints.TERMINATE_EXECUTION, _terminate),
    _route(endpoints.OPERATE_EXECUTION, _operate),
    _route(endpoints.LIST_WORKFLOWS, _list_workflows),
    _route(endpoints.SET_WORKFLOW_TRIGGER, _set_trigger),
)


def _check_aom_request(state: EmulatorState, request: _Request) -> None:
    """Parameter rules, then the AOM service's own project check."""
    params = request.params
    if len(params["project_id"]) != PROJECT_ID_LENGTH:
        raise invalid_param()
    for name in ("workflow_id", "execution_id"):
        if name in params and not 1 <= len(params[name]) <= MAX_ID_LENGTH:
            raise invalid_param()
    project_header = request.caller.project_header if request.caller else None
    if params["project_id"] != state.config.project_id or (
        project_header is not None and project_header != params["project_id"]
    ):
        raise aom_failure(401)


def dispatch(state: EmulatorState, request: _Request) -> _Response:
    """Route, authenticate and handle one request; errors become their response."""
    try:
        segments = [unquote(segment) for segment in request.raw_path.split("/")]
        for route in ROUTES:
            params = route.match(request.method, segments)
            if params is not None:
                break
        else:
            raise gateway_error(
                404,
                APIG_API_NOT_FOUND,
                "The API does not exist or has not been published in the environment",
                request.request_id,
            )
        request.params = params
        if route.authenticated:
            request.caller = authenticate(
                state,
                kind=request.auth,
                method=request.method,
                raw_path=request.raw_path,
                raw_query=request.raw_query,
                headers=request.headers,
                body=request.body,
                request_id=request.request_id,
            )
        if route.aom:
            _check_aom_request(state, request)
        return route.handler(state, request)
    except ApiError as error:
        return _json(error.status, error.body, error.headers)
    except Exception:
        logger.exception("emulator: unexpected error handling %s %s", request.method, request.raw_path)
        return _json(500, aom_failure(500).body)


def fault_response(fault: Fault, request_id: str) -> _Response:
    """The answer of a ``status`` fault: the body the layer owning that status would send."""
    status = fault.status
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = _seconds(fault.retry_after)
    if status == 429:
        error = gateway_error(status, fault.error_code or APIG_THROTTLED, THROTTLED_MESSAGE, request_id)
    elif status in (502, 503, 504):
        message = "Backend timeout." if status == 504 else "Backend unavailable."
        error = gateway_error(status, fault.error_code or APIG_BACKEND_ERROR, message, request_id)
    else:
        error = aom_failure(status, fault.error_code)
    return _json(status, error.body, headers)


def patched(response: _Response, patch: JsonDict) -> _Response:
    """A 2xx JSON answer with ``patch``'s keys set in its object, or in each object of its array.

    Any other answer is returned as is. NaN and infinities go out as the
    ``NaN``/``Infinity`` literals Python's json module reads and writes.
    """
    if not 200 <= response.status < 300 or response.content_type != "application/json":
        return response
    if response.elements is not None:
        elements = response.elements
        return _Response(
            response.status,
            b"",
            response.content_type,
            response.headers,
            elements=lambda: (_patched_element(element, patch) for element in elements()),
            length=response.length,
        )
    try:
        payload = json.loads(response.body)
    except ValueError:
        return response
    if isinstance(payload, dict):
        targets = [payload]
    elif isinstance(payload, list):
        targets = [element for element in payload if isinstance(element, dict)]
    else:
        targets = []
    if not targets:
        return response
    for target in targets:
        target.update(copy.deepcopy(patch))
    body = json.dumps(payload, allow_nan=True).encode("utf-8")
    return _Response(response.status, body, response.content_type, response.headers)


def _patched_element(element: bytes, patch: JsonDict) -> bytes:
    value = json.loads(element)
    if isinstance(value, dict):
        value.update(copy.deepcopy(patch))
    return json.dumps(value, allow_nan=True).encode("utf-8")


def truncated(response: _Response) -> _Response:
    """The ``truncated`` fault's 200: the first half of the answer's body (a streamed one is measured first)."""
    if response.elements is None:
        return _Response(200, response.body[: len(response.body) // 2])
    size = sum(len(piece) for piece in response.pieces())
    return _Response(200, b"", elements=response.elements, length=size // 2)


# -- admin ---------------------------------------------------------------------

_FAULT_ARGUMENTS = frozenset(inspect.signature(EmulatorState.add_fault).parameters) - {"self"}
_EXECUTION_ARGUMENTS = frozenset(inspect.signature(EmulatorState.create_execution).parameters) - {"self"}
_REQUIRED_EXECUTION_ARGUMENTS = frozenset(
    name
    for name, parameter in inspect.signature(EmulatorState.create_execution).parameters.items()
    if name != "self" and parameter.default is inspect.Parameter.empty
)
_WORKFLOW_FIELDS = frozenset(item.name for item in fields(WorkflowSpec))


def _admin_payload(body: bytes) -> JsonDict:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def admin(state: EmulatorState, method: str, path: str, body: bytes) -> _Response:
    """The unauthenticated ``/_emulator/*`` control endpoints."""
    ok = {"result": "ok"}
    try:
        if method == "GET" and path == "/_emulator/executions":
            return _json(200, state.executions(with_operations=True))
        if method == "POST" and path == "/_emulator/executions":
            data = _admin_payload(body)
            unknown = set(data) - _EXECUTION_ARGUMENTS
            if unknown or not set(data) >= _REQUIRED_EXECUTION_ARGUMENTS:
                required = ", ".join(sorted(_REQUIRED_EXECUTION_ARGUMENTS))
                raise ValueError(f"expected {required} and only {sorted(_EXECUTION_ARGUMENTS)}")
            execution_id = state.create_execution(**data)
            if execution_id is None:
                return _json(404, {"error": f"no workflow {data['workflow_id']!r}"})
            return _json(200, {"execution_id": execution_id})
        if method == "GET" and path == "/_emulator/requests":
            return _json(200, state.requests())
        if method == "GET" and path == "/_emulator/faults":
            return _json(200, state.faults())
        if method == "POST" and path == "/_emulator/faults":
            data = _admin_payload(body)
            unknown = set(data) - _FAULT_ARGUMENTS
            if unknown or "kind" not in data:
                raise ValueError(f"expected 'kind' and only {sorted(_FAULT_ARGUMENTS)}")
            kind = data.pop("kind")
            if not isinstance(kind, str):
                raise ValueError("kind must be a string")
            state.add_fault(kind, **data)
            return _json(200, ok)
        if method == "DELETE" and path == "/_emulator/faults":
            state.clear_faults()
            return _json(200, ok)
        if method == "GET" and path == "/_emulator/workflows":
            return _json(200, [asdict(spec) for spec in state.workflows()])
        if method == "POST" and path == "/_emulator/workflows":
            data = _admin_payload(body)
            unknown = set(data) - _WORKFLOW_FIELDS
            if unknown or not {"id", "outcome", "duration"} <= set(data):
                raise ValueError(f"expected id, outcome, duration and only {sorted(_WORKFLOW_FIELDS)}")
            data.setdefault("name", data["id"])
            state.add_workflow(WorkflowSpec(**data))
            return _json(200, ok)
        if method == "GET" and path == "/_emulator/config":
            return _json(200, state.runtime_config())
        if method == "POST" and path == "/_emulator/config":
            data = _admin_payload(body)
            unknown = set(data) - set(RUNTIME_CONFIG_FIELDS)
            if unknown or not data:
                raise ValueError(f"expected some of {list(RUNTIME_CONFIG_FIELDS)} and nothing else")
            return _json(200, state.configure(**data))
        if method == "POST" and path == "/_emulator/expire-tokens":
            state.expire_tokens()
            return _json(200, ok)
        if method == "POST" and path == "/_emulator/reset":
            state.reset()
            return _json(200, ok)
    except (TypeError, ValueError) as exc:
        return _json(400, {"error": str(exc)})
    return _json(404, {"error": f"no admin endpoint {method} {path}"})


# -- HTTP plumbing -------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that can close its keep-alive connections on stop."""

    daemon_threads = True
    # The stdlib backlog of 5 makes bursts of new connections wait on SYN retransmits.
    request_queue_size = 1024
    # Idle keep-alive connections would make server_close() wait forever;
    # stop() shuts those sockets down itself instead.
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can
        # stall for seconds without a resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.bound_address()

    def bound_address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    def base_url(self) -> str:
        host, port = self.bound_address()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up mid-answer are expected (fault
        # injection provokes exactly that); a traceback on stderr is noise.
        logger.debug("emulator: connection error from %s", client_address, exc_info=True)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def connection_count(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AomEmulator/1.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 300
    # Headers and body go out in two writes; with Nagle on, the client's
    # delayed ACK would add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the emulator's clock (``EmulatorConfig.clock_skew`` included)."""
        return super().date_time_string(self.server.state.now() if timestamp is None else timestamp)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The access log is written by _serve, once the outcome is known.
        return

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("emulator: %s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, response: _Response, request_id: str) -> None:
        self._send_head(response, request_id)
        if response.elements is None:
            self.wfile.write(response.body)
        elif not self._stream(self._body_wire(response)):
            self.close_connection = True

    def _chunked(self, response: _Response) -> bool:
        """Whether the body goes out chunked: streamed, of unknown length, to an HTTP/1.1 client."""
        return response.elements is not None and response.length is None and self.request_version != "HTTP/1.0"

    def _send_head(self, response: _Response, request_id: str) -> None:
        """Status line and headers: Content-Length, or chunked for a streamed body of unknown length.

        An HTTP/1.0 client cannot read chunks: its streamed body ends with the connection.
        """
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if response.elements is None:
            self.send_header("Content-Length", str(len(response.body)))
        elif response.length is not None:
            self.send_header("Content-Length", str(response.length))
        elif self._chunked(response):
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
        self.send_header("X-Request-Id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _body_wire(self, response: _Response) -> Iterator[bytes]:
        """The body as it goes on the wire after :meth:`_send_head`: chunked when streamed without a length."""
        if not self._chunked(response):
            return response.pieces()
        return itertools.chain(chunked(response.pieces()), [b"0\r\n\r\n"])

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method) as gateway JSON."""
        request_id = uuid.uuid4().hex
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        body = json.dumps({"error_code": APIG_BACKEND_ERROR, "error_msg": message or phrase, "request_id": request_id})
        payload = body.encode("utf-8")
        self.close_connection = True
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.wfile.write(payload)

    def _drop(self) -> None:
        """End the connection without a response (the client sees a reset/EOF)."""
        self.close_connection = True

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.base_url()

    def _serve(self) -> None:
        state = self.server.state
        request_id = uuid.uuid4().hex
        target = self.path.split("#", 1)[0]
        raw_path, _, raw_query = target.partition("?")
        if raw_path == ADMIN_PREFIX or raw_path.startswith(ADMIN_PREFIX + "/"):
            try:
                body = self._read_body()
            except (ValueError, OSError):
                self.close_connection = True
                self._send(_json(400, {"error": "unreadable request body"}), request_id)
                return
            response = admin(state, self.command, raw_path, body)
            self._send(response, request_id)
            logger.debug("emulator admin: %s %s %s", self.command, raw_path, response.status)
            return

        kind = auth_kind(self.headers)
        fault = state.take_fault(self.command, raw_path, has_token=kind == "token")
        fault_kind = fault.kind if fault else None
        # A trickle fault's delay is its pause between bytes, not a wait before answering.
        if fault is not None and fault_kind != "trickle" and fault.delay > 0 and self.server.stopping.wait(fault.delay):
            self._drop()
            return
        if fault_kind == "drop_before":
            self._log(raw_path, raw_query, 0, kind, fault_kind, request_id)
            self._drop()
            return
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            error = gateway_error(400, APIG_BACKEND_ERROR, "API request error.", request_id)
            self._log(raw_path, raw_query, 400, kind, fault_kind, request_id)
            self._send(_json(400, error.body), request_id)
            return
        # The backend's latency (EmulatorConfig.answer_delay): AOM answers only, in this connection's thread.
        delay = state.config.answer_delay
        if delay > 0 and raw_path.startswith("/v1/") and self.server.stopping.wait(delay):
            self._drop()
            return

        if fault is not None and fault.kind in ("huge", "gzip_bomb"):
            self._log(raw_path, raw_query, 200, kind, fault_kind, request_id)
            self._send_generated(fault, request_id)
            return
        if fault is not None and fault.kind in ("status", "storm"):
            response = fault_response(fault, request_id)
        elif fault is not None and fault.kind == "body":
            response = _Response(fault.status, (fault.body or "").encode("utf-8"))
        elif fault_kind == "expire_token":
            # The presented token expires now (an issued one stays expired, so the
            # client must fetch a new one); a static token only fails this request.
            expires_at = state.expire_token(self.headers.get("X-Auth-Token", "").strip())
            error = token_expired(expires_at, request_id)
            response = _json(error.status, error.body)
        else:
            request = _Request(
                method=self.command,
                raw_path=raw_path,
                raw_query=raw_query,
                params={},
                headers=self.headers,
                body=body,
                request_id=request_id,
                base_url=self._base_url(),
                auth=kind,
            )
            response = dispatch(state, request)
        if raw_path.startswith(("/v3/", "/v3.0/")) and response.status < 500:
            response.headers.setdefault("X-IAM-Trace-Id", request_id)

        if fault_kind == "drop_after":
            self._log(raw_path, raw_query, response.status, kind, fault_kind, request_id)
            self._drop()
            return
        if fault_kind == "malformed":
            response = _Response(200, MALFORMED_BODY, "text/html")
        elif fault_kind == "truncated":
            response = truncated(response)
        elif fault is not None and fault.kind == "patch" and fault.patch is not None:
            response = patched(response, fault.patch)
        # Logged before sending: a client that reads the log right after its
        # response must find its request there.
        self._log(raw_path, raw_query, response.status, kind, fault_kind, request_id)
        if fault is not None and fault.kind == "trickle":
            self._trickle(response, request_id, fault.delay)
        else:
            self._send(response, request_id)

    def _trickle(self, response: _Response, request_id: str, pause: float) -> None:
        """Send exactly what :meth:`_send` would, one byte per ``pause`` seconds."""
        real = self.wfile
        rendered = io.BytesIO()
        self.wfile = rendered
        try:
            self._send_head(response, request_id)
        finally:
            self.wfile = real
        wire = itertools.chain([rendered.getvalue()], self._body_wire(response))
        if not self._stream(bytewise(wire), pause):
            self.close_connection = True

    def _send_generated(self, fault: Fault, request_id: str) -> None:
        """The 200 answer of a ``huge`` or ``gzip_bomb`` fault, streamed in chunks."""
        headers = {"Content-Type": "application/json"}
        if fault.kind == "gzip_bomb":
            compressed = gzip_bomb(fault.size)
            headers.update({"Content-Encoding": "gzip", "Content-Length": str(len(compressed))})
            pieces: Iterable[bytes] = split(compressed, CHUNK_SIZE)
        elif fault.size == ENDLESS:
            headers["Transfer-Encoding"] = "chunked"
            pieces = chunked(huge_pieces(fault.size))
        else:
            headers["Content-Length"] = str(fault.size)
            pieces = huge_pieces(fault.size)
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-Request-Id", request_id)
        self.end_headers()
        # An endless body only ends with the connection.
        if not self._stream(pieces) or fault.size == ENDLESS:
            self.close_connection = True

    def _stream(self, pieces: Iterable[bytes], pause: float = 0.0) -> bool:
        """Write ``pieces`` (``pause`` s apart) until done, the client hangs up or the server stops.

        True when everything was written.
        """
        stopping = self.server.stopping
        for index, piece in enumerate(pieces):
            # stopping.wait() rather than sleep: AomEmulator.stop() must not wait for a trickle.
            if index and pause > 0 and stopping.wait(pause):
                return False
            if stopping.is_set() or self._client_gone():
                return False
            try:
                self.wfile.write(piece)
            except OSError:
                return False
        return True

    def _client_gone(self) -> bool:
        """Whether the client closed its side (a readable socket with nothing to read)."""
        connection = self.connection
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            return bool(readable) and not connection.recv(1, socket.MSG_PEEK)
        except ValueError:
            # select() cannot watch descriptors past FD_SETSIZE; the next write
            # to a closed connection fails anyway.
            return False
        except OSError:
            return True

    # BaseHTTPRequestHandler looks up do_<METHOD>; every supported method is served alike.
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def _log(self, path: str, query: str, status: int, kind: str, fault: str | None, request_id: str) -> None:
        state = self.server.state
        state.record_request(
            RequestRecord(
                time=state.now(),
                method=self.command,
                path=path,
                query=query,
                status=status,
                auth=kind,
                fault=fault,
                request_id=request_id,
            )
        )
        # Path only: query strings and headers never reach the log, so neither
        # do tokens or signatures.
        logger.info(
            '%s "%s %s" %s auth=%s%s',
            self.client_address[0],
            self.command,
            path,
            status if status else "dropped",
            kind,
            f" fault={fault}" if fault else "",
        )


class AomEmulator:
    """IAM + AOM automation emulator served from a background thread.

    ``with AomEmulator() as emu: ...`` or ``emu = AomEmulator().start()`` /
    ``emu.stop()``; ``emu.base_url`` is both the AOM and the IAM endpoint.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def start(self) -> AomEmulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = _Server((self.config.host, self.config.port), self.state)
        self._base_url = server.base_url()
        port = server.bound_address()[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"aom-emulator-{port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and the socket, join the thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server, self._thread = None, None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (known once started)."""
        if self._base_url is None:
            raise RuntimeError("the emulator has not been started")
        return self._base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def open_connections(self) -> int:
        """Client connections being served now (each has a handler thread); 0 when stopped."""
        server = self._server
        return 0 if server is None else server.connection_count()

    def __enter__(self) -> AomEmulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
