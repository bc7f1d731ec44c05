"""AOM and IAM API calls as data: request building and response parsing, no transport.

Both hooks use these, so a path, a field name or an error rule exists exactly once.

* An AOM call is a :class:`Call`: how to build its request once the project id is known,
  and how to read its answer. The hooks offer each one as a method (``verb`` in
  :mod:`~airflow_provider_aom.hooks.aom`): sync on ``AomHook``, a coroutine on ``AomAsyncHook``.
* A call that needs several steps and a decision (a submit whose answer was lost, a search
  through pages) is a :data:`Plan`: a generator that yields calls and :class:`Pause`,
  :class:`Identify` and :class:`Settings` steps and is sent their results, like the protocol
  flows one level down. Both hooks run the same plan.
* IAM requests are plain :class:`ApiRequest` values, used by the protocol flows.

Answers are :class:`~airflow_provider_aom.wire.ApiResponse` values (a level down, where the
transport makes them).
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from airflow_provider_aom import endpoints
from airflow_provider_aom.auth.signer import canonical_query
from airflow_provider_aom.endpoints import Endpoint, Service
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomApiError,
    AomConfigurationError,
    AomInvalidResponseError,
    AomWorkflowNotFoundError,
    error_for_status,
)
from airflow_provider_aom.execution import parse_detail
from airflow_provider_aom.execution_list import ExecutionList, ExecutionListReader, Keep
from airflow_provider_aom.vocabulary import ERROR_BODY_BYTES, NodeAction, check_id, check_project_id, is_valid_id
from airflow_provider_aom.wire import ApiResponse, BodySink, request_id_of


@dataclass(frozen=True)
class ApiRequest:
    """One API call. ``path`` is percent-encoded; ``query`` is canonical (it is signed as sent)."""

    method: str
    path: str
    action: str
    query: str = ""
    #: Not in repr(): the IAM token request's body holds the password.
    body: bytes = field(default=b"", repr=False)
    #: False for calls that start something (the execute POST): never re-sent blindly, and sent only
    #: on a connection made for it (never on a kept-alive one, see :mod:`~airflow_provider_aom.transport`).
    idempotent: bool = True
    #: "aom" or "iam": which base URL the path belongs to.
    service: Service = "aom"
    #: Headers this call needs beyond the authentication ones (e.g. IAM's X-Subject-Token); may hold secrets.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: For answers too large to hold (the execution list): a new sink per answer (made from its lower-cased
    #: headers) takes the 2xx body as it arrives, capped by the streamed-body limit (``max_list_bytes``)
    #: instead of ``max_response_bytes``.
    body_sink: Callable[[Mapping[str, str]], BodySink] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def to(
        cls,
        endpoint: Endpoint,
        action: str,
        *,
        query: str = "",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        body_sink: Callable[[Mapping[str, str]], BodySink] | None = None,
        **path: str,
    ) -> ApiRequest:
        """A request to ``endpoint`` with its placeholders filled (each value one percent-encoded segment)."""
        if "project_id" in path:
            check_project_id(path["project_id"])
        return cls(
            endpoint.method,
            endpoint.format(**path),
            action,
            query=query,
            body=body,
            idempotent=endpoint.idempotent,
            service=endpoint.service,
            headers=headers or {},
            body_sink=body_sink,
        )


# --------------------------------------------------------------------------- calls and plans

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One AOM call as data: its request once the project id is known, and how its answer is read."""

    request: Callable[[str], ApiRequest]
    parse: Callable[[ApiResponse, ApiRequest], T]
    #: None: the connection's project id (or the one resolved from IAM).
    project_id: str | None = None
    #: Epoch seconds by which the call, retries included, must end; None: ``retry_total`` from now.
    deadline: float | None = None


@dataclass(frozen=True)
class Pause:
    """A plan step: wait ``seconds`` (the sync hook sleeps, the async hook awaits)."""

    seconds: float


