"""on_kill and the terminate operator against the emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator, AomTerminateWorkflowExecutionOperator
from tests.conftest import LogText, UseConnection


def running_operator(execution_id: str, **kwargs: Any) -> AomExecuteWorkflowOperator:
    operator = AomExecuteWorkflowOperator(task_id="run", workflow_id="wf-long", **kwargs)
    operator._execution_id = execution_id  # what execute() records right after the submit
    return operator


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"wait_for_completion": True}, "cancel"),
        ({"wait_for_completion": True, "cancel_on_kill": False}, "executing"),
        ({"wait_for_completion": False}, "executing"),
    ],
    ids=["waiting", "cancel_on_kill-off", "not-waiting"],
)
def test_on_kill(kwargs: dict[str, Any], expected: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk")
    execution_id = AomHook().execute_workflow("wf-long")
    running_operator(execution_id, **kwargs).on_kill()
    assert AomHook().get_execution("wf-long", execution_id)["status"] == expected


def test_on_kill_is_best_effort(use_connection: UseConnection, emulator: AomEmulator, log_text: LogText) -> None:
    """The terminate is sent; its failure is logged, never raised (a kill must always complete)."""
    use_connection("aksk")
    running_operator("no-such-execution", wait_for_completion=True).on_kill()
    [terminate] = [r for r in emulator.state.requests() if r["path"].endswith("/no-such-execution/terminate")]
    assert terminate["status"] == 404
    assert "Could not terminate execution no-such-execution (the task was killed)" in log_text()


def test_terminate_operator(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("token")
    execution_id = AomHook().execute_workflow("wf-long")
    AomTerminateWorkflowExecutionOperator(task_id="stop", workflow_id="wf-long", execution_id=execution_id).execute({})
    assert AomHook().get_execution("wf-long", execution_id)["status"] == "cancel"


def test_terminate_operator_accepts_an_execution_that_already_ended(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    emulator.state.add_workflow(WorkflowSpec(id="wf-instant", name="instant", outcome="success", duration=0.05))
    use_connection("aksk")
    execution_id = AomHook().execute_workflow("wf-instant")
    time.sleep(0.2)
    AomTerminateWorkflowExecutionOperator(task_id="stop", workflow_id="wf-instant", execution_id=execution_id).execute(
        {}
    )
    assert AomHook().get_execution("wf-instant", execution_id)["status"] == "success"
