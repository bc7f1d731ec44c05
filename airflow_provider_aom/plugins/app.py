"""The AOM execution panel's FastAPI app (mounted at ``/aom`` by the plugin; Airflow ≥ 3.1 api-server only).

Routes (each requires Airflow's auth: a bearer token or the UI's session cookie, then the auth manager's
say on the task instances of the path's DAG: GET to read, PUT to act):

* ``GET /aom/ti/{dag_id}/{run_id}/{task_id}?map_index=-1``: the panel page (the task-instance view's iframe).
* ``GET /aom/api/executions/{dag_id}/{run_id}/{task_id}?map_index=-1``: the execution as JSON (404 when the
  task instance has none).
* ``POST /aom/api/executions/{dag_id}/{run_id}/{task_id}/actions?map_index=-1`` with JSON
  ``{"action": "restart"|"skip"|"continue"|"terminate", "node_id": "..."}``.

What is acted on comes from the server only: the execution id from the task instance's XCom, the workflow,
project and connection from its rendered (else serialized) task, ownership from its task state store. A body
naming another execution is ignored. One POST sends at most one operation to AOM (``node_ops``' never-twice
plan: after an unclear answer the execution is read, nothing is re-sent), and each operation sent is written
to Airflow's audit log. No route changes state on GET.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (names local to create_app).
import html
import json
import logging
import re
import threading
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_aom import DEFAULT_CONN_ID
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.plugins.panel import ACTIONS, TaskExecution, actions, find_action, view
from airflow_provider_aom.vocabulary import is_valid_id

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

#: XCom key the AOM operators push the execution id under, right after the submit.
EXECUTION_ID_KEY = "execution_id"
#: Task types whose execution the panel follows (module airflow_provider_aom.*).
AOM_TASK_MODULE = "airflow_provider_aom."
#: The one operator that starts executions, so the only one that may own (and terminate) one.
STARTING_OPERATOR = "AomExecuteWorkflowOperator"
#: Audit-log event prefix (``aom_panel.restart``, ...).
AUDIT_EVENT = "aom_panel"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class PanelError(Exception):
    """An answer other than 200: its HTTP status, a short reason code and a message (escaped)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _execution_lock(execution_id: str) -> threading.Lock:
    """One operation at a time per execution in this process: a second press reads the state the first left."""
    with _locks_guard:
        if len(_locks) > 10_000:
            for key in [k for k, lock in _locks.items() if not lock.locked()]:
                del _locks[key]
        return _locks.setdefault(execution_id, threading.Lock())


# --------------------------------------------------------------------------- the task instance, from the server


