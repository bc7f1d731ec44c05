"""Operators that start, wait for and stop Huawei Cloud AOM workflow executions."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin, conf

from airflow_provider_aom.execution import DEFAULT_MAX_DETAIL_BYTES, check_max_detail_bytes
from airflow_provider_aom.links.aom import AomWorkflowExecutionLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_aom.hooks.aom import AomHook
    from airflow_provider_aom.status import StatusRules

# Airflow < 3.3 gets common-compat's stand-in mixin, which has no task state store to resume from.
_DURABLE_SUPPORTED = ResumableJobMixin.__module__.startswith("airflow.sdk")
_durable_warned = False

#: task_state_store key holding when the first submit happened (the timeout counts from it).
SUBMITTED_AT_KEY = "aom_submitted_at"
#: task_state_store key: False when the execution was adopted without its creator being checked.
OWNED_KEY = "aom_execution_owned"


class AomExecuteWorkflowOperator(ResumableJobMixin, BaseOperator):
    """
    Start an execution of an AOM automation workflow; optionally wait for its end.

    The execution id is logged, pushed under the XCom key ``execution_id`` right
    after the submit (with the console link), and returned. When waiting, the
    final execution detail is pushed under ``execution_detail`` and a failed
    execution fails the task with its status and failing node.

    :param workflow_id: Id of the workflow (from the AOM workflow list). Templated.
    :param project_id: 32-character project id; default: the connection's, or
        resolved from IAM by region. Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param wait_for_completion: Wait until the execution ends.
    :param poll_interval: Seconds between status requests while waiting.
    :param timeout: Seconds from the first submit after which the execution is
        terminated and the task fails; None waits without limit.
    :param deferrable: Wait on the triggerer, holding no worker slot (default:
        ``[operators] default_deferrable``).
    :param cancel_on_kill: Terminate the execution when the task is killed.
    :param durable: Airflow ≥ 3.3: a retry after a worker crash reattaches to the
        execution it started (still running or succeeded) instead of starting another.
    :param success_statuses: Statuses that count as success (default ``success``).
    :param failure_statuses: Statuses that count as failure (default ``fail``,
        ``cancel``, ``timeout``, ``approvalFailed``). Others mean still running.
    :param max_detail_bytes: Largest ``execution_detail`` pushed to XCom (and carried
        by the trigger event), in bytes of JSON; larger node outputs and node lists are
        cut with a marker pointing to the console (default 64 KiB).

    The task terminates only an execution it can show it started: one whose id the submit
    returned, or one adopted after an ambiguous submit whose ``created_by`` matched the
    connection's user. An adopted execution whose creator could not be checked is followed
    but never terminated; at the timeout the task fails and says it was left running.
    """

    template_fields: Sequence[str] = ("workflow_id", "project_id", "aom_conn_id")
    operator_extra_links = (AomWorkflowExecutionLink(),)
    external_id_key = "aom_execution_id"
    ui_color = "#c7000b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        workflow_id: str,
        project_id: str | None = None,
        aom_conn_id: str = "aom_default",
        wait_for_completion: bool = False,
        poll_interval: float = 15.0,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        durable: bool = True,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        **kwargs: Any,
    ) -> None:
        if _DURABLE_SUPPORTED:
            super().__init__(durable=durable, **kwargs)
        else:
            super().__init__(**kwargs)
        self.durable = durable
        self.workflow_id = workflow_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self.wait_for_completion = wait_for_completion
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds.")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds, or None.")
        self.poll_interval = float(poll_interval)
        self.timeout = timeout
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.success_statuses = list(success_statuses) if success_statuses is not None else None
        self.failure_statuses = list(failure_statuses) if failure_statuses is not None else None
        self.max_detail_bytes = check_max_detail_bytes(max_detail_bytes)
        self._execution_id: str | None = None
        self._submitted_at: float | None = None
        self._announced: str | None = None
        self._finished = False
        #: Whether this task can show it started the execution (see the class docstring).
        self._owned = True

    @cached_property
    def hook(self) -> AomHook:
        from airflow_provider_aom.hooks.aom import AomHook

        return AomHook(aom_conn_id=self.aom_conn_id)

    @cached_property
    def rules(self) -> StatusRules:
        from airflow_provider_aom.status import StatusRules

        return StatusRules(self.success_statuses, self.failure_statuses)

    # ------------------------------------------------------------------ execute

    def execute(self, context: Context) -> str:
        global _durable_warned
        if self.durable and not _DURABLE_SUPPORTED and not _durable_warned:
            _durable_warned = True
            warnings.warn(
                "durable has no effect below Airflow 3.3: a retry after a worker crash starts a new execution. "
                "Use deferrable=True so the wait survives worker loss.",
                UserWarning,
                stacklevel=2,
            )
        result: str = self.execute_resumable(context)
        return result

    # ResumableJobMixin: submit, inspect a stored execution, wait, result.

    def submit_job(self, context: Context) -> str:
        self._submitted_at = time.time()
        started = self.hook.start_execution(self.workflow_id, project_id=self.project_id)
        self._owned = started.owned
        store = context.get("task_state_store")
        if store is not None:
            store.set(SUBMITTED_AT_KEY, self._submitted_at)
            store.set(OWNED_KEY, started.owned)
        self.log.info("Started execution %s of AOM workflow %s.", started.execution_id, self.workflow_id)
        return started.execution_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        status: str = self.hook.get_execution(self.workflow_id, str(external_id), self.project_id)["status"]
        self.log.info("Execution %s from an earlier try is %s.", external_id, status)
        return status

    def is_job_active(self, status: str) -> bool:
        return self.rules.outcome(status) == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return self.rules.outcome(status) == "success"

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        # Returns the result too: the mixin returns this method's value when it reattaches.
        execution_id = str(external_id)
        self._announce(context, execution_id)
        store = context.get("task_state_store")
        if store is not None and store.get(OWNED_KEY) is False:
            self._owned = False
        if not self.wait_for_completion:
            return execution_id
        deadline = self._deadline(context)
        if self.deferrable:
            from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger

            self.defer(
                trigger=AomWorkflowExecutionTrigger(
                    workflow_id=self.workflow_id,
                    execution_id=execution_id,
                    project_id=self.project_id,
                    aom_conn_id=self.aom_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    success_statuses=self.success_statuses,
                    failure_statuses=self.failure_statuses,
                    cancel_on_kill=self.cancel_on_kill and self._owned,
                    owned=self._owned,
                    max_detail_bytes=self.max_detail_bytes,
                ),
                method_name="execute_complete",
                # The trigger enforces the deadline and execute_complete terminates: a framework
                # timeout would skip both.
                timeout=None,
            )
        return self._wait(context, execution_id, deadline)

    def get_job_result(self, external_id: Any, context: Context) -> str:
        execution_id = str(external_id)
        self._announce(context, execution_id)
        return execution_id

    # ------------------------------------------------------------------ waiting

    def _announce(self, context: Context, execution_id: str) -> None:
        """Push the id and the console link at once, so both show while the task runs or is deferred."""
        self._execution_id = execution_id
        if self._announced == execution_id:
            return
        ti = context["ti"]
        ti.xcom_push(key="execution_id", value=execution_id)
        AomWorkflowExecutionLink.persist(context, self._console_url(execution_id))
        self._announced = execution_id

    def _deadline(self, context: Context) -> float | None:
        if self.timeout is None:
            return None
        store = context.get("task_state_store")
        first = store.get(SUBMITTED_AT_KEY) if store is not None else None
        start = float(first) if isinstance(first, (int, float)) else (self._submitted_at or time.time())
        return start + self.timeout

    def _wait(self, context: Context, execution_id: str, deadline: float | None) -> str:
        from airflow_provider_aom.exceptions import AomError
        from airflow_provider_aom.status import DEADLINE_SLACK, StatusTracker

        tracker = StatusTracker(self.workflow_id, execution_id, self.rules, self.log)
        while True:
            if deadline is not None and time.time() >= deadline:
                self._on_deadline(execution_id, tracker.last)
            try:
                # The poll itself ends by the deadline: a slow answer cannot hold the task past it.
                detail = self.hook.get_execution(self.workflow_id, execution_id, self.project_id, deadline=deadline)
            except AomError:
                if deadline is not None and time.time() >= deadline - DEADLINE_SLACK:
                    self._on_deadline(execution_id, tracker.last)
                raise
            outcome = tracker.observe(detail)
            if outcome != "running":
                return self._finish(context, execution_id, outcome, detail)
            pause = (
                self.poll_interval if deadline is None else max(0.0, min(self.poll_interval, deadline - time.time()))
            )
            time.sleep(pause)

    def _finish(self, context: Context, execution_id: str, outcome: str, detail: dict[str, Any]) -> str:
        from airflow_provider_aom.exceptions import AomExecutionFailedError
        from airflow_provider_aom.execution import bounded, failure_message

        self._finished = True
        context["ti"].xcom_push(
            key="execution_detail", value=bounded(detail, self.max_detail_bytes, self._console_url(execution_id))
        )
        if outcome == "failure":
            raise AomExecutionFailedError(failure_message(self.workflow_id, execution_id, detail))
        self.log.info("Execution %s of AOM workflow %s succeeded.", execution_id, self.workflow_id)
        return execution_id

    def _console_url(self, execution_id: str) -> str:
        from airflow_provider_aom.links.aom import console_url

        config = self.hook.config
        return console_url(
            config.console_url, region=config.region, workflow_id=self.workflow_id, execution_id=execution_id
        )

    def _on_deadline(self, execution_id: str, last_status: str | None) -> None:
        from airflow_provider_aom.escaping import escape
        from airflow_provider_aom.exceptions import AomExecutionTimeoutError

        self._finished = True
        what = (
            f"AOM workflow {self.workflow_id} execution {execution_id} did not end within {self.timeout} s of the "
            f"submit (last status {escape(last_status, 64)})"
        )
        if not self._owned:
            raise AomExecutionTimeoutError(
                f"{what}. It was left running: this task adopted it after an ambiguous submit and could not check "
                "who created it, so it does not terminate it. Stop it in the AOM console if it is this task's."
            )
        self._terminate(execution_id, reason="the timeout passed")
        raise AomExecutionTimeoutError(f"{what}; it was terminated.")

    def _terminate(self, execution_id: str, *, reason: str) -> None:
        try:
            self.hook.terminate_execution(self.workflow_id, execution_id, self.project_id)
            self.log.warning("Terminated execution %s of AOM workflow %s: %s.", execution_id, self.workflow_id, reason)
        except Exception as exc:  # best-effort: report the original problem, not this one
            self.log.warning("Could not terminate execution %s (%s): %s", execution_id, reason, exc)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Resume after the trigger: succeed, or fail with what happened."""
        from airflow_provider_aom.exceptions import AomError

        execution_id = str(event.get("execution_id"))
        self._execution_id = execution_id
        self._owned = event.get("owned") is not False
        status = event.get("status")
        if status in ("success", "failure") and isinstance(event.get("detail"), dict):
            return self._finish(context, execution_id, str(status), event["detail"])
        if status == "timeout":
            self._on_deadline(execution_id, event.get("execution_status"))
        raise AomError(str(event.get("message") or f"Unexpected trigger event {status!r}."))

    def on_kill(self) -> None:
        if not (self.cancel_on_kill and self._execution_id and self.wait_for_completion and not self._finished):
            return
        if not self._owned:
            self.log.warning(
                "Leaving execution %s of AOM workflow %s running: this task adopted it without checking its creator.",
                self._execution_id,
                self.workflow_id,
            )
            return
        self._terminate(self._execution_id, reason="the task was killed")


