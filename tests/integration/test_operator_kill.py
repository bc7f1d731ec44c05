"""on_kill and the terminate operator against the emulator."""

from __future__ import annotations

import time

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator, AomTerminateWorkflowExecutionOperator


def running_operator(execution_id: str, **kwargs: object) -> AomExecuteWorkflowOperator:
    operator = AomExecuteWorkflowOperator(task_id="run", workflow_id="wf-long", **kwargs)  # type: ignore[arg-type]
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
def test_on_kill(kwargs: dict[str, object], expected: str, use_connection, emulator: AomEmulator) -> None:  # type: ignore[no-untyped-def]
    use_connection("aksk")
    execution_id = AomHook().execute_workflow("wf-long")
    running_operator(execution_id, **kwargs).on_kill()
    assert AomHook().get_execution("wf-long", execution_id)["status"] == expected


def test_on_kill_is_best_effort(use_connection, emulator: AomEmulator) -> None:  # type: ignore[no-untyped-def]
    use_connection("aksk")
    running_operator("no-such-execution", wait_for_completion=True).on_kill()  # logs, does not raise


def test_terminate_operator(use_connection, emulator: AomEmulator) -> None:  # type: ignore[no-untyped-def]
    use_connection("token")
    execution_id = AomHook().execute_workflow("wf-long")
    AomTerminateWorkflowExecutionOperator(task_id="stop", workflow_id="wf-long", execution_id=execution_id).execute({})  # type: ignore[arg-type]
    assert AomHook().get_execution("wf-long", execution_id)["status"] == "cancel"


def test_terminate_operator_accepts_an_execution_that_already_ended(use_connection, emulator: AomEmulator) -> None:  # type: ignore[no-untyped-def]
    emulator.state.add_workflow(WorkflowSpec(id="wf-instant", name="instant", outcome="success", duration=0.05))
    use_connection("aksk")
    execution_id = AomHook().execute_workflow("wf-instant")
    time.sleep(0.2)
    AomTerminateWorkflowExecutionOperator(task_id="stop", workflow_id="wf-instant", execution_id=execution_id).execute(
        {}
    )  # type: ignore[arg-type]
    assert AomHook().get_execution("wf-instant", execution_id)["status"] == "success"
