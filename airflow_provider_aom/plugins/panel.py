"""What the AOM execution panel shows and offers, decided from an execution detail (no I/O, no Airflow, no FastAPI).

The plugin's app (:mod:`~airflow_provider_aom.plugins.app`) reads the task instance and the execution and
hands them here: :func:`actions` says which buttons apply now, :func:`view` builds the JSON the page and
API clients read. Every string that came from AOM is escaped (:func:`~airflow_provider_aom.escaping.escape`:
no control or bidirectional characters) and cut to a bound here; the page puts it in the DOM as text only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.node_ops import stopped_at
from airflow_provider_aom.vocabulary import NodeAction, Outcome, StatusRules, is_epoch_ms

#: Characters of a node output the panel shows (the console has the rest).
OUTPUT_CHARS = 600
#: Nodes the panel lists at most (AOM documents up to 200).
MAX_NODES = 200
#: Approvers listed at most.
MAX_APPROVERS = 20
#: What the panel's buttons send (``action`` of the API's POST body).
ACTIONS = ("restart", "skip", "continue", "terminate")
#: Task-instance states in which a restart re-attaches: the task ended, so it is cleared to follow the execution.
ENDED_TI_STATES = frozenset({"failed"})


@dataclass(frozen=True)
class TaskExecution:
    """The execution a task instance shows, and what the server knows about it (never from the request)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    workflow_id: str
    execution_id: str
    conn_id: str
    project_id: str | None
    #: The task can show it started this execution (the operator's own rule): only then may it be terminated.
    owned: bool
    #: The task instance's state (``failed``, ``running``, ``deferred``...).
    ti_state: str | None
    #: The next try of the task follows this execution: its id is the task's stored external id.
    resumable: bool
    task_type: str = ""


@dataclass(frozen=True)
class Action:
    action: str
    node_id: str | None
    label: str
    #: A restart that also clears the ended task instance so its next try follows this execution.
    clears_task: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "node_id": self.node_id,
            "label": self.label,
            "clears_task": self.clears_task,
        }


def actions(detail: Mapping[str, Any], task: TaskExecution, rules: StatusRules | None = None) -> list[Action]:
    """The operations that apply to the execution now (for a user who may edit the task instance)."""
    rules = rules or StatusRules()
    status = str(detail.get("status", ""))
    found: list[Action] = []
    stop = stopped_at(detail)
    if stop is not None:
        node = escape(stop.node_id, 64)
        if stop.failed:
            clears = (task.ti_state or "") in ENDED_TI_STATES and task.resumable
            label = f"Restart {node}" + (" and clear the task" if clears else "")
            found.append(Action(NodeAction.RESTART.value, stop.node_id, label, clears))
            if stop.paused:
                found.append(Action(NodeAction.SKIP.value, stop.node_id, f"Skip {node}"))
        elif stop.paused:
            found.append(Action(NodeAction.CONTINUE.value, stop.node_id, f"Continue past {node}"))
    if task.owned and rules.outcome(status) is Outcome.RUNNING:
        found.append(Action("terminate", None, "Terminate the execution"))
    return found


def find_action(available: list[Action], action: str, node_id: str | None) -> Action | None:
    """The available action a request names (``node_id`` may be left out: the one the execution is stopped at)."""
    for candidate in available:
        if candidate.action != action:
            continue
        if action == "terminate" or node_id in (None, "", candidate.node_id):
            return candidate
    return None


def _iso(value: Any) -> str | None:
    if not is_epoch_ms(value) or value == 0:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(value / 1000, tz=timezone.utc).isoformat()


def _seconds(begin: Any, end: Any) -> float | None:
    if not (is_epoch_ms(begin) and is_epoch_ms(end)) or begin == 0 or end == 0 or end < begin:
        return None
    return round(float(end - begin) / 1000, 1)


def output_text(output: Any) -> str:
    """A node output as bounded, escaped text (its ``error_msg`` / ``message`` first when it has one)."""
    from airflow_provider_aom.wait import output_excerpt

    return output_excerpt(output, OUTPUT_CHARS)


def view(
    detail: Mapping[str, Any],
    task: TaskExecution,
    *,
    may_act: bool,
    console_url: str | None,
    rules: StatusRules | None = None,
) -> dict[str, Any]:
    """The API's answer: the execution, its nodes as a timeline, and what this user may do now."""
    rules = rules or StatusRules()
    status = str(detail.get("status", ""))
    nodes = [n for n in detail.get("execution_result_list") or [] if isinstance(n, Mapping)]
    shown = []
    for node in nodes[:MAX_NODES]:
        begin, end = node.get("begin_time"), node.get("end_time")
        shown.append(
            {
                "node_id": escape(node.get("node_id", ""), 64),
                "status": escape(node.get("status", ""), 32),
                "begin_time": _iso(begin),
                "end_time": _iso(end),
                "duration_seconds": _seconds(begin, end),
                "output": output_text(node.get("output")),
            }
        )
    outcome = rules.outcome(status)
    names = detail.get("approve_user_name_list") or []
    return {
        "dag_id": task.dag_id,
        "run_id": task.run_id,
        "task_id": task.task_id,
        "map_index": task.map_index,
        "workflow_id": task.workflow_id,
        "execution_id": task.execution_id,
        "status": escape(status, 32),
        "outcome": outcome.value,
        "running": outcome is Outcome.RUNNING,
        "begin_time": _iso(detail.get("begin_time")),
        "end_time": _iso(detail.get("end_time")),
        "nodes": shown,
        "nodes_not_shown": max(0, len(nodes) - MAX_NODES),
        "approvers": [escape(n, 64) for n in names[:MAX_APPROVERS] if isinstance(n, str)]
        if status.lower() == "waitapproval"
        else [],
        "console_url": console_url,
        "owned": task.owned,
        "task_state": task.ti_state,
        "actions": [a.as_json() for a in actions(detail, task, rules)] if may_act else [],
        "may_act": may_act,
    }