class AomTerminateWorkflowExecutionOperator(BaseOperator):
    """
    Terminate a running AOM workflow execution (it ends as ``cancel``).

    An execution that already ended is left as it is and the task succeeds.

    :param workflow_id: Workflow of the execution. Templated.
    :param execution_id: Execution to stop, e.g. ``{{ ti.xcom_pull(task_ids='run', key='execution_id') }}``. Templated.
    :param project_id: Project id (default: the connection's). Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    """

    template_fields: Sequence[str] = ("workflow_id", "execution_id", "project_id", "aom_conn_id")
    ui_color = "#c7000b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str | None = None,
        aom_conn_id: str = "aom_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id

    def execute(self, context: Context) -> None:
        from airflow_provider_aom.exceptions import AomBadRequestError
        from airflow_provider_aom.hooks.aom import AomHook
        from airflow_provider_aom.status import StatusRules

        hook = AomHook(aom_conn_id=self.aom_conn_id)
        try:
            hook.terminate_execution(self.workflow_id, self.execution_id, self.project_id)
        except AomBadRequestError:
            # AOM refuses to terminate an execution that already ended: that is not a failure here.
            status = hook.get_execution(self.workflow_id, self.execution_id, self.project_id)["status"]
            if StatusRules().outcome(status) == "running":
                raise
            self.log.info("Execution %s already ended as %s; nothing to terminate.", self.execution_id, status)
            return
        self.log.info("Terminated execution %s of AOM workflow %s.", self.execution_id, self.workflow_id)
