"""Example DAGs on real Airflow (``dag.test()``), against the emulator over HTTP."""

from __future__ import annotations

import pytest

from airflow_provider_aom.emulator import AomEmulator
from tests.conftest import AUTH_MODES, UseConnection
from tests.dags.dagrun import load_example, run, task_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_run_and_wait_in_every_auth_mode(mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection(mode)
    dag_run = run(load_example("example_aom_run_and_wait"))
    assert task_states(dag_run) == {"run_workflow": "success"}
    created = emulator.state.executions()
    assert len(created) == 1
    execution_id = created[0]["execution_id"]
    assert xcom(dag_run, "run_workflow", "execution_id") == execution_id
    assert xcom(dag_run, "run_workflow") == execution_id
    assert xcom(dag_run, "run_workflow", "execution_detail")["status"] == "success"
    link = xcom(dag_run, "run_workflow", "_link_AomWorkflowExecutionLink")
    assert link.startswith("https://console.huaweicloud.com/") and execution_id in link