@dataclass(frozen=True)
class Identify:
    """A plan step: the connection's IAM user (:meth:`~airflow_provider_aom.auth_flow.AomProtocol.identity`)."""


@dataclass(frozen=True)
class Settings:
    """A plan step: the connection's settings (:class:`~airflow_provider_aom.config.AomConnectionConfig`)."""


PlanStep = Call[Any] | Pause | Identify | Settings
#: Several calls and the decisions between them, run alike by both hooks.
Plan = Generator[PlanStep, Any, T]


def no_body(response: ApiResponse, request: ApiRequest) -> None:
    """The parser of calls whose 2xx body carries nothing the provider uses (the transport capped it)."""


# --------------------------------------------------------------------------- AOM calls


def execute_workflow(workflow_id: str, project_id: str | None = None) -> Call[str]:
    """Start an execution of ``workflow_id`` (not idempotent: never re-sent blindly); answers its ``execution_id``."""
    check_id("workflow_id", workflow_id)
    return Call(
        lambda project: ApiRequest.to(
            endpoints.EXECUTE_WORKFLOW,
            f"Execute workflow {workflow_id!r}",
            project_id=project,
            workflow_id=workflow_id,
        ),
        parse_execution_id,
        project_id,
    )


def get_execution(
    workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
) -> Call[dict[str, Any]]:
    """The execution detail (``status``, times, per-node ``execution_result_list`` …), checked field by field."""
    check_id("workflow_id", workflow_id)
    check_id("execution_id", execution_id)
    return Call(
        lambda project: ApiRequest.to(
            endpoints.GET_EXECUTION,
            f"Get execution {execution_id!r} of workflow {workflow_id!r}",
            project_id=project,
            workflow_id=workflow_id,
            execution_id=execution_id,
        ),
        parse_execution,
        project_id,
        deadline,
    )


def list_executions(
    workflow_id: str, project_id: str | None = None, *, deadline: float | None = None, keep: Keep | None = None
) -> Call[ExecutionList]:
    """The workflow's execution history: one :class:`~airflow_provider_aom.execution_list.ExecutionBrief` per execution.

    The answer (the whole history: AOM has no paging) is parsed as it arrives and never held; only
    the rows ``keep`` chooses are kept (all when None), without node results. Its size is capped by
    the connection's ``max_list_bytes``.
    """
    check_id("workflow_id", workflow_id)
    action = f"List executions of workflow {workflow_id!r}"
    return Call(
        lambda project: ApiRequest.to(
            endpoints.LIST_EXECUTIONS,
            action,
            project_id=project,
            workflow_id=workflow_id,
            body_sink=lambda headers: ExecutionListReader(action, keep, request_id=request_id_of(headers)),
        ),
        parse_execution_list,
        project_id,
        deadline,
    )


def terminate_execution(
    workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
) -> Call[None]:
    """Ask AOM to stop a running execution (it ends as ``cancel``)."""
    check_id("workflow_id", workflow_id)
    check_id("execution_id", execution_id)
    return Call(
        lambda project: ApiRequest.to(
            endpoints.TERMINATE_EXECUTION,
            f"Terminate execution {execution_id!r} of workflow {workflow_id!r}",
            project_id=project,
            workflow_id=workflow_id,
            execution_id=execution_id,
        ),
        no_body,
        project_id,
        deadline,
    )


def operate_execution(
    workflow_id: str, execution_id: str, action: str, node_id: str, project_id: str | None = None
) -> Call[Any]:
    """One node operation (not idempotent): ``restart`` or ``skip`` a failed node, ``continue`` past a pause node.

    Hooks offer the safe form, :func:`~airflow_provider_aom.node_ops.operate_execution`.
    """
    check_id("workflow_id", workflow_id)
    check_id("execution_id", execution_id)
    check_id("node_id", node_id)
    if action not in NodeAction._value2member_map_:
        raise AomConfigurationError(
            f"action must be one of {', '.join(a.value for a in NodeAction)}, got {escape(action, 20)!r}."
        )
    return Call(
        lambda project: ApiRequest.to(
            endpoints.OPERATE_EXECUTION,
            f"{action.capitalize()} node {node_id!r} of execution {execution_id!r} of workflow {workflow_id!r}",
            query=canonical_query([("action", action), ("node_id", node_id)]),
            project_id=project,
            workflow_id=workflow_id,
            execution_id=execution_id,
        ),
        parse_operation,
        project_id,
    )


