"""``AomWorkflowExecutionSensor``: waits for an execution started elsewhere (e.g. upstream)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, conf

from airflow_provider_aom import DEFAULT_CONN_ID
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomError, AomExecutionFailedError, AomExecutionTimeoutError
from airflow_provider_aom.links.aom import console_url
from airflow_provider_aom.operators.aom import closes_hook
from airflow_provider_aom.vocabulary import (
    DEFAULT_MAX_DETAIL_BYTES,
    EXECUTING_STATUS,
    OnNodeFailure,
    StatusRules,
    WaitEnd,
    check_max_detail_bytes,
)
from airflow_provider_aom.vocabulary import on_node_failure as on_node_failure_policy

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_aom.hooks.aom import AomHook
    from airflow_provider_aom.wait import StatusTracker


class AomWorkflowExecutionSensor(BaseSensorOperator):
    """
    Wait until an AOM workflow execution ends; fail the task if it ends in failure.

    Works in ``poke`` and ``reschedule`` mode, and deferrable (on the triggerer,
    reusing :class:`~airflow_provider_aom.triggers.aom.AomWorkflowExecutionTrigger`).
    On success the final execution detail is pushed under ``execution_detail``.

    :param workflow_id: Workflow of the execution. Templated.
    :param execution_id: Execution to wait for, e.g.
        ``{{ ti.xcom_pull(task_ids='run', key='execution_id') }}``. Templated.
    :param project_id: Project id (default: the connection's). Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param success_statuses: Statuses that count as success (default ``success``).
    :param failure_statuses: Statuses that count as failure (default ``fail``,
        ``cancel``, ``timeout``, ``approvalFailed``).
    :param deferrable: Wait on the triggerer (default: ``[operators] default_deferrable``).
    :param max_detail_bytes: Largest ``execution_detail`` pushed to XCom, in bytes of JSON (default 64 KiB).
    :param on_node_failure: When the execution pauses at a failed node: ``fail`` the task naming
        the node and its output (default), or ``wait`` for someone to restart or skip it (the
        sensor never acts on an execution it did not start).
    """

    template_fields: Sequence[str] = ("workflow_id", "execution_id", "project_id", "aom_conn_id")
    ui_color = "#f5d5d7"

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        on_node_failure: str = OnNodeFailure.FAIL.value,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_detail_bytes = check_max_detail_bytes(max_detail_bytes)
        self.on_node_failure = on_node_failure_policy(on_node_failure, (OnNodeFailure.FAIL, OnNodeFailure.WAIT)).value
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self.success_statuses = list(success_statuses) if success_statuses is not None else None
        self.failure_statuses = list(failure_statuses) if failure_statuses is not None else None
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> AomHook:
        from airflow_provider_aom.hooks.aom import AomHook  # the HTTP stack: not at DAG-parse time

        return AomHook(aom_conn_id=self.aom_conn_id)

    @cached_property
    def rules(self) -> StatusRules:
        return StatusRules(self.success_statuses, self.failure_statuses)

    @cached_property
    def tracker(self) -> StatusTracker:
        from airflow_provider_aom.wait import StatusTracker

        return StatusTracker(self.workflow_id, self.execution_id, self.rules, self.log)

    @closes_hook
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger  # only when deferring

        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.log.info(
            "Waiting for execution %s of workflow %s on the triggerer.",
            escape(self.execution_id, 64),
            escape(self.workflow_id, 64),
        )
        self.defer(
            trigger=AomWorkflowExecutionTrigger(
                workflow_id=self.workflow_id,
                execution_id=self.execution_id,
                project_id=self.project_id,
                aom_conn_id=self.aom_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + timeout,
                success_statuses=self.success_statuses,
                failure_statuses=self.failure_statuses,
                # The sensor watches an execution it did not start: killing it must not stop that run.
                cancel_on_kill=False,
                owned=False,
                max_detail_bytes=self.max_detail_bytes,
                on_node_failure=self.on_node_failure,
                # Only changes away from "executing" are logged, so a wait that moves to another triggerer
                # does not log that line twice (the triggerer knows only these arguments).
                last_status=EXECUTING_STATUS,
            ),
            method_name="execute_complete",
            timeout=None,
        )
        return None

    def poke(self, context: Context) -> bool:
        from airflow_provider_aom.execution import stored
        from airflow_provider_aom.wait import Wait, poll

        # The sensor never acts on an execution it did not start: its policy is fail or wait.
        wait = Wait(self.workflow_id, self.execution_id, self.project_id, policy=OnNodeFailure(self.on_node_failure))
        ended = self.hook.run(poll(wait, self.tracker))
        if ended is None:
            return False
        if ended.end is not WaitEnd.SUCCESS or ended.detail is None:
            raise AomExecutionFailedError(ended.message)
        config = self.hook.config
        url = console_url(
            config.console_url, region=config.region, workflow_id=self.workflow_id, execution_id=self.execution_id
        )
        context["ti"].xcom_push(key="execution_detail", value=stored(ended.detail, self.max_detail_bytes, url))
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        end = WaitEnd.of(event)
        if end is WaitEnd.SUCCESS:
            context["ti"].xcom_push(key="execution_detail", value=event.get("detail"))
            return
        message = str(event.get("message") or f"Unexpected trigger event {escape(event.get('status'), 40)!r}.")
        if end is WaitEnd.FAILURE:
            raise AomExecutionFailedError(message)
        if end is WaitEnd.TIMEOUT:
            raise AomExecutionTimeoutError(f"Sensor timed out: {message}")
        raise AomError(message)
