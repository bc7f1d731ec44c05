"""Node operations, workflows by name and the trigger switch, through both hooks, over HTTP against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from airflow_provider_aom.exceptions import (
    AomAmbiguousOperationError,
    AomNodeActionRefusedError,
    AomNothingToOperateError,
    AomWorkflowNotFoundError,
)
from airflow_provider_aom.hooks.aom import AomAsyncHook, AomHook
from airflow_provider_aom.node_ops import NodeOperation
from airflow_provider_aom.vocabulary import NodeAction
from tests.conftest import UseConnection
from tests.faults import FAST
from tests.polling import wait_for

MODES = ["sync", "async"]


def operate(mode: str, execution_id: str, workflow_id: str, action: str, node_id: str | None = None) -> NodeOperation:
    if mode == "sync":
        return AomHook().operate_execution(workflow_id, execution_id, action, node_id)
    return asyncio.run(AomAsyncHook().operate_execution(workflow_id, execution_id, action, node_id))


def status_when(emulator: AomEmulator, execution_id: str, wanted: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        [execution] = [e for e in emulator.state.executions() if e["execution_id"] == execution_id]
        return execution if execution["status"] == wanted else None

    return wait_for(reached, 20, f"execution {execution_id} to be {wanted}")


def nodes(execution: dict[str, Any]) -> dict[str, str]:
    return {n["node_id"]: n["status"] for n in execution["execution_result_list"]}


def operation_posts(emulator: AomEmulator) -> list[dict[str, Any]]:
    return [r for r in emulator.state.requests() if r["path"].endswith("/operation")]


@pytest.fixture
def paused(use_connection: UseConnection, quick_workflows: AomEmulator) -> Callable[[str], str]:
    """``paused(workflow_id)``: an execution of it, once it waits at its failed or pause node."""
    use_connection("aksk", extra=FAST)

    def start(workflow_id: str) -> str:
        execution_id = AomHook().execute_workflow(workflow_id)
        status_when(quick_workflows, execution_id, "pausing")
        return execution_id

    return start


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("action", "node_status"), [("restart", "success"), ("skip", "skip")])
def test_failed_node_is_restarted_or_skipped_and_the_execution_ends_success(
    mode: str, action: str, node_status: str, paused: Callable[[str], str], quick_workflows: AomEmulator
) -> None:
    execution_id = paused("wf-quick-pause-fail")
    operation = operate(mode, execution_id, "wf-quick-pause-fail", action)  # node_id=None: the failed node
    assert operation == NodeOperation(NodeAction(action), "node_2", confirmed=True)
    done = status_when(quick_workflows, execution_id, "success")
    assert nodes(done)["node_2"] == node_status
    [post] = operation_posts(quick_workflows)
    assert post["query"] == f"action={action}&node_id=node_2"


@pytest.mark.parametrize("mode", MODES)
def test_continue_passes_the_pause_node(mode: str, paused: Callable[[str], str], quick_workflows: AomEmulator) -> None:
    execution_id = paused("wf-quick-pause")
    assert operate(mode, execution_id, "wf-quick-pause", "continue").node_id == "pause_1"
    assert nodes(status_when(quick_workflows, execution_id, "success")) == {
        "node_1": "success",
        "pause_1": "success",
        "node_2": "success",
    }


@pytest.mark.parametrize("mode", MODES)
def test_refused_operation_names_the_action_node_and_statuses(
    mode: str, paused: Callable[[str], str], quick_workflows: AomEmulator
) -> None:
    execution_id = paused("wf-quick-pause-fail")
    with pytest.raises(AomNodeActionRefusedError) as info:
        operate(mode, execution_id, "wf-quick-pause-fail", "continue", "node_2")
    message = str(info.value)
    assert "refused to continue node node_2" in message
    assert "the node is fail and the execution pausing" in message
    assert "AOM.31001302" in message
    assert len(operation_posts(quick_workflows)) == 1, "a refusal is never retried"


@pytest.mark.parametrize("mode", MODES)
def test_nothing_to_operate_without_a_stop(mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", extra=FAST)
    execution_id = AomHook().execute_workflow("wf-long")
    with pytest.raises(AomNothingToOperateError, match="executing with no failed node to restart"):
        operate(mode, execution_id, "wf-long", "restart")
    assert operation_posts(emulator) == []


@pytest.mark.parametrize("mode", MODES)
def test_operation_whose_answer_was_lost_counts_when_the_execution_shows_it(
    mode: str, paused: Callable[[str], str], quick_workflows: AomEmulator
) -> None:
    execution_id = paused("wf-quick-pause-fail")
    quick_workflows.state.add_fault("drop_after", method="POST", path="/operation$")
    operation = operate(mode, execution_id, "wf-quick-pause-fail", "restart")
    assert operation.confirmed is False and operation.node_id == "node_2"
    assert len(operation_posts(quick_workflows)) == 1, "never re-sent"
    assert quick_workflows.state.operations(execution_id)[0]["action"] == "restart"


@pytest.mark.parametrize("mode", MODES)
def test_operation_lost_before_aom_saw_it_is_not_re_sent(
    mode: str, paused: Callable[[str], str], quick_workflows: AomEmulator
) -> None:
    """The connection drops after the request left but before AOM acted: the execution shows no change."""
    execution_id = paused("wf-quick-pause-fail")
    quick_workflows.state.add_fault("drop_before", method="POST", path="/operation$")
    began = time.monotonic()
    with pytest.raises(AomAmbiguousOperationError, match="was not re-sent"):
        operate(mode, execution_id, "wf-quick-pause-fail", "restart")
    assert len(operation_posts(quick_workflows)) == 1
    assert quick_workflows.state.operations(execution_id) == []
    assert time.monotonic() - began < 30, "the re-reads end after twice the connection's timeout"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("same_name", "expected"), [(0, None), (1, "wf-named-0"), (2, "several")])
def test_find_workflow_by_exact_name(
    mode: str, same_name: int, expected: str | None, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    for index in range(same_name):
        emulator.state.add_workflow(
            WorkflowSpec(id=f"wf-named-{index}", name="db-cleanup", outcome="success", duration=1)
        )
    # Near misses the search also returns: a longer name and another case.
    emulator.state.add_workflow(WorkflowSpec(id="wf-near-1", name="db-cleanup-eu", outcome="success", duration=1))
    emulator.state.add_workflow(WorkflowSpec(id="wf-near-2", name="DB-Cleanup", outcome="success", duration=1))

    def find() -> dict[str, Any]:
        if mode == "sync":
            return AomHook().find_workflow("db-cleanup")
        return asyncio.run(AomAsyncHook().find_workflow("db-cleanup"))

    if expected is None:
        with pytest.raises(AomWorkflowNotFoundError, match="No workflow is named 'db-cleanup'"):
            find()
    elif expected == "several":
        with pytest.raises(
            AomWorkflowNotFoundError, match=r"2 workflows are named 'db-cleanup' \(ids: wf-named-0, wf-named-1\)"
        ):
            find()
    else:
        assert find()["id"] == expected


def test_find_workflow_pages_through_the_list(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", extra=FAST)
    for index in range(150):
        emulator.state.add_workflow(
            WorkflowSpec(id=f"wf-job-{index:03d}", name=f"job-{index:03d}", outcome="success", duration=1)
        )
    emulator.state.add_workflow(WorkflowSpec(id="wf-target", name="job", outcome="success", duration=1))
    assert AomHook().find_workflow("job")["id"] == "wf-target"
    lists = [r for r in emulator.state.requests() if r["path"].endswith("/workflow-list")]
    assert len(lists) == 2, "151 matches of the search: two pages of 100"


@pytest.mark.parametrize("mode", MODES)
def test_workflow_trigger_is_switched(mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", extra=FAST)

    def trigger_status() -> str:
        [workflow] = [w for w in AomHook().list_workflows(search="nightly-patching") if w["id"] == "wf-nightly"]
        return str(workflow["trigger_status"])

    assert trigger_status() == "enable"
    for enable, expected in ((False, "disable"), (True, "enable")):
        if mode == "sync":
            AomHook().set_workflow_trigger("wf-nightly", enable)
        else:
            asyncio.run(AomAsyncHook().set_workflow_trigger("wf-nightly", enable))
        assert trigger_status() == expected
    puts = [r["query"] for r in emulator.state.requests() if r["method"] == "PUT"]
    assert puts == ["action=disable", "action=enable"]
