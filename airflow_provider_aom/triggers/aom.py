"""``AomWorkflowExecutionTrigger``: waits for an AOM workflow execution on the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aom.execution import failure_message
from airflow_provider_aom.status import StatusRules, StatusTracker


class AomWorkflowExecutionTrigger(BaseTrigger):
    """
    Polls an execution until it ends or an absolute deadline passes; yields one event.

    Event ``status`` is ``success``, ``failure``, ``timeout`` or ``error``; the
    event also carries ``workflow_id``, ``execution_id``, ``execution_status``,
    the final ``detail`` (when known) and a ``message``. Transient errors while
    polling (connection errors, timeouts, 429, 5xx) are retried with backoff;
    a 401 renews the IAM token once. All triggers of a triggerer share one HTTP
    pool and one token per connection.

    :param workflow_id: Workflow of the execution.
    :param execution_id: Execution to wait for.
    :param project_id: Project id (default: the connection's, or resolved from IAM).
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param poll_interval: Seconds between two status requests.
    :param deadline: Absolute deadline (epoch seconds); None waits without limit.
    :param success_statuses: Statuses that end the wait successfully.
    :param failure_statuses: Statuses that end the wait as failed.
    :param cancel_on_kill: Terminate the execution when the deferred task is killed (Airflow ≥ 3.3).
    :param last_status: Last status already logged (so a resumed trigger does not log it again).
    """

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str | None = None,
        aom_conn_id: str = "aom_default",
        poll_interval: float = 15.0,
        deadline: float | None = None,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        cancel_on_kill: bool = True,
        last_status: str | None = None,
    ) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.success_statuses = list(success_statuses) if success_statuses is not None else None
        self.failure_statuses = list(failure_statuses) if failure_statuses is not None else None
        self.cancel_on_kill = cancel_on_kill
        self.last_status = last_status

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workflow_id": self.workflow_id,
                "execution_id": self.execution_id,
                "project_id": self.project_id,
                "aom_conn_id": self.aom_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "success_statuses": self.success_statuses,
                "failure_statuses": self.failure_statuses,
                "cancel_on_kill": self.cancel_on_kill,
                "last_status": self.last_status,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_aom.hooks.aom import AomAsyncHook

        return AomAsyncHook(aom_conn_id=self.aom_conn_id)

    def _event(self, status: str, message: str, detail: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "workflow_id": self.workflow_id,
                "execution_id": self.execution_id,
                "project_id": self.project_id,
                "execution_status": detail.get("status") if detail else self.last_status,
                "detail": detail,
                "message": message,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_aom.exceptions import AomError

        tracker = StatusTracker(
            self.workflow_id,
            self.execution_id,
            StatusRules(self.success_statuses, self.failure_statuses),
            self.log,
            last=self.last_status,
        )
        hook = self._hook()
        try:
            while True:
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event(
                        "timeout",
                        f"Execution {self.execution_id} of workflow {self.workflow_id} did not end before the "
                        f"deadline (last status {tracker.last}).",
                    )
                    return
                detail = await hook.get_execution(self.workflow_id, self.execution_id, self.project_id)
                outcome = tracker.observe(detail)
                self.last_status = tracker.last
                if outcome == "success":
                    yield self._event(
                        "success", f"Execution {self.execution_id} of workflow {self.workflow_id} succeeded.", detail
                    )
                    return
                if outcome == "failure":
                    yield self._event("failure", failure_message(self.workflow_id, self.execution_id, detail), detail)
                    return
                pause = self.poll_interval
                if self.deadline is not None:
                    pause = max(0.0, min(pause, self.deadline - time.time()))
                await asyncio.sleep(pause)
        except AomError as exc:
            yield self._event("error", f"Waiting for execution {self.execution_id} failed: {exc}")

    async def on_kill(self) -> None:
        """Airflow ≥ 3.3: the deferred task was marked failed/success or cleared: stop the remote run."""
        if not self.cancel_on_kill:
            return
        try:
            await self._hook().terminate_execution(self.workflow_id, self.execution_id, self.project_id)
            self.log.info("Terminated execution %s of workflow %s.", self.execution_id, self.workflow_id)
        except Exception as exc:  # best-effort: the kill itself must not fail
            self.log.warning("Could not terminate execution %s: %s", self.execution_id, exc)