def set_workflow_trigger(workflow_id: str, enable: bool, project_id: str | None = None) -> Call[None]:
    """Enable or disable the workflow's own trigger (its cron schedule in AOM)."""
    check_id("workflow_id", workflow_id)
    if not isinstance(enable, bool):
        raise AomConfigurationError(f"enable must be true or false, got {type(enable).__name__}.")
    action = "enable" if enable else "disable"
    return Call(
        lambda project: ApiRequest.to(
            endpoints.SET_WORKFLOW_TRIGGER,
            f"{action.capitalize()} the trigger of workflow {workflow_id!r}",
            query=canonical_query([("action", action)]),
            project_id=project,
            workflow_id=workflow_id,
        ),
        no_body,
        project_id,
    )


#: Workflows asked for per page when searching by name (the API's maximum).
WORKFLOW_PAGE_SIZE = 100
#: Pages read at most when searching by name: 10,000 workflows.
MAX_WORKFLOW_PAGES = 100


@dataclass(frozen=True)
class WorkflowPage:
    """One page of the workflow list, and how many workflows match in all."""

    elements: list[dict[str, Any]]
    total: int


def list_workflows_page(
    page: int, size: int = WORKFLOW_PAGE_SIZE, project_id: str | None = None, **filters: Any
) -> Call[WorkflowPage]:
    """One page of the workflow list with its ``total_elements``."""
    listing = list_workflows(project_id, page=page, size=size, **filters)
    return Call(listing.request, parse_workflow_page, project_id)


def workflow_id_of(workflow: Mapping[str, Any]) -> str | None:
    """A workflow object's id (``id``, or ``workflow_id``), when it is a valid id."""
    for key in ("id", "workflow_id"):
        if is_valid_id(workflow.get(key)):
            return str(workflow[key])
    return None


def find_workflow(name: str, project_id: str | None = None) -> Plan[dict[str, Any]]:
    """The one workflow whose name is exactly ``name``, reading the workflow list page by page.

    None, or several (AOM lets workflows share a name): a configuration error naming every candidate.
    """
    check_id("workflow_name", name)
    matches: list[dict[str, Any]] = []
    for page in range(1, MAX_WORKFLOW_PAGES + 1):
        found: WorkflowPage = yield list_workflows_page(page, project_id=project_id, search=name)
        matches += [w for w in found.elements if w.get("name") == name and workflow_id_of(w)]
        if not found.elements or page * WORKFLOW_PAGE_SIZE >= found.total:
            break
    if not matches:
        raise AomWorkflowNotFoundError(
            f"No workflow is named {escape(name, 64)!r} in this project: check the name (exact and case-sensitive) "
            "and the connection's region and project, or give workflow_id."
        )
    if len(matches) > 1:
        ids = ", ".join(escape(workflow_id_of(w), 64) for w in matches)
        raise AomWorkflowNotFoundError(
            f"{len(matches)} workflows are named {escape(name, 64)!r} (ids: {ids}); give workflow_id to choose one."
        )
    return matches[0]


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


def list_workflows(
    project_id: str | None = None, *, deadline: float | None = None, **filters: Any
) -> Call[list[dict[str, Any]]]:
    """Workflows of the project; ``filters`` are ``WorkflowQueryParam`` fields (search, type, page, size …)."""
    unknown = sorted(set(filters) - WORKFLOW_FILTERS)
    if unknown:
        raise AomConfigurationError(
            f"Unknown workflow-list filter(s) {', '.join(unknown)}; use {', '.join(sorted(WORKFLOW_FILTERS))}."
        )
    body = json.dumps(filters, separators=(",", ":")).encode()
    return Call(
        lambda project: ApiRequest.to(endpoints.LIST_WORKFLOWS, "List workflows", body=body, project_id=project),
        parse_workflow_list,
        project_id,
        deadline,
    )


