"""Hostile answers meet real Airflow (3.x and 2.11), sync and deferrable waits, through the emulator's faults.

* a succeeded execution whose detail holds NaN, 300-deep nesting or wrong-typed fields leaves the
  task successful, with a storable detail in XCom;
* a 5,000-node detail keeps every XCom row (and the trigger event in the metadata DB) under 1 MB;
* a status answer trickled past the task's timeout cannot hold the task: it ends and terminates;
* after an ambiguous submit, another user's execution is neither adopted nor terminated, and an
  execution adopted without a checked creator is left running at the timeout.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.execution import MAX_DEPTH
from tests.conftest import UseConnection
from tests.dags.dagrun import load_test_dag, run, stored_sizes, task_states, xcom
from tests.faults import FAST, executions_path

pytestmark = pytest.mark.usefixtures("airflow_db")

MODES = ["sync", "deferrable"]
ONE_MB = 1_000_000


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


PATCHES: dict[str, dict[str, Any]] = {
    "nan-and-300-deep": {
        "execution_result_list": [
            {"node_id": "n1", "status": "success", "output": {"nan": math.nan, "inf": math.inf, "deep": nested(300)}}
        ]
    },
    "wrong-types": {
        "execution_result_list": "not a list",
        "approve_user_name_list": {"not": "a list"},
        "begin_time": "yesterday",
        "end_time": math.inf,
    },
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(PATCHES))
def test_succeeded_execution_with_unstorable_or_wrong_typed_detail_succeeds(
    mode: str, case: str, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    quick_workflows.state.add_fault("patch", method="GET", path="/status$", patch=PATCHES[case], count=1000)
    dag_run = run(load_test_dag(f"aom_wait_conf_{mode}"), conf={"workflow_id": "wf-quick"})
    assert task_states(dag_run) == {"run": "success"}
    detail = xcom(dag_run, "run", "execution_detail")
    assert detail["status"] == "success"
    if case == "wrong-types":
        for field in ("execution_result_list", "approve_user_name_list", "begin_time", "end_time"):
            assert field not in detail, field
    else:
        [node] = detail["execution_result_list"]
        assert node["output"]["nan"] is None and node["output"]["inf"] is None
        assert depth_of(detail) <= MAX_DEPTH + 2
        assert "truncated: nested deeper than" in str(node["output"]["deep"])


@pytest.mark.parametrize("mode", MODES)
def test_empty_status_is_an_invalid_answer_read_again(
    mode: str, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    quick_workflows.state.add_fault("patch", method="GET", path="/status$", patch={"status": ""}, count=2)
    dag_run = run(load_test_dag(f"aom_wait_conf_{mode}"), conf={"workflow_id": "wf-quick"})
    assert task_states(dag_run) == {"run": "success"}
    statuses = [r for r in quick_workflows.state.requests() if r["path"].endswith("/status")]
    assert [r["fault"] for r in statuses[:2]] == ["patch", "patch"], "both empty answers were read, then retried"


@pytest.mark.parametrize("mode", MODES)
def test_5000_node_detail_keeps_every_stored_row_under_1_mb(
    mode: str, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    nodes = [{"node_id": f"n{i}", "status": "success", "output": {"log": "x" * 2000}} for i in range(5000)]
    nodes[4321]["status"] = "skipped"  # not a success: kept first when the list is cut
    use_connection("aksk", extra=FAST)
    quick_workflows.state.add_fault(
        "patch", method="GET", path="/status$", patch={"execution_result_list": nodes}, count=1000
    )
    dag_run = run(load_test_dag(f"aom_wait_conf_{mode}"), conf={"workflow_id": "wf-quick"})
    assert task_states(dag_run) == {"run": "success"}
    sizes = stored_sizes(dag_run)
    assert "run:execution_detail" in sizes
    assert all(size < ONE_MB for size in sizes.values()), sizes
    detail = xcom(dag_run, "run", "execution_detail")
    assert detail["execution_result_list_truncated"]["total"] == 5000
    assert detail["execution_result_list_truncated"]["see"].startswith("https://")
    assert "n4321" in {node["node_id"] for node in detail["execution_result_list"]}


@pytest.mark.parametrize("mode", MODES)
def test_trickled_poll_cannot_hold_the_task_past_its_timeout(
    mode: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    """Status answers trickle at 20 bytes/s and the connection's own timeout is long: the task's 1.5 s still hold."""
    use_connection("aksk", extra={"timeout": 60, "retry_total": 120})
    emulator.state.add_fault("trickle", method="GET", path="/status$", delay=0.05, count=100)
    dag_run = run(load_test_dag(f"aom_wait_deadline_{mode}"))
    assert task_states(dag_run) == {"run": "failed"}
    [execution] = emulator.state.executions()
    assert execution["status"] == "cancel", "the deadline terminated the execution it started"


def test_another_users_run_is_neither_adopted_nor_terminated(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    """The submit fails with a 502 (nothing started); alice started wf-long 5 s earlier."""
    use_connection("aksk", extra=FAST)
    alice = emulator.state.create_execution("wf-long", "alice", started_ago=5)
    emulator.state.add_fault("status", method="POST", path=r"/executions$", status=502)
    dag_run = run(load_test_dag("aom_wait_deadline_sync"))
    assert task_states(dag_run) == {"run": "failed"}
    [execution] = emulator.state.executions()
    assert (execution["execution_id"], execution["status"]) == (alice, "executing")
    assert emulator.state.count_requests("POST", executions_path("wf-long")) == 1
    assert not any(r["path"].endswith("/terminate") for r in emulator.state.requests())


@pytest.mark.parametrize("mode", MODES)
def test_own_execution_whose_answer_was_lost_is_adopted_beside_another_users(
    mode: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    """The answer to the POST is lost; alice's run 5 s earlier is ignored, ours is adopted, owned and terminated."""
    use_connection("aksk", extra=FAST)
    alice = emulator.state.create_execution("wf-long", "alice", started_ago=5)
    emulator.state.add_fault("drop_after", method="POST", path=r"/executions$")
    dag_run = run(load_test_dag(f"aom_wait_deadline_{mode}"))
    assert task_states(dag_run) == {"run": "failed"}
    by_id = {e["execution_id"]: e for e in emulator.state.executions()}
    assert by_id.pop(alice)["status"] == "executing"
    [ours] = by_id.values()
    assert ours["status"] == "cancel", "ours was created by the connection's user: owned, so terminated"
    assert xcom(dag_run, "run", "execution_id") == ours["execution_id"]


@pytest.mark.parametrize("mode", MODES)
def test_adopted_execution_of_unchecked_creator_is_left_running_at_the_timeout(
    mode: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    """Temporary keys cannot be looked up in IAM: the adopted run is followed, never terminated."""
    use_connection("temp_aksk", extra=FAST)
    emulator.state.add_fault("drop_after", method="POST", path=r"/executions$")
    dag_run = run(load_test_dag(f"aom_wait_deadline_{mode}"))
    assert task_states(dag_run) == {"run": "failed"}
    [execution] = emulator.state.executions()
    assert execution["status"] == "executing", "left running"
    assert not any(r["path"].endswith("/terminate") for r in emulator.state.requests())
