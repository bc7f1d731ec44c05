"""Hostile workflow, execution and project ids: rejected before any request, or exactly one path segment.

Ids come from templates and DAG run conf, so they are untrusted. Each one must either be
refused with ``AomConfigurationError`` before anything is sent (empty, longer than the
reference's 64 characters, control characters such as CR/LF/NUL, surrounding white space,
``.`` and ``..``), or travel as one percent-encoded path segment to the endpoint it was
meant for: the emulator registers workflows with these very ids, so a request that lands
anywhere else fails, and its request log shows the raw path that was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from airflow_provider_aom.exceptions import AomConfigurationError, AomNotFoundError
from airflow_provider_aom.hooks.aom import AomAsyncHook, AomHook
from tests.dags.dagrun import load_test_dag, run, task_states, try_numbers, xcom
from tests.faults import FAST, PROJECT, executions_path, segment

UseConnection = Callable[..., dict[str, Any]]

#: Accepted: each must arrive as one segment naming exactly this id.
ACCEPTED = {
    "traversal": "../../v3/auth/tokens",
    "encoded-slashes": "..%2F..%2Fv3%2Fprojects",
    "encoded-dots": "%2e%2e",
    "slash": "a/b",
    "backslashes": "..\\..\\v3",
    "query": "wf?x=1&y=2",
    "fragment": "wf#frag",
    "semicolon": "wf;jsessionid=1",
    "spaces-inside": "wf with spaces",
    "unicode": "wf-ünïcødé-工作流-🚀",
    "line-separator": "wf\u2028x",
    "three-dots": "...",
    "jinja": "{{ 7 * 7 }}",
    "64-chars": "w" * 64,
}
#: Refused before any request.
REJECTED = {
    "empty": "",
    "dot": ".",
    "dot-dot": "..",
    "65-chars": "w" * 65,
    "crlf-header-injection": "wf\r\nX-Injected: 1",
    "lf": "wf\nx",
    "cr": "wf\rx",
    "nul": "wf\x00",
    "del": "wf\x7f",
    "tab": "wf\tx",
    "leading-space": " wf",
    "trailing-space": "wf ",
    "not-a-string": 5,
}


def params(ids: dict[str, Any]) -> list[Any]:
    return [pytest.param(value, id=name) for name, value in ids.items()]


def assert_one_segment(path: str, prefix: str, value: str, suffix: str) -> None:
    assert path.startswith(prefix) and path.endswith(suffix), path
    middle = path[len(prefix) : len(path) - len(suffix)]
    assert "/" not in middle and "?" not in middle and "#" not in middle
    assert middle == segment(value)
    assert unquote(middle) == value


@pytest.fixture
def aksk(use_connection: UseConnection, emulator: AomEmulator) -> AomHook:
    use_connection("aksk", extra=FAST)
    return AomHook()


@pytest.mark.parametrize("workflow_id", params(ACCEPTED))
def test_hostile_workflow_id_is_one_segment_to_the_intended_endpoint(
    workflow_id: str, aksk: AomHook, emulator: AomEmulator
) -> None:
    emulator.state.add_workflow(WorkflowSpec(id=workflow_id, name="hostile", outcome="success", duration=600))
    execution_id = aksk.execute_workflow(workflow_id)
    [execution] = emulator.state.executions()
    assert (execution["workflow_id"], execution["execution_id"]) == (workflow_id, execution_id)

    assert aksk.get_execution(workflow_id, execution_id)["workflow_id"] == workflow_id
    assert [e.execution_id for e in aksk.list_executions(workflow_id)] == [execution_id]
    aksk.terminate_execution(workflow_id, execution_id)

    prefix = f"/v1/{PROJECT}/cms/workflow/"
    seen = [(r["method"], r["path"], r["status"]) for r in emulator.state.requests()]
    assert [(m, s) for m, _, s in seen] == [("POST", 200), ("GET", 200), ("GET", 200), ("POST", 200)], seen
    suffixes = [
        "/executions",
        f"/executions/{execution_id}/status",
        "/executions",
        f"/executions/{execution_id}/terminate",
    ]
    for (_, path, _), suffix in zip(seen, suffixes, strict=True):
        assert_one_segment(path, prefix, workflow_id, suffix)
    assert emulator.state.executions()[0]["status"] == "cancel"


@pytest.mark.parametrize("execution_id", params(ACCEPTED))
def test_hostile_execution_id_reaches_the_status_endpoint_only(
    execution_id: str, aksk: AomHook, emulator: AomEmulator
) -> None:
    with pytest.raises(AomNotFoundError) as info:
        aksk.get_execution("wf-success", execution_id)
    # The status endpoint itself answered "no such execution": not the gateway's "no such API".
    assert info.value.error_code == "AOM.31001307"
    [record] = emulator.state.requests()
    assert record["method"] == "GET"
    assert_one_segment(record["path"], executions_path("wf-success") + "/", execution_id, "/status")
    with pytest.raises(AomNotFoundError):
        aksk.terminate_execution("wf-success", execution_id)
    assert emulator.state.requests()[-1]["path"].endswith(f"/executions/{segment(execution_id)}/terminate")
    assert emulator.state.executions() == []


@pytest.mark.parametrize("bad", params(REJECTED))
def test_hostile_ids_are_rejected_before_any_request(bad: Any, aksk: AomHook, emulator: AomEmulator) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: aksk.execute_workflow(bad),
        lambda: aksk.get_execution(bad, "e-1"),
        lambda: aksk.get_execution("wf-success", bad),
        lambda: aksk.list_executions(bad),
        lambda: aksk.terminate_execution(bad, "e-1"),
        lambda: aksk.terminate_execution("wf-success", bad),
    ]
    for call in calls:
        with pytest.raises(AomConfigurationError) as info:
            call()
        assert ("workflow_id" in str(info.value)) or ("execution_id" in str(info.value))
        # The message never repeats raw control characters (it could forge log lines).
        assert "\r" not in str(info.value) and "\n" not in str(info.value)
    assert emulator.state.requests() == []


BAD_PROJECT_IDS = {
    "traversal": "../" + "x" * 29,
    "31-chars": PROJECT[:-1],
    "33-chars": PROJECT + "0",
    "slash": PROJECT[:-1] + "/",
    "percent": PROJECT[:-3] + "%2F",
    "crlf-suffix": PROJECT + "\r\n",
    "lf-prefix": "\n" + PROJECT,
    "fullwidth-digits": "\uff10" * 32,
    "arabic-indic-digits": "\u0660" * 32,
    "space": PROJECT[:-1] + " ",
}


@pytest.mark.parametrize(
    ("mode", "project_id"),
    [pytest.param("aksk", value, id=name) for name, value in BAD_PROJECT_IDS.items()]
    + [
        pytest.param("aksk", PROJECT + "\n", id="lf-suffix-aksk"),
        pytest.param("token", PROJECT + "\n", id="lf-suffix-token"),
    ],
)
def test_hostile_project_id_is_rejected_before_any_request(
    mode: str, project_id: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection(mode, extra=FAST)
    hook = AomHook()
    for call in (
        lambda: hook.execute_workflow("wf-success", project_id=project_id),
        lambda: hook.get_execution("wf-success", "e-1", project_id=project_id),
    ):
        with pytest.raises(AomConfigurationError, match="project_id"):
            call()
    assert emulator.state.requests() == []
    assert emulator.state.executions() == []


@pytest.mark.parametrize("project_id", ["../" + "x" * 29, PROJECT + "/..", PROJECT[:16]])
def test_hostile_project_id_in_the_connection_is_rejected(
    project_id: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra={"project_id": project_id})
    with pytest.raises(AomConfigurationError, match="project_id"):
        AomHook().execute_workflow("wf-success")
    assert emulator.state.requests() == []


@pytest.mark.parametrize("execution_id", ["../../v3/auth/tokens", "e?x=1#f", "ünï/🚀"])
async def test_async_hook_sends_hostile_ids_as_one_segment(
    execution_id: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    with pytest.raises(AomNotFoundError) as info:
        await AomAsyncHook().get_execution("wf-success", execution_id)
    assert info.value.error_code == "AOM.31001307"
    [record] = emulator.state.requests()
    assert_one_segment(record["path"], executions_path("wf-success") + "/", execution_id, "/status")


@pytest.mark.parametrize("bad", ["..", "wf\r\nX-Injected: 1", "w" * 65])
async def test_async_hook_rejects_hostile_ids_before_any_request(
    bad: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    with pytest.raises(AomConfigurationError):
        await AomAsyncHook().get_execution("wf-success", bad)
    with pytest.raises(AomConfigurationError):
        await AomAsyncHook().get_execution(bad, "e-1")
    assert emulator.state.requests() == []


# --------------------------------------------------------------------------- through DAG run conf


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("workflow_id", [ACCEPTED["traversal"], ACCEPTED["jinja"]], ids=["traversal", "jinja"])
def test_hostile_conf_workflow_id_runs_exactly_that_workflow(
    workflow_id: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    emulator.state.add_workflow(WorkflowSpec(id=workflow_id, name="hostile", outcome="success", duration=600))
    dag_run = run(load_test_dag("aom_fail_once"), conf={"workflow_id": workflow_id})
    assert task_states(dag_run) == {"run": "success"}
    [execution] = emulator.state.executions()
    # Rendered once, never re-rendered: "{{ 7 * 7 }}" stays itself.
    assert execution["workflow_id"] == workflow_id
    assert xcom(dag_run, "run") == execution["execution_id"]
    [post] = emulator.state.requests()
    assert post["path"] == executions_path(workflow_id)
    link = xcom(dag_run, "run", "_link_AomWorkflowExecutionLink")
    assert f"workflow_id={quote(workflow_id, safe='')}&" in link


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    "workflow_id", [REJECTED["crlf-header-injection"], "..", "w" * 65], ids=["crlf", "dot-dot", "65-chars"]
)
def test_hostile_conf_workflow_id_fails_the_task_before_any_request(
    workflow_id: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    dag_run = run(load_test_dag("aom_fail_once"), conf={"workflow_id": workflow_id})
    # aom_fail_once has retries=2: a configuration error fails at once, and nothing was sent.
    assert task_states(dag_run) == {"run": "failed"}
    assert try_numbers(dag_run) == {"run": 1}
    assert emulator.state.requests() == []