# --------------------------------------------------------------------------- IAM requests


def list_projects(region: str) -> ApiRequest:
    return ApiRequest.to(
        endpoints.IAM_LIST_PROJECTS,
        f"Look up the project id of region {region!r}",
        query=canonical_query([("name", region)]),
    )


def verify_token(token: str) -> ApiRequest:
    """IAM ``GET /v3/auth/tokens``: a user may verify its own token, which names the user."""
    return ApiRequest.to(
        endpoints.IAM_VERIFY_TOKEN,
        "Look up the IAM user of the connection's token",
        query=canonical_query([("nocatalog", "true")]),
        headers={"X-Subject-Token": token},
    )


def get_credential(access_key: str) -> ApiRequest:
    """IAM ``GET /v3.0/OS-CREDENTIAL/credentials/{access_key}``: a user may read its own permanent AK."""
    return ApiRequest.to(
        endpoints.IAM_GET_CREDENTIAL, "Look up the IAM user of the connection's access key", access_key=access_key
    )


def get_user(user_id: str) -> ApiRequest:
    """IAM ``GET /v3/users/{user_id}``: a user may read its own details."""
    return ApiRequest.to(endpoints.IAM_GET_USER, "Look up the IAM user name", user_id=check_id("user_id", user_id))


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
    return ApiRequest.to(
        endpoints.IAM_ISSUE_TOKEN,
        f"Get an IAM token for user {username!r}",
        query=canonical_query([("nocatalog", "true")]),
        body=json.dumps(body, separators=(",", ":")).encode(),
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
    """Raise the typed error for a status other than 2xx; else return the response."""
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
    return parse_detail(
        json_body(response, request), action=request.action, status=response.status, request_id=response.request_id
    )


def parse_execution_list(response: ApiResponse, request: ApiRequest) -> ExecutionList:
    """The rows the request's reader kept as the answer streamed in, and AOM's clock from its ``Date``."""
    check_success(response, request)
    # Measured when the headers arrived: a long list is read for seconds after its Date.
    offset = server_clock_offset(response, response.received_at or time.time())
    listing = response.streamed
    if not isinstance(listing, ExecutionList):  # a body given whole (tests, another transport): read it now
        if request.body_sink is not None:
            reader = request.body_sink(response.headers)
        else:
            reader = ExecutionListReader(request.action, request_id=response.request_id)
        reader.feed(bytes(response.body))
        listing = reader.close()
        assert isinstance(listing, ExecutionList)
    return dataclasses.replace(listing, clock_offset=offset)


def server_clock_offset(response: ApiResponse, received_at: float) -> float | None:
    """AOM's clock minus ours (seconds), from the answer's ``Date`` header; None without a usable one."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp() - received_at


def parse_workflow_list(response: ApiResponse, request: ApiRequest) -> list[dict[str, Any]]:
    return parse_workflow_page(response, request).elements


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


def parse_workflow_page(response: ApiResponse, request: ApiRequest) -> WorkflowPage:
    """``{"elements": [...], "total_elements": N}``; a missing or absurd total counts the page."""
    payload = json_body(response, request)
    elements = payload.get("elements") if isinstance(payload, Mapping) else None
    if not isinstance(elements, list) or not all(isinstance(item, dict) for item in elements):
        raise _invalid(request, response, "expected an object with an 'elements' array")
    total = payload.get("total_elements")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        total = len(elements)
    return WorkflowPage(elements, total)


def parse_operation(response: ApiResponse, request: ApiRequest) -> Any:
    """The operation's ``result`` (an object per the reference; only kept, never relied on)."""
    payload = json_body(response, request)
    return payload.get("result") if isinstance(payload, Mapping) else None


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
