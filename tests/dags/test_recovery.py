"""Recovering at the failed node on real Airflow (3.x and 2.11), sync and deferrable, against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.hooks.aom import AomHook
from tests.conftest import UseConnection
from tests.dags.dagrun import load_example, load_test_dag, run, task_states, try_numbers, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

MODES = ["sync", "deferrable"]


def posts(emulator: AomEmulator, suffix: str) -> list[dict[str, Any]]:
    return [r for r in emulator.state.requests() if r["method"] == "POST" and r["path"].endswith(suffix)]


@pytest.mark.parametrize("mode", MODES)
def test_retry_from_failure_restarts_the_failed_node_instead_of_starting_again(
    mode: str, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    """Try 1: the execution ends fail at node_2. Try 2: node_2 restarted, same execution, success."""
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_retry_from_failure_{mode}"))
    assert task_states(dag_run) == {"run": "success"}
    assert try_numbers(dag_run) == {"run": 2}
    [execution] = quick_workflows.state.executions()
    assert execution["status"] == "success"
    assert len(posts(quick_workflows, "/executions")) == 1, "exactly one execute POST"
    assert [(o["action"], o["node_id"]) for o in quick_workflows.state.operations(execution["execution_id"])] == [
        ("restart", "node_2")
    ]
    assert xcom(dag_run, "run", "execution_id") == execution["execution_id"]
    assert xcom(dag_run, "run", "node_outputs")["node_2"]["code"] == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("policy", "state", "node_2", "operations"),
    [
        ("restart", "success", "success", [("restart", "node_2")]),
        ("skip", "success", "skip", [("skip", "node_2")]),
        ("fail", "failed", "fail", []),
    ],
)
def test_on_node_failure(
    mode: str,
    policy: str,
    state: str,
    node_2: str,
    operations: list[tuple[str, str]],
    use_connection: UseConnection,
    quick_workflows: AomEmulator,
) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_node_failure_{policy}_{mode}"))
    assert task_states(dag_run) == {"run": state}
    [execution] = quick_workflows.state.executions()
    assert {n["node_id"]: n["status"] for n in execution["execution_result_list"]}["node_2"] == node_2
    assert [
        (o["action"], o["node_id"]) for o in quick_workflows.state.operations(execution["execution_id"])
    ] == operations
    detail = xcom(dag_run, "run", "execution_detail")
    assert detail["status"] == ("success" if state == "success" else "pausing")
    if policy == "fail":
        assert execution["status"] == "pausing", "the task failed; the execution waits for a person"


def test_restart_whose_answer_was_lost_is_not_sent_twice(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    """on_node_failure=restart, the answer to the restart is lost: the re-read shows it worked; one POST."""
    use_connection("aksk", extra={"timeout": 2, "retry_max_wait": 0.05})
    quick_workflows.state.add_fault("drop_after", method="POST", path="/operation$")
    dag_run = run(load_test_dag("aom_node_failure_restart_sync"))
    assert task_states(dag_run) == {"run": "success"}
    assert len(posts(quick_workflows, "/operation")) == 1


def test_reuse_existing_run_starts_nothing_new(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk")
    running = AomHook().execute_workflow("wf-long")
    dag_run = run(load_test_dag("aom_reuse_existing_run"))
    assert task_states(dag_run) == {"run": "success"}
    assert xcom(dag_run, "run") == running
    assert len(posts(emulator, "/executions")) == 1, "only the execution started before the DAG"


@pytest.mark.parametrize(("name", "state"), [("nightly-patching", "success"), ("no-such-workflow", "failed")])
def test_workflow_by_name(name: str, state: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk")
    dag_run = run(load_test_dag("aom_by_name"), conf={"workflow_name": name})
    assert task_states(dag_run) == {"run": state}
    if state == "failed":
        assert posts(emulator, "/executions") == [], "nothing is started for a name that resolves to nothing"
    else:
        [execution] = emulator.state.executions()
        assert execution["workflow_id"] == "wf-nightly"


def test_example_recover_dag(use_connection: UseConnection, emulator: AomEmulator) -> None:
    """The example: schedule taken over, a failed node restarted, a pause node passed, outputs read."""
    use_connection("aksk")
    dag_run = run(load_example("example_aom_recover"))
    assert set(task_states(dag_run).values()) == {"success"}
    by_workflow = {e["workflow_id"]: e for e in emulator.state.executions()}
    assert {w: e["status"] for w, e in by_workflow.items()} == {"wf-flaky": "success", "wf-gated": "success"}
    flaky, gated = (by_workflow[w]["execution_id"] for w in ("wf-flaky", "wf-gated"))
    assert [o["action"] for o in emulator.state.operations(flaky)] == ["restart"]
    assert [(o["action"], o["node_id"]) for o in emulator.state.operations(gated)] == [("continue", "pause_1")]
    assert [r["query"] for r in emulator.state.requests() if r["method"] == "PUT"] == ["action=disable"]
    assert xcom(dag_run, "read_outputs", "node_outputs")["node_2"]["code"] == 0
    assert xcom(dag_run, "pass_the_gate", "node_id") == "pause_1"