def _store_values(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    """The task state store's keys of the task instance (Airflow ≥ 3.3; {} below)."""
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
        from sqlalchemy import select
    except ImportError:
        return {}
    rows = session.execute(
        select(TaskStateStoreModel.key, TaskStateStoreModel.value).where(
            TaskStateStoreModel.dag_id == dag_id,
            TaskStateStoreModel.run_id == run_id,
            TaskStateStoreModel.task_id == task_id,
            TaskStateStoreModel.map_index == map_index,
        )
    )
    values: dict[str, Any] = {}
    for key, value in rows:
        try:
            values[key] = json.loads(value)
        except (TypeError, ValueError):
            continue
    return values


def _xcom(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id, key=key, map_indexes=map_index)
    row = session.scalars(query).first()
    return XComModel.deserialize_value(row) if row is not None else None


def _rendered(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from sqlalchemy import select

    fields = session.scalar(
        select(RTIF.rendered_fields).where(
            RTIF.dag_id == dag_id, RTIF.run_id == run_id, RTIF.task_id == task_id, RTIF.map_index == map_index
        )
    )
    return fields if isinstance(fields, dict) else {}


def _task_instance(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    return session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )


def _serialized_task(session: Any, ti: Any) -> Any:
    from airflow.models.dagbag import DBDagBag

    bag = DBDagBag(load_op_links=False)
    dag = bag.get_dag_for_run(ti.dag_run, session=session) if ti.dag_run is not None else None
    if dag is None:
        dag = bag.get_latest_version_of_dag(ti.dag_id, session=session)
    if dag is None or not dag.has_task(ti.task_id):
        return None
    return dag.get_task(ti.task_id)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def load_task_execution(dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskExecution:
    """The execution the task instance shows, read from the metadata DB; PanelError 404 when there is none."""
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = _task_instance(session, dag_id, run_id, task_id, map_index)
        if ti is None:
            raise PanelError(404, "no_task_instance", "No such task instance.")
        task = _serialized_task(session, ti)
        module = str(getattr(task, "_task_module", "") or "")
        task_type = str(getattr(task, "task_type", "") or "")
        if task is None or not module.startswith(AOM_TASK_MODULE):
            raise PanelError(404, "not_aom_task", "This task is not an AOM task: there is no AOM execution to show.")
        rendered = _rendered(session, dag_id, run_id, task_id, map_index)
        store = _store_values(session, dag_id, run_id, task_id, map_index)
        execution_id = _xcom(session, dag_id, run_id, task_id, map_index, EXECUTION_ID_KEY)
        if execution_id is None and task_type != STARTING_OPERATOR:
            # The node-action operator and the sensor name the execution in a template field.
            execution_id = rendered.get("execution_id")
        detail = _xcom(session, dag_id, run_id, task_id, map_index, "execution_detail")
        ti_state = str(getattr(ti.state, "value", ti.state)) if ti.state is not None else None
    if not is_valid_id(execution_id):
        raise PanelError(404, "no_execution", "This task instance has not started an AOM execution (yet).")
    workflow_id = _text(rendered.get("workflow_id")) or (
        _text(detail.get("workflow_id")) if isinstance(detail, dict) else None
    )
    if workflow_id is None and not _is_template(getattr(task, "workflow_id", None)):
        workflow_id = _text(getattr(task, "workflow_id", None))
    if not is_valid_id(workflow_id):
        raise PanelError(404, "no_workflow", "The workflow of this task instance's execution is not known yet.")
    conn_id = _text(rendered.get("aom_conn_id")) or _text(getattr(task, "aom_conn_id", None)) or DEFAULT_CONN_ID
    project_id = _text(rendered.get("project_id"))
    stored_id = store.get("aom_execution_id")
    owned = task_type == STARTING_OPERATOR and stored_id == execution_id and store.get("aom_execution_owned") is True
    assert isinstance(execution_id, str) and isinstance(workflow_id, str)
    return TaskExecution(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        workflow_id=workflow_id,
        execution_id=execution_id,
        conn_id=conn_id,
        project_id=project_id,
        owned=owned,
        ti_state=ti_state,
        resumable=task_type == STARTING_OPERATOR and stored_id == execution_id,
        task_type=task_type,
    )


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# --------------------------------------------------------------------------- AOM, through the hook


def _aom_failure(exc: Exception) -> PanelError:
    from airflow_provider_aom.exceptions import AomNotFoundError

    if isinstance(exc, AomNotFoundError):
        return PanelError(404, "aom_not_found", f"AOM does not know this execution: {escape(exc, 300)}")
    # Not a server error of this app: AOM (or the way to it) failed. 424: the request depended on it.
    return PanelError(424, "aom_error", f"AOM did not answer as expected: {escape(exc, 300)}")


def read(task: TaskExecution) -> tuple[dict[str, Any], str | None]:
    """The execution detail and the console link."""
    from airflow_provider_aom.exceptions import AomError
    from airflow_provider_aom.hooks.aom import AomHook
    from airflow_provider_aom.links.aom import console_url

    try:
        with AomHook(aom_conn_id=task.conn_id) as hook:
            detail = hook.get_execution(task.workflow_id, task.execution_id, task.project_id)
            config = hook.config
            url = console_url(
                config.console_url, region=config.region, workflow_id=task.workflow_id, execution_id=task.execution_id
            )
    except AomError as exc:
        raise _aom_failure(exc) from None
    except Exception as exc:  # a connection that does not exist on the api-server, say
        raise PanelError(424, "aom_error", f"Could not read the execution: {escape(exc, 300)}") from None
    return detail, url


def act(task: TaskExecution, action: str, node_id: str | None, user: str) -> dict[str, Any]:
    """Send one operation, if it applies to the execution now; clear an ended task instance after a restart."""
    from airflow_provider_aom.exceptions import (
        AomAmbiguousOperationError,
        AomBadRequestError,
        AomError,
        AomNodeActionRefusedError,
        AomNothingToOperateError,
    )
    from airflow_provider_aom.hooks.aom import AomHook
    from airflow_provider_aom.retry import may_have_happened
    from airflow_provider_aom.vocabulary import NodeAction

    with _execution_lock(task.execution_id):
        detail, _ = read(task)
        chosen = find_action(actions(detail, task), action, node_id)
        if chosen is None:
            applies = ", ".join(f"{a.action} {a.node_id or ''}".strip() for a in actions(detail, task)) or "nothing"
            raise PanelError(
                409,
                "does_not_apply",
                f"{action} does not apply to execution {escape(task.execution_id, 64)} now: it is "
                f"{escape(detail.get('status'), 32)} (what applies: {escape(applies, 200)}).",
            )
        result: dict[str, Any] = {
            "action": chosen.action,
            "node_id": chosen.node_id,
            "execution_id": task.execution_id,
            "workflow_id": task.workflow_id,
            "confirmed": True,
            "task_cleared": False,
        }
        try:
            with AomHook(aom_conn_id=task.conn_id) as hook:
                if chosen.action == "terminate":
                    try:
                        hook.terminate_execution(task.workflow_id, task.execution_id, task.project_id)
                    except AomError as exc:
                        if isinstance(exc, AomBadRequestError) or not may_have_happened(exc):
                            raise
                        # Never re-sent: the execution says whether it took effect.
                        after = hook.get_execution(task.workflow_id, task.execution_id, task.project_id)
                        if str(after.get("status", "")).lower() != "cancel":
                            raise AomAmbiguousOperationError(
                                f"Terminate of execution {escape(task.execution_id, 64)} got no clear answer ({exc}) "
                                "and the execution is not cancelled: it was not re-sent."
                            ) from None
                        result["confirmed"] = False
                else:
                    assert chosen.node_id is not None
                    operation = hook.operate_execution(
                        task.workflow_id, task.execution_id, NodeAction(chosen.action), chosen.node_id, task.project_id
                    )
                    result["confirmed"] = operation.confirmed
        except (AomNodeActionRefusedError, AomNothingToOperateError, AomBadRequestError) as exc:
            audit(task, chosen.action, chosen.node_id, user, {"outcome": "refused"})
            raise PanelError(409, "refused", f"AOM refused it: {escape(exc, 400)}") from None
        except AomAmbiguousOperationError as exc:
            audit(task, chosen.action, chosen.node_id, user, {"outcome": "ambiguous"})
            raise PanelError(409, "ambiguous", escape(exc, 500)) from None
        except AomError as exc:
            audit(task, chosen.action, chosen.node_id, user, {"outcome": "error"})
            raise _aom_failure(exc) from None
        if chosen.clears_task:
            result["task_cleared"] = clear_task_instance(task)
        audit(task, chosen.action, chosen.node_id, user, {"outcome": "sent", **result})
        return result


def clear_task_instance(task: TaskExecution) -> bool:
    """Clear the ended task instance, so its next try follows the execution it started (its stored external id)."""
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        ti = _task_instance(session, task.dag_id, task.run_id, task.task_id, task.map_index)
        if ti is None or str(getattr(ti.state, "value", ti.state)) != "failed":
            return False
        clear_task_instances([ti], session, DagRunState.QUEUED)
    return True


def audit(task: TaskExecution, action: str, node_id: str | None, user: str, extra: dict[str, Any]) -> None:
    """One row in Airflow's audit log (``log`` table, Browse → Audit Log): who did what to which execution."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    fields = {"action": action, "node_id": node_id, "execution_id": task.execution_id, **extra}
    fields.update(workflow_id=task.workflow_id)
    try:
        with create_session() as session:
            session.add(
                Log(
                    event=f"{AUDIT_EVENT}.{action}",
                    owner=user,
                    owner_display_name=user,
                    extra=json.dumps(fields, sort_keys=True),
                    dag_id=task.dag_id,
                    run_id=task.run_id,
                    task_id=task.task_id,
                    map_index=task.map_index,
                )
            )
    except Exception:  # the operation was sent: its answer must reach the user
        log.exception("Could not write the audit-log row of %s on execution %s.", action, task.execution_id)


# --------------------------------------------------------------------------- the app


def _page(root: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    static = files("airflow_provider_aom.plugins").joinpath("static")
    template = static.joinpath("panel.html").read_text(encoding="utf-8")
    api = f"{root}/api/executions/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{quote(task_id, safe='')}"
    values = {
        "API": html.escape(api, quote=True),
        "MAP_INDEX": str(int(map_index)),
        "TITLE": html.escape(f"{dag_id} / {task_id}", quote=True),
        "CSS": static.joinpath("panel.css").read_text(encoding="utf-8"),
        "JS": static.joinpath("panel.js").read_text(encoding="utf-8"),
    }
    # One pass: a value holding "{{JS}}" (a DAG id can) is not expanded again.
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values.get(m.group(1), ""), template)


#: What Airflow 3.3's UI puts in the view's href for an unmapped task: it leaves the placeholder as it is.
_UNSUBSTITUTED_MAP_INDEX = "{MAP_INDEX}"


def _map_index(value: str | None) -> int:
    if value is None or value in ("", _UNSUBSTITUTED_MAP_INDEX):
        return -1
    try:
        index = int(value)
    except ValueError:
        raise PanelError(400, "bad_map_index", "map_index must be a whole number (-1 for an unmapped task).") from None
    if index < -1 or index > 1_000_000:
        raise PanelError(400, "bad_map_index", "map_index must be -1 or more.")
    return index


def _parse_body(raw: bytes, content_type: str) -> tuple[str, str | None]:
    if not content_type.lower().split(";")[0].strip() == "application/json":
        raise PanelError(400, "bad_body", "Send the action as JSON (Content-Type: application/json).")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise PanelError(400, "bad_body", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise PanelError(400, "bad_body", 'The body must be a JSON object: {"action": ..., "node_id": ...}.')
    action = body.get("action")
    if action not in ACTIONS:
        raise PanelError(400, "bad_action", f"action must be one of {', '.join(ACTIONS)}.")
    node_id = body.get("node_id")
    if node_id is not None and not is_valid_id(node_id):
        raise PanelError(400, "bad_node_id", "node_id must be a node id (1-64 characters, no control characters).")
    # Anything else in the body (an execution_id, a workflow_id, a connection) is ignored on purpose.
    return str(action), node_id


def create_app() -> "FastAPI":
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated
    from fastapi import Depends, FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(
        title="AOM execution panel",
        description="The AOM execution of a task instance: read it, restart / skip / continue a node, terminate it.",
        dependencies=[Depends(requires_authenticated())],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    read_access = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))
    edit_access = Depends(requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE))
    no_store = {"Cache-Control": "no-store"}

    @app.exception_handler(PanelError)
    async def panel_error(request: Request, exc: PanelError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "reason": exc.reason}, status_code=exc.status, headers=no_store)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": "Bad request.", "reason": "bad_request"}, status_code=400, headers=no_store)

    def may_act(user: Any, dag_id: str) -> bool:
        from airflow.models.dag import DagModel

        return bool(
            get_auth_manager().is_authorized_dag(
                method="PUT",
                access_entity=DagAccessEntity.TASK_INSTANCE,
                details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
                user=user,
            )
        )

    def user_name(user: Any) -> str:
        try:
            return str(user.get_name())
        except Exception:
            return str(getattr(user, "username", "unknown"))

    @app.get("/ti/{dag_id}/{run_id}/{task_id}", dependencies=[read_access], response_class=HTMLResponse)
    def page(request: Request, dag_id: str, run_id: str, task_id: str, map_index: str | None = None) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        body = _page(root, dag_id, run_id, task_id, _map_index(map_index))
        headers = {
            **no_store,
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(body, headers=headers)

    @app.get("/api/executions/{dag_id}/{run_id}/{task_id}", dependencies=[read_access])
    def get_execution(
        dag_id: str, run_id: str, task_id: str, user: GetUserDep, map_index: str | None = None
    ) -> JSONResponse:
        task = load_task_execution(dag_id, run_id, task_id, _map_index(map_index))
        detail, url = read(task)
        body = view(detail, task, may_act=may_act(user, dag_id), console_url=url)
        return JSONResponse(body, headers=no_store)

    @app.post("/api/executions/{dag_id}/{run_id}/{task_id}/actions", dependencies=[edit_access])
    async def post_action(
        request: Request, dag_id: str, run_id: str, task_id: str, user: GetUserDep, map_index: str | None = None
    ) -> JSONResponse:
        index = _map_index(map_index)
        action, node_id = _parse_body(await request.body(), request.headers.get("content-type", ""))
        name = user_name(user)

        def run() -> dict[str, Any]:
            task = load_task_execution(dag_id, run_id, task_id, index)
            return act(task, action, node_id, name)

        result = await run_in_threadpool(run)
        return JSONResponse({"result": result}, headers=no_store)

    return app
