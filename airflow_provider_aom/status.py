"""Execution statuses: which end the wait, which need a person, and how an ending is described.

AOM documents no enum for an execution's ``status`` (reference §2); these defaults
come from the workflow-status filter of the workflow list, compared
case-insensitively. Anything neither a success nor a failure is still running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.execution import approvers, node_lines

DEFAULT_SUCCESS_STATUSES = frozenset({"success"})
DEFAULT_FAILURE_STATUSES = frozenset({"fail", "cancel", "timeout", "approvalfailed"})
#: Running, but waiting for a human (approval, or a paused / failed node to restart or skip).
NEEDS_PERSON_STATUSES = frozenset({"waitapproval", "pausing"})
#: Seconds: a poll that fails this close to a wait's deadline was cut by it, so the wait ends as a timeout.
DEADLINE_SLACK = 0.5


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
                    escape(self.execution_id, 64),
                    escape(self.workflow_id, 64),
                    escape(status, 64),
                    approvers(detail),
                )
            else:
                self.log.info(
                    "Execution %s of workflow %s is %s.",
                    escape(self.execution_id, 64),
                    escape(self.workflow_id, 64),
                    escape(status, 64),
                )
        outcome = self.rules.outcome(status)
        if outcome != "running":
            for line in node_lines(detail):
                self.log.info("%s", line)
        return outcome
