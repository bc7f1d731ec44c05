"""Execution statuses: which end the wait, which need a person, and how an ending is described.

AOM documents no enum for an execution's ``status`` (reference §2); these defaults
come from the workflow-status filter of the workflow list, compared
case-insensitively. Anything neither a success nor a failure is still running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_SUCCESS_STATUSES = frozenset({"success"})
DEFAULT_FAILURE_STATUSES = frozenset({"fail", "cancel", "timeout", "approvalfailed"})
#: Running, but waiting for a human (approval, or a paused / failed node to restart or skip).
NEEDS_PERSON_STATUSES = frozenset({"waitapproval", "pausing"})


def normalize(statuses: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    if statuses is None:
        return default
    if isinstance(statuses, str):
        statuses = [statuses]
    return frozenset(s.strip().lower() for s in statuses)


class StatusRules:
    """Classify a status string as ``success``, ``failure`` or ``running``."""

    def __init__(self, success: Iterable[str] | None = None, failure: Iterable[str] | None = None) -> None:
        self.success = normalize(success, DEFAULT_SUCCESS_STATUSES)
        self.failure = normalize(failure, DEFAULT_FAILURE_STATUSES)
        overlap = self.success & self.failure
        if overlap:
            from airflow_provider_aom.exceptions import AomConfigurationError

            raise AomConfigurationError(
                f"success_statuses and failure_statuses share {sorted(overlap)}; a status can be only one."
            )

    def outcome(self, status: str) -> str:
        key = status.lower()
        if key in self.success:
            return "success"
        if key in self.failure:
            return "failure"
        return "running"

    @staticmethod
    def needs_person(status: str) -> bool:
        return status.lower() in NEEDS_PERSON_STATUSES


def failing_node(detail: Mapping[str, Any]) -> str | None:
    """The first node whose status is not a success, as ``node_id (status)``."""
    for node in detail.get("execution_result_list") or []:
        if isinstance(node, Mapping) and str(node.get("status", "")).lower() not in ("success", ""):
            return f"{node.get('node_id')} ({node.get('status')})"
    return None


def describe_nodes(detail: Mapping[str, Any]) -> list[str]:
    """One line per node for the task log."""
    lines = []
    for node in detail.get("execution_result_list") or []:
        if isinstance(node, Mapping):
            output = node.get("output")
            lines.append(f"node {node.get('node_id')}: {node.get('status')}" + (f", output {output}" if output else ""))
    return lines


def approvers(detail: Mapping[str, Any]) -> str:
    names = detail.get("approve_user_name_list") or []
    return ", ".join(str(n) for n in names) if names else "no approvers listed"


class StatusTracker:
    """Logs each status change of one execution once (not every poll), and what a person must do."""

    def __init__(
        self, workflow_id: str, execution_id: str, rules: StatusRules, log: Any, last: str | None = None
    ) -> None:
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.rules = rules
        self.log = log
        self.last = last

    def observe(self, detail: Mapping[str, Any]) -> str:
        """Record a polled detail; returns ``success``, ``failure`` or ``running``."""
        status = str(detail.get("status", ""))
        if status != self.last:
            self.last = status
            if self.rules.needs_person(status):
                self.log.warning(
                    "Execution %s of workflow %s is %s and needs a person (approvers: %s); it waits until then.",
                    self.execution_id,
                    self.workflow_id,
                    status,
                    approvers(detail),
                )
            else:
                self.log.info("Execution %s of workflow %s is %s.", self.execution_id, self.workflow_id, status)
        outcome = self.rules.outcome(status)
        if outcome != "running":
            for line in describe_nodes(detail):
                self.log.info("%s", line)
        return outcome


def failure_message(workflow_id: str, execution_id: str, detail: Mapping[str, Any]) -> str:
    node = failing_node(detail)
    return f"AOM workflow {workflow_id} execution {execution_id} ended with status {detail.get('status')}" + (
        f"; failing node: {node}." if node else "."
    )
