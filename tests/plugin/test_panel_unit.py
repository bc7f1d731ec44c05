"""The panel's decisions (plugins/panel.py) and the plugin's registration, without a server (Airflow 2 and 3)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

from airflow_provider_aom.plugins.panel import TaskExecution, actions, find_action, view


def task(**overrides: Any) -> TaskExecution:
    values: dict[str, Any] = {
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "map_index": -1,
        "workflow_id": "wf",
        "execution_id": "ex",
        "conn_id": "aom_default",
        "project_id": None,
        "owned": True,
        "ti_state": "success",
        "resumable": True,
        **overrides,
    }
    return TaskExecution(**values)


def detail(status: str, *nodes: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": status,
        "execution_result_list": [
            {"node_id": n, "status": s, "begin_time": 1_700_000_000_000, "end_time": 1_700_000_004_200}
            for n, s in nodes
        ],
        "approve_user_name_list": ["ops-lead"],
    }


def names(found: list[Any]) -> list[tuple[str, str | None]]:
    return [(a.action, a.node_id) for a in found]


def test_what_applies_at_each_stop() -> None:
    paused_failed = detail("pausing", ("n1", "success"), ("n2", "fail"))
    assert names(actions(paused_failed, task())) == [("restart", "n2"), ("skip", "n2"), ("terminate", None)]
    paused = detail("pausing", ("n1", "success"), ("p1", "pausing"))
    assert names(actions(paused, task())) == [("continue", "p1"), ("terminate", None)]
    assert names(actions(detail("executing", ("n1", "executing")), task())) == [("terminate", None)]
    assert names(actions(detail("success", ("n1", "success")), task())) == []
    # Not started by this task: never terminated from here.
    assert names(actions(paused, task(owned=False))) == [("continue", "p1")]


def test_a_restart_after_the_task_failed_clears_it_only_when_its_next_try_can_follow() -> None:
    ended = detail("fail", ("n1", "success"), ("n2", "fail"))
    [restart] = actions(ended, task(ti_state="failed", owned=False))
    assert (restart.action, restart.node_id, restart.clears_task) == ("restart", "n2", True)
    [restart] = actions(ended, task(ti_state="failed", resumable=False, owned=False))
    assert restart.clears_task is False
    [restart] = actions(ended, task(ti_state="running", owned=False))
    assert restart.clears_task is False


def test_a_request_must_name_what_applies() -> None:
    available = actions(detail("pausing", ("n2", "fail")), task())
    assert find_action(available, "restart", None) is not None
    assert find_action(available, "restart", "n2") is not None
    assert find_action(available, "restart", "n9") is None
    assert find_action(available, "continue", None) is None
    assert find_action(available, "terminate", "whatever") is not None


def test_the_view_escapes_and_bounds_what_aom_sent() -> None:
    hostile = detail("waitApproval", ("<img src=x onerror=alert(1)>\u202e", "fail"))
    hostile["execution_result_list"][0]["output"] = {"message": "line1\nline2 <script>" + "x" * 5000}
    shown = view(hostile, task(), may_act=False, console_url=None)
    [node] = shown["nodes"]
    assert "\u202e" not in node["node_id"] and "\n" not in node["output"]
    assert len(node["output"]) <= 4 * 601 and node["duration_seconds"] == 4.2
    assert node["begin_time"].startswith("2023-11-14T22:13:20")
    assert shown["approvers"] == ["ops-lead"] and shown["actions"] == [] and shown["running"] is True


def test_the_plugin_module_is_cheap_and_registers_what_this_airflow_supports() -> None:
    code = (
        "import sys, airflow_provider_aom.plugins.aom_panel as p; "
        "print(p.SUPPORTED, len(p.AomExecutionPanelPlugin.fastapi_apps), len(p.AomExecutionPanelPlugin.external_views),"
        " 'fastapi' in sys.modules and 'airflow_provider_aom.plugins.app' in sys.modules,"
        " 'airflow_provider_aom.hooks.aom' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    module = importlib.import_module("airflow_provider_aom.plugins.aom_panel")
    if module.SUPPORTED:
        assert out == ["True", "1", "1", "False", "False"], out
    else:
        assert out == ["False", "0", "0", "False", "False"], out
