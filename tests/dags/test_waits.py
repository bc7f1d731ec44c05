"""Waiting on real Airflow: sync and deferrable, success and failure, deadline, sensor, token renewal."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from tests.conftest import UseConnection
from tests.dags.dagrun import AIRFLOW_3, load_example, load_test_dag, run, task_states, try_numbers, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")


def _mode(deferrable: bool) -> str:
    return "deferrable" if deferrable else "sync"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_wait_success(deferrable: bool, use_connection: UseConnection, quick_workflows: AomEmulator) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_wait_success_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "success"}
    [execution] = quick_workflows.state.executions()
    assert xcom(dag_run, "run") == execution["execution_id"]
    assert xcom(dag_run, "run", "execution_detail")["status"] == "success"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_wait_failure_fails_the_task(
    deferrable: bool, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_wait_failure_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "failed"}
    [execution] = quick_workflows.state.executions()
    # The id is in XCom even though the task failed, and so is the final detail.
    assert xcom(dag_run, "run", "execution_id") == execution["execution_id"]
    assert xcom(dag_run, "run", "execution_detail")["status"] == "fail"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_deadline_terminates_the_execution(
    deferrable: bool, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_wait_deadline_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "failed"}
    [execution] = emulator.state.executions()
    assert execution["status"] == "cancel"
    assert emulator.state.count_requests("POST", "/v1/") == 2  # the submit and the terminate


def test_sensor_follows_an_upstream_execution(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("token")
    dag_run = run(load_example("example_aom_run_then_sensor"))
    assert task_states(dag_run) == {
        "start": "success",
        "wait": "success",
        "start_long": "success",
        "stop_long": "success",
    }
    by_workflow = {e["workflow_id"]: e for e in emulator.state.executions()}
    assert by_workflow["wf-success"]["status"] == "success"
    assert by_workflow["wf-long"]["status"] == "cancel"
    assert xcom(dag_run, "wait", "execution_detail")["execution_id"] == by_workflow["wf-success"]["execution_id"]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_fails_on_a_failed_execution(
    deferrable: bool, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_sensor_failure_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"start": "success", "wait": "failed"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_token_expiring_during_the_wait_is_renewed(
    deferrable: bool, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("password")
    quick_workflows.state.add_fault("expire_token", path="/status$", count=1)
    dag_run = run(load_test_dag(f"aom_wait_success_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "success"}
    assert quick_workflows.state.iam_token_requests() == 2
    assert len(quick_workflows.state.executions()) == 1


def test_polling_is_one_request_per_interval(use_connection: UseConnection, emulator: AomEmulator) -> None:
    emulator.state.add_workflow(WorkflowSpec(id="wf-2s", name="two seconds", outcome="success", duration=2.0))
    use_connection("aksk")
    run(load_test_dag("aom_wait_rate"))
    polls = emulator.state.count_requests("GET", "/v1/")
    assert 4 <= polls <= 6, polls


def test_trigger_form_params_choose_the_workflow(use_connection: UseConnection, quick_workflows: AomEmulator) -> None:
    use_connection("aksk")
    dag_run = run(load_example("example_aom_trigger_form"), conf={"workflow_id": "wf-quick"})
    assert task_states(dag_run) == {"run_workflow": "success"}
    [execution] = quick_workflows.state.executions()
    assert execution["workflow_id"] == "wf-quick"


def test_dynamic_task_mapping(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("password")
    dag_run = run(load_example("example_aom_mapped"))
    assert task_states(dag_run) == {"run_workflows[0]": "success", "run_workflows[1]": "success"}
    ids = {e["execution_id"] for e in emulator.state.executions()}
    assert len(ids) == 2
    assert {xcom(dag_run, "run_workflows", map_index=i) for i in (0, 1)} == ids
    assert emulator.state.iam_token_requests() == 1


@pytest.mark.parametrize(
    ("mode", "overrides", "workflow_id"),
    [
        ("aksk", {"password": "W" * 40}, "wf-success"),
        ("aksk", {"extra": {"project_id": "", "region": ""}}, "wf-success"),
        ("aksk", {}, "no-such-workflow"),
    ],
    ids=["wrong-sk", "no-project-id", "unknown-workflow"],
)
def test_unfixable_errors_fail_once_without_retries(
    mode: str,
    overrides: dict[str, Any],
    workflow_id: str,
    use_connection: UseConnection,
    emulator: AomEmulator,
) -> None:
    use_connection(mode, **overrides)
    dag_run = run(load_test_dag("aom_fail_once"), conf={"workflow_id": workflow_id})
    assert task_states(dag_run) == {"run": "failed"}
    # aom_fail_once has retries=2: an unfixable error fails at once.
    assert try_numbers(dag_run) == {"run": 1}
    assert emulator.state.count_requests("POST", "/v1/") <= 1
    assert emulator.state.executions() == []


def test_durable_on_airflow_2_warns_and_still_runs(
    use_connection: UseConnection, quick_workflows: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    if AIRFLOW_3:
        pytest.skip("Airflow 2 behaviour")
    from airflow_provider_aom.operators import aom

    monkeypatch.setattr(aom, "_durable_warned", False)
    use_connection("aksk")
    with pytest.warns(UserWarning, match="durable has no effect"):
        dag_run = run(load_test_dag("aom_wait_success_sync"))
    assert task_states(dag_run) == {"run": "success"}
