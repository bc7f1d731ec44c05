"""Every list-based feature on a workflow with a 100,000-execution history, on real Airflow (3.x and 2.11).

AOM's execution list has no paging: it answers the whole history every time. The emulator seeds
100,000 old, ended executions per workflow (two nodes each, ~40 MB a list) in front of the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.hooks.aom import AomHook
from tests.conftest import UseConnection
from tests.dags.dagrun import load_test_dag, run, task_states, try_numbers, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

HISTORY = 100_000


@pytest.fixture
def long_history(quick_workflows: AomEmulator, seed_history: Callable[..., AomEmulator]) -> AomEmulator:
    return seed_history(HISTORY, nodes=2)


def posts(emulator: AomEmulator, suffix: str) -> list[dict[str, Any]]:
    return [r for r in emulator.state.requests() if r["method"] == "POST" and r["path"].endswith(suffix)]


def test_the_history_is_really_there(use_connection: UseConnection, long_history: AomEmulator) -> None:
    use_connection("aksk")
    listing = AomHook().list_executions("wf-quick", keep=lambda e: e.execution_id.endswith("-99999"))
    assert listing.rows == HISTORY and len(listing) == 1 and listing.invalid == 0


@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_a_lost_submit_answer_is_adopted(mode: str, use_connection: UseConnection, long_history: AomEmulator) -> None:
    use_connection("aksk", extra={"timeout": 10, "retry_max_wait": 0.05})
    long_history.state.add_fault("drop_after", method="POST", path=r"/executions$")
    dag_run = run(load_test_dag(f"aom_wait_success_{mode}"))
    assert task_states(dag_run) == {"run": "success"}
    [execution] = long_history.state.executions()
    assert execution["status"] == "success"
    assert len(posts(long_history, "/executions")) == 1, "never re-sent"
    assert xcom(dag_run, "run", "execution_id") == execution["execution_id"]


def test_reuse_existing_run_follows_the_running_execution(
    use_connection: UseConnection, long_history: AomEmulator
) -> None:
    use_connection("aksk")
    running = AomHook().execute_workflow("wf-long")
    dag_run = run(load_test_dag("aom_reuse_existing_run"))
    assert task_states(dag_run) == {"run": "success"}
    assert xcom(dag_run, "run") == running
    assert len(posts(long_history, "/executions")) == 1, "only the execution started before the DAG"


@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_retry_from_failure_finds_the_earlier_execution(
    mode: str, use_connection: UseConnection, long_history: AomEmulator
) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_retry_from_failure_{mode}"))
    assert task_states(dag_run) == {"run": "success"}
    assert try_numbers(dag_run) == {"run": 2}
    [execution] = long_history.state.executions()
    assert len(posts(long_history, "/executions")) == 1, "exactly one execute POST"
    assert [o["action"] for o in long_history.state.operations(execution["execution_id"])] == ["restart"]
