"""Fault injection, randomized campaign, secret hygiene and hostile input tests.

Small helpers shared by these modules: reading the emulator's request log by exact
path, and waiting until requests the emulator is still holding (``delay`` faults)
have been answered, so counts are final before a test asserts on them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_aom.emulator import DEFAULT_PROJECT_ID, EmulatorState
from tests.polling import wait_for

PROJECT = DEFAULT_PROJECT_ID

#: Connection extras that make every retry fast. The timeout stays generous: the machine may be busy.
FAST: dict[str, Any] = {"timeout": 2.0, "retry_attempts": 4, "retry_max_wait": 0.05, "retry_total": 10}
#: A ``delay`` fault holds a request for DELAY seconds, past a client timeout of DELAY_TIMEOUT.
DELAY = 1.0
DELAY_TIMEOUT = 0.5


def fault_classes(delay: float, retry_after: float) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every fault class the submit and read tests inject: name -> (emulator fault kind, its options)."""
    return {
        "delay": ("delay", {"delay": delay}),
        "drop_before": ("drop_before", {}),
        "drop_after": ("drop_after", {}),
        "429": ("status", {"status": 429, "retry_after": retry_after}),
        **{str(status): ("status", {"status": status}) for status in (500, 502, 503, 504)},
        "malformed": ("malformed", {}),
        "truncated": ("truncated", {}),
        "expire_token": ("expire_token", {}),
    }


def segment(value: str) -> str:
    """How an id must appear on the wire: exactly one percent-encoded path segment."""
    return quote(value, safe="~")


def executions_path(workflow_id: str, project_id: str = PROJECT) -> str:
    """Raw path of the execute POST and of the execution-list GET."""
    return f"/v1/{project_id}/cms/workflow/{segment(workflow_id)}/executions"


def status_path(workflow_id: str, execution_id: str, project_id: str = PROJECT) -> str:
    return f"{executions_path(workflow_id, project_id)}/{segment(execution_id)}/status"


def logged(state: EmulatorState, method: str, path: str) -> list[dict[str, Any]]:
    """Request-log records with exactly this method and raw path, oldest first."""
    return [r for r in state.requests() if r["method"] == method and r["path"] == path]


def settle(state: EmulatorState, delays_added: int) -> None:
    """Wait until every request held by a consumed ``delay`` fault has been handled and logged."""
    remaining = sum(f["remaining"] for f in state.faults() if f["kind"] == "delay")
    consumed = delays_added - remaining
    wait_for(
        lambda: sum(1 for r in state.requests() if r["fault"] == "delay") >= consumed,
        what=f"{consumed} delayed request(s) to be handled",
    )
