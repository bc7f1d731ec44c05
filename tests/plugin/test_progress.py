"""Node progress in the task log (wait.py's StatusTracker): one short line as each node run ends, in every wait mode.

Unit tests drive the tracker with details; DAG-level tests run the sync and the deferred wait on real
Airflow (``dag.test()``, the trigger in-process) against the emulator and read the task log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.vocabulary import StatusRules
from airflow_provider_aom.wait import MAX_PROGRESS_LINES, StatusTracker, output_excerpt
from tests.conftest import UseConnection

LOGGER = "test.progress"


def node(node_id: str, status: str, begin: int, end: int, run: str = "r1", output: Any = None) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "status": status,
        "begin_time": begin,
        "end_time": end,
        "function_execution_id": run,
        "output": output or {},
    }


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("node ")]


def test_one_line_per_node_run_as_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StatusTracker("wf", "ex", StatusRules(), logging.getLogger(LOGGER))
    t0 = 1_700_000_000_000
    polls = [
        {"status": "executing", "execution_result_list": [node("patch-hosts", "executing", t0, 0)]},
        {"status": "executing", "execution_result_list": [node("patch-hosts", "success", t0, t0 + 42_000)]},
        {
            "status": "executing",
            "execution_result_list": [
                node("patch-hosts", "success", t0, t0 + 42_000),
                node("reboot", "executing", t0 + 42_000, 0),
            ],
        },
        {
            "status": "pausing",
            "execution_result_list": [
                node("patch-hosts", "success", t0, t0 + 42_000),
                node("reboot", "fail", t0 + 42_000, t0 + 45_500, output={"error_msg": "exit 1\n<b>x</b>"}),
            ],
        },
        # Restarted: a new run of the same node, which ends once more.
        {
            "status": "success",
            "execution_result_list": [
                node("patch-hosts", "success", t0, t0 + 42_000),
                node("reboot", "success", t0 + 50_000, t0 + 61_000, run="r2"),
            ],
        },
    ]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for detail in polls:
            tracker.observe(detail)
    assert lines(caplog)[:3] == [
        "node 1/1 patch-hosts success in 42 s",
        "node 2/2 reboot fail in 3.5 s: exit 1\\x0a<b>x</b>",
        "node 2/2 reboot success in 11 s",
    ]
    progress = lines(caplog)[:3]
    assert all(len(line) < 200 and "\n" not in line for line in progress)


def test_progress_lines_are_bounded_in_total(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StatusTracker("wf", "ex", StatusRules(), logging.getLogger(LOGGER))
    t0 = 1_700_000_000_000
    nodes = [node(f"n{i}", "success", t0, t0 + 1000, run=f"r{i}") for i in range(MAX_PROGRESS_LINES + 50)]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker.observe({"status": "executing", "execution_result_list": nodes})
        tracker.observe({"status": "executing", "execution_result_list": nodes})
    messages = [r.getMessage() for r in caplog.records]
    assert sum(1 for m in messages if re.match(r"node \d+/\d+ ", m)) == MAX_PROGRESS_LINES
    assert sum(1 for m in messages if m.startswith("More nodes ended")) == 1


def test_hostile_node_fields_are_escaped_and_cut(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StatusTracker("wf", "ex", StatusRules(), logging.getLogger(LOGGER))
    t0 = 1_700_000_000_000
    bad = node("x\r\nFAKE LINE" + "y" * 500, "fail\u202e", t0, t0 + 1, output={"message": "m" * 10_000})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker.observe({"status": "executing", "execution_result_list": [bad]})
    [line] = lines(caplog)
    assert "\r" not in line and "\n" not in line and "\u202e" not in line
    assert len(line) < 320


def test_failure_message_has_the_failed_nodes_output_excerpt() -> None:
    tracker = StatusTracker("wf", "ex", StatusRules(), logging.getLogger(LOGGER))
    detail = {
        "status": "fail",
        "execution_result_list": [
            {"node_id": "n1", "status": "success", "output": {"message": "fine"}},
            {"node_id": "n2", "status": "fail", "output": {"error_msg": "disk full\n" + "z" * 1000}},
        ],
    }
    message = tracker.failure_message(detail)
    assert message.startswith("AOM workflow wf execution ex ended with status fail; failing node: n2 (fail).")
    assert "Output: disk full\\x0a" in message and len(message) < 500
    assert output_excerpt({"code": 1}) == '{"code": 1}' and output_excerpt(None) == ""


# --------------------------------------------------------------------------- on real Airflow


def _mode(deferrable: bool) -> str:
    return "deferrable" if deferrable else "sync"


def task_log(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """The task's log lines, each once: the records logging saw, else (structlog on Airflow 3) stdout.

    Airflow 2's ``dag.test()`` also echoes every record to stdout: reading both would count each line twice.
    """
    out = capsys.readouterr().out
    recorded = caplog.text
    return recorded if re.search(r"node \d+/\d+ ", recorded) else out


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_task_log_has_one_line_per_node(
    deferrable: bool,
    use_connection: UseConnection,
    quick_workflows: AomEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.dags.dagrun import load_test_dag, run, task_states

    caplog.set_level("INFO")
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_wait_success_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "success"}
    text = task_log(caplog, capsys)
    # wf-quick: node_1 then node_2, each once however many polls saw it ended.
    found = re.findall(r"node (\d)/(\d) (node_\d) (\w+) in [\d.]+ s", text)
    assert [(f[2], f[3]) for f in found] == [("node_1", "success"), ("node_2", "success")], text[-3000:]
    assert found[1][:2] == ("2", "2")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_failed_node_output_is_in_the_failure_message_and_the_log(
    deferrable: bool,
    use_connection: UseConnection,
    quick_workflows: AomEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.dags.dagrun import load_test_dag, run, task_states

    caplog.set_level("INFO")
    use_connection("aksk")
    dag_run = run(load_test_dag(f"aom_wait_failure_{_mode(deferrable)}"))
    assert task_states(dag_run) == {"run": "failed"}
    text = task_log(caplog, capsys)
    found = re.findall(r"node \d/\d (node_\d) (\w+) in [\d.]+ s", text)
    assert found == [("node_1", "success"), ("node_2", "fail")], text[-3000:]
    assert "node 2/2 node_2 fail in" in text and ": script exited with code 1" in text
    assert "failing node: node_2 (fail). Output: script exited with code 1" in text
