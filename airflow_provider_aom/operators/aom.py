"""Operators that start, wait for, recover, read and stop Huawei Cloud AOM workflow executions."""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin, conf

from airflow_provider_aom import DEFAULT_CONN_ID
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomBadRequestError,
    AomConfigurationError,
    AomError,
    AomExecutionFailedError,
    AomExecutionTimeoutError,
)
from airflow_provider_aom.links.aom import AomWorkflowExecutionLink, console_url
from airflow_provider_aom.vocabulary import (
    DEFAULT_MAX_DETAIL_BYTES,
    EXECUTING_STATUS,
    NodeAction,
    OnNodeFailure,
    Outcome,
    StatusRules,
    WaitEnd,
    check_max_detail_bytes,
)
from airflow_provider_aom.vocabulary import on_node_failure as on_node_failure_policy

# Only what builds an operator is imported above: DAG files import this module at parse time. The
# call machinery (api, submit, node_ops, wait, execution details, the hooks) is imported when a task runs.

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_aom.hooks.aom import AomHook
    from airflow_provider_aom.submit import StartedExecution

log = logging.getLogger(__name__)

# Airflow < 3.3 gets common-compat's stand-in mixin, which has no task state store to resume from.
_DURABLE_SUPPORTED = ResumableJobMixin.__module__.startswith("airflow.sdk")
_durable_warned = False

#: task_state_store key holding when the first submit happened (the timeout counts from it).
SUBMITTED_AT_KEY = "aom_submitted_at"
#: task_state_store key holding when the current submit's POST was sent, until its answer is stored: a try
#: that finds it was preceded by one lost mid-submit (see :func:`~airflow_provider_aom.submit.pending_submit`).
SUBMIT_SENT_KEY = "aom_submit_sent_at"
#: task_state_store key: False when the execution was adopted without its creator being checked.
OWNED_KEY = "aom_execution_owned"
#: reuse_existing_run: running executions (newest first) whose detail is read before one is followed.
REUSE_CANDIDATES = 3


P = ParamSpec("P")
R = TypeVar("R")


def closes_hook(method: Callable[P, R]) -> Callable[P, R]:
    """Close the task's ``hook`` (its sockets) when ``method`` ends, however it ends (deferring too).

    The hook stays usable: ``on_kill`` after the end, or a resumed task, opens new sockets.
    """

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        finally:
            hook = args[0].__dict__.get("hook")  # the cached_property, only if it was made
            if hook is not None:
                hook.close()

    return run


def first_try_started(context: Mapping[str, Any]) -> float:
    """When this task instance's first try started (epoch seconds), for ``retry_from_failure``.

    Airflow 2.11 keeps earlier tries in ``task_instance_history``; where a task cannot read the
    metadata DB (Airflow 3 before 3.3, which also has no task state store), the DAG run's start is
    the closest bound: an execution of the same workflow started meanwhile by another task of the
    same run would count too (the creator check still applies).
    """
    ti, dag_run = context["ti"], context.get("dag_run")
    try:
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session

        with create_session() as session:
            first = (
                session.query(TaskInstanceHistory.start_date)
                .filter_by(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index, try_number=1)
                .scalar()
            )
        if first is not None:
            return float(first.timestamp())
    except Exception:
        log.debug("No task_instance_history to read; using the DAG run's start.", exc_info=True)
    start = getattr(dag_run, "start_date", None) or getattr(ti, "start_date", None)
    return float(start.timestamp()) if start is not None else time.time()


class _AomExecutionWait(BaseOperator):
    """The waiting every AOM operator that follows an execution shares (sync, deferrable, on node failure).

    Not an operator of its own: :class:`AomExecuteWorkflowOperator` and
    :class:`AomWorkflowNodeActionOperator` set it up with :meth:`_setup_wait`.
    """

    operator_extra_links = (AomWorkflowExecutionLink(),)
    ui_color = "#c7000b"
    ui_fgcolor = "#ffffff"

    workflow_id: str | None
    project_id: str | None
    aom_conn_id: str

    def _setup_wait(
        self,
        *,
        wait_for_completion: bool,
        poll_interval: float,
        timeout: float | None,
        deferrable: bool,
        cancel_on_kill: bool,
        success_statuses: Sequence[str] | None,
        failure_statuses: Sequence[str] | None,
        max_detail_bytes: int,
        on_node_failure: str,
        max_node_restarts: int,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds.")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds, or None.")
        if isinstance(max_node_restarts, bool) or not isinstance(max_node_restarts, int) or max_node_restarts < 0:
            raise ValueError("max_node_restarts must be a whole number, 0 or more.")
        self.wait_for_completion = wait_for_completion
        self.poll_interval = float(poll_interval)
        self.timeout = timeout
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.success_statuses = list(success_statuses) if success_statuses is not None else None
        self.failure_statuses = list(failure_statuses) if failure_statuses is not None else None
        self.max_detail_bytes = check_max_detail_bytes(max_detail_bytes)
        self.on_node_failure = on_node_failure_policy(on_node_failure).value
        self.max_node_restarts = max_node_restarts
        self._execution_id: str | None = None
        self._announced: str | None = None
        self._finished = False
        #: Whether this task can show it started the execution: only then does it terminate it.
        self._owned = True
        #: Restarts sent per node by this wait (on_node_failure="restart").
        self._restarts: dict[str, int] = {}

    @cached_property
    def hook(self) -> AomHook:
        from airflow_provider_aom.hooks.aom import AomHook  # the HTTP stack: not at DAG-parse time

        return AomHook(aom_conn_id=self.aom_conn_id)

    @cached_property
    def rules(self) -> StatusRules:
        return StatusRules(self.success_statuses, self.failure_statuses)

    @property
    def _workflow(self) -> str:
        assert self.workflow_id, "the workflow id is known once the task runs"
        return self.workflow_id

    def _console_url(self, execution_id: str) -> str:
        config = self.hook.config
        return console_url(
            config.console_url, region=config.region, workflow_id=self._workflow, execution_id=execution_id
        )

    def _announce(self, context: Context, execution_id: str) -> None:
        """Push the id and the console link at once, so both show while the task runs or is deferred."""
        self._execution_id = execution_id
        if self._announced == execution_id:
            return
        context["ti"].xcom_push(key="execution_id", value=execution_id)
        AomWorkflowExecutionLink.persist(context, self._console_url(execution_id))
        self._announced = execution_id

    def _wait_or_defer(self, context: Context, execution_id: str, deadline: float | None) -> str:
        if not self.deferrable:
            return self._wait(context, execution_id, deadline)
        from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger  # only when deferring

        self.defer(
            trigger=AomWorkflowExecutionTrigger(
                workflow_id=self._workflow,
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
                on_node_failure=self.on_node_failure,
                max_node_restarts=self.max_node_restarts,
                node_restarts=dict(self._restarts),
                last_status=EXECUTING_STATUS,
                terminate_at_deadline=self._owned,
            ),
            method_name="execute_complete",
            # The trigger enforces the deadline and terminates (execute_complete again if it could not):
            # a framework timeout would skip both.
            timeout=None,
        )
        raise AssertionError("unreachable")  # pragma: no cover - defer() raises

    def _wait(self, context: Context, execution_id: str, deadline: float | None) -> str:
        from airflow_provider_aom.wait import StatusTracker, Wait, follow_execution

        wait = Wait(
            self._workflow,
            execution_id,
            self.project_id,
            poll_interval=self.poll_interval,
            deadline=deadline,
            policy=OnNodeFailure(self.on_node_failure),
            max_node_restarts=self.max_node_restarts,
            # Shared, so a deferral after restarts carries their count to the trigger.
            restarts=self._restarts,
        )
        ended = self.hook.run(follow_execution(wait, StatusTracker(self._workflow, execution_id, self.rules, self.log)))
        outcome = ended.end.outcome
        if outcome is None or ended.detail is None:
            self._on_deadline(execution_id, ended.last_status)
        return self._finish(
            context, execution_id, outcome, ended.detail, ended.message if outcome is Outcome.FAILURE else None
        )

    def _finish(
        self, context: Context, execution_id: str, outcome: Outcome, detail: dict[str, Any], message: str | None = None
    ) -> str:
        """Push the final detail and the node outputs; fail with ``message`` (or the failing node) on failure."""
        from airflow_provider_aom.execution import failure_message, node_outputs, stored

        self._finished = True
        shown = stored(detail, self.max_detail_bytes, self._console_url(execution_id))
        context["ti"].xcom_push(key="execution_detail", value=shown)
        context["ti"].xcom_push(key="node_outputs", value=node_outputs(shown))
        if outcome is Outcome.FAILURE:
            raise AomExecutionFailedError(message or failure_message(self._workflow, execution_id, detail))
        self.log.info("Execution %s of AOM workflow %s succeeded.", execution_id, self._workflow)
        return execution_id

    def _on_deadline(self, execution_id: str, last_status: str | None, *, terminated: bool = False) -> NoReturn:
        """Fail the task for its timeout, terminating the execution it owns (unless the trigger already did)."""
        self._finished = True
        what = (
            f"AOM workflow {self._workflow} execution {execution_id} did not end within {self.timeout} s "
            f"(last status {escape(last_status, 64)})"
        )
        if not self._owned:
            raise AomExecutionTimeoutError(
                f"{what}. It was left running: this task did not start it (or adopted it without being able to check "
                "who created it), so it does not terminate it. Stop it in the AOM console if it must not go on."
            )
        if not terminated:
            self._terminate(execution_id, reason="the timeout passed", patient=True)
        raise AomExecutionTimeoutError(f"{what}; it was terminated.")

    def _terminate(self, execution_id: str, *, reason: str, patient: bool = False) -> None:
        """Best-effort terminate; ``patient``: through an AOM outage (the timeout's own terminate must happen)."""
        try:
            if patient:
                self.hook.terminate_when_reachable(self._workflow, execution_id, self.project_id)
            else:
                self.hook.terminate_execution(self._workflow, execution_id, self.project_id)
            self.log.warning("Terminated execution %s of AOM workflow %s: %s.", execution_id, self._workflow, reason)
        except Exception as exc:  # best-effort: report the original problem, not this one
            self.log.warning("Could not terminate execution %s (%s): %s", execution_id, reason, exc)

    @closes_hook
    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Resume after the trigger: succeed, or fail with what happened."""
        execution_id = str(event.get("execution_id"))
        self._execution_id = execution_id
        # A workflow given by name was resolved before deferring; the event carries the id.
        self.workflow_id = str(event.get("workflow_id") or self.workflow_id)
        self._owned = event.get("owned") is not False
        end = WaitEnd.of(event)
        outcome = end.outcome if end is not None else None
        if outcome is not None and isinstance(event.get("detail"), dict):
            message = str(event["message"]) if outcome is Outcome.FAILURE and event.get("message") else None
            return self._finish(context, execution_id, outcome, event["detail"], message)
        if end is WaitEnd.TIMEOUT:
            self._on_deadline(execution_id, event.get("execution_status"), terminated=event.get("terminated") is True)
        raise AomError(str(event.get("message") or f"Unexpected trigger event {escape(event.get('status'), 40)!r}."))

    def on_kill(self) -> None:
        if not (self.cancel_on_kill and self._execution_id and self.wait_for_completion and not self._finished):
            return
        if not self._owned:
            self.log.warning(
                "Leaving execution %s of AOM workflow %s running: this task did not start it, or cannot show it did.",
                self._execution_id,
                self.workflow_id,
            )
            return
        self._terminate(self._execution_id, reason="the task was killed")


_WAIT_PARAMS = """
    :param wait_for_completion: Wait until the execution ends.
    :param poll_interval: Seconds between status requests while waiting.
    :param deferrable: Wait on the triggerer, holding no worker slot (default:
        ``[operators] default_deferrable``).
    :param cancel_on_kill: Terminate the execution when the task is killed (only one
        this task can show it started).
    :param success_statuses: Statuses that count as success (default ``success``).
    :param failure_statuses: Statuses that count as failure (default ``fail``,
        ``cancel``, ``timeout``, ``approvalFailed``). Others mean still running.
    :param max_detail_bytes: Largest ``execution_detail`` pushed to XCom (and carried
        by the trigger event), in bytes of JSON; larger node outputs and node lists are
        cut with a marker pointing to the console (default 64 KiB).
    :param on_node_failure: When the execution pauses at a failed node: ``fail`` the
        task naming the node and its output (default), ``wait`` (until ``timeout``),
        ``restart`` the node (at most ``max_node_restarts`` times, then fail) or ``skip`` it.
    :param max_node_restarts: Restarts per node for ``on_node_failure="restart"`` (default 1).
"""


class AomExecuteWorkflowOperator(ResumableJobMixin, _AomExecutionWait):
    __doc__ = (
        """
    Start an execution of an AOM automation workflow; optionally wait for its end.

    The execution id is logged, pushed under the XCom key ``execution_id`` right
    after the submit (with the console link), and returned. When waiting, the
    final execution detail is pushed under ``execution_detail``, the nodes'
    outputs under ``node_outputs`` (``{node_id: output}``), and a failed
    execution fails the task with its status and failing node.

    AOM's execute call takes no parameters: a workflow's inputs are fixed in its
    definition (see the README).

    :param workflow_id: Id of the workflow (from the AOM workflow list). Templated.
    :param workflow_name: Instead of ``workflow_id``: the workflow's exact name, looked
        up in the workflow list (exactly one must match). Templated.
    :param project_id: 32-character project id; default: the connection's, or
        resolved from IAM by region. Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param timeout: Seconds from the first submit after which the execution is
        terminated and the task fails; None waits without limit.
    :param durable: Airflow ≥ 3.3: a retry after a worker crash reattaches to the
        execution it started (still running or succeeded) instead of starting another,
        also when the lost try never got its submit's answer.
    :param reuse_existing_run: When the workflow already has an execution that has not
        ended, follow the newest one instead of starting another (it is never terminated
        by this task: it did not start it).
    :param retry_from_failure: On an Airflow retry, when the execution an earlier try
        started ended ``fail`` or is paused at a failed node, restart that node and wait
        instead of starting a new execution."""
        + _WAIT_PARAMS
        + """
    The task terminates only an execution it can show it started: one whose id the submit
    returned, or one adopted after an ambiguous submit whose ``created_by`` matched the
    connection's user.
    """
    )

    template_fields: Sequence[str] = ("workflow_id", "workflow_name", "project_id", "aom_conn_id")
    external_id_key = "aom_execution_id"

    def __init__(
        self,
        *,
        workflow_id: str | None = None,
        workflow_name: str | None = None,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = False,
        poll_interval: float = 15.0,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        durable: bool = True,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        on_node_failure: str = OnNodeFailure.FAIL.value,
        max_node_restarts: int = 1,
        reuse_existing_run: bool = False,
        retry_from_failure: bool = False,
        **kwargs: Any,
    ) -> None:
        if _DURABLE_SUPPORTED:
            super().__init__(durable=durable, **kwargs)
        else:
            super().__init__(**kwargs)
        if (workflow_id is None) == (workflow_name is None):
            raise ValueError("Give exactly one of workflow_id and workflow_name.")
        self.durable = durable
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self.reuse_existing_run = reuse_existing_run
        self.retry_from_failure = retry_from_failure
        self._submitted_at: float | None = None
        self._setup_wait(
            wait_for_completion=wait_for_completion,
            poll_interval=poll_interval,
            timeout=timeout,
            deferrable=deferrable,
            cancel_on_kill=cancel_on_kill,
            success_statuses=success_statuses,
            failure_statuses=failure_statuses,
            max_detail_bytes=max_detail_bytes,
            on_node_failure=on_node_failure,
            max_node_restarts=max_node_restarts,
        )

    # ------------------------------------------------------------------ execute

    @closes_hook
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
        self._resolve_workflow()
        if self.retry_from_failure and context["ti"].try_number > 1:
            resumed = self._restart_earlier_execution(context)
            if resumed is not None:
                return resumed
        result: str = self.execute_resumable(context)
        return result

    def _resolve_workflow(self) -> None:
        """``workflow_name`` → the one workflow id it names (the id is what every later call uses)."""
        from airflow_provider_aom.api import workflow_id_of

        if self.workflow_id:
            return
        if not self.workflow_name:
            raise AomConfigurationError("Give workflow_id or workflow_name: both rendered empty.")
        workflow = self.hook.find_workflow(self.workflow_name, self.project_id)
        self.workflow_id = workflow_id_of(workflow)
        self.log.info("Workflow %r is %s.", self.workflow_name, self.workflow_id)

    def _restart_earlier_execution(self, context: Context) -> str | None:
        """retry_from_failure: restart the failed node of the execution an earlier try started, then wait."""
        from airflow_provider_aom.node_ops import stopped_at
        from airflow_provider_aom.submit import earlier_execution

        store = context.get("task_state_store")
        earlier = store.get(self.external_id_key) if store is not None else None
        if not earlier:
            earlier = self.hook.run(earlier_execution(self._workflow, first_try_started(context), self.project_id))
        if not earlier:
            self.log.info("retry_from_failure: no execution of an earlier try found; starting a new one.")
            return None
        detail = self.hook.get_execution(self._workflow, str(earlier), self.project_id)
        stop = stopped_at(detail)
        if stop is None or not stop.failed:
            self.log.info(
                "retry_from_failure: execution %s of an earlier try is %s, not stopped at a failed node.",
                earlier,
                escape(detail.get("status"), 32),
            )
            return None
        operation = self.hook.operate_execution(
            self._workflow, str(earlier), NodeAction.RESTART, stop.node_id, self.project_id
        )
        self._restarts[operation.node_id] = 1
        self.log.warning(
            "retry_from_failure: restarted failed node %s of execution %s (it was %s) instead of starting a new one.",
            escape(operation.node_id, 64),
            earlier,
            escape(detail.get("status"), 32),
        )
        if store is not None and store.get(OWNED_KEY) is False:
            self._owned = False
        self._submitted_at = time.time()
        result: str = self.poll_until_complete(str(earlier), context)
        return result

    # ResumableJobMixin: submit, inspect a stored execution, wait, result.

    def submit_job(self, context: Context) -> str:
        self._submitted_at = time.time()
        store = context.get("task_state_store")
        started = self._reused_execution() if self.reuse_existing_run else None
        pending = store.get(SUBMIT_SENT_KEY) if store is not None and self.durable else None
        if started is None and isinstance(pending, (int, float)) and not isinstance(pending, bool):
            started = self._pending_submit(float(pending))
        if started is None:
            if store is not None:
                # Before the POST: a try lost before it records the answer leaves this for the next try.
                store.set(SUBMIT_SENT_KEY, self._submitted_at)
            # durable: a try that fails not knowing whether its POST started anything leaves the mark,
            # and the next try reads the list again before it submits.
            started = self.hook.start_execution(
                self._workflow, project_id=self.project_id, recheck_later=store is not None and self.durable
            )
            self.log.info("Started execution %s of AOM workflow %s.", started.execution_id, self._workflow)
        self._owned = started.owned
        if store is not None:
            store.set(SUBMITTED_AT_KEY, self._submitted_at)
            store.set(OWNED_KEY, started.owned)
            # Kept even when not durable: retry_from_failure looks here first.
            store.set(self.external_id_key, started.execution_id)
            store.delete(SUBMIT_SENT_KEY)
        return started.execution_id

    def _pending_submit(self, sent_at: float) -> StartedExecution | None:
        """durable: the execution an earlier try's submit started when that try was lost before recording it."""
        from airflow_provider_aom.submit import pending_submit

        self.log.warning(
            "An earlier try submitted AOM workflow %s and was lost before it recorded the answer: looking for the "
            "execution that submit started before submitting again.",
            self._workflow,
        )
        started = self.hook.run(pending_submit(self._workflow, sent_at, self.project_id))
        if started is not None:
            # The timeout counts from the earlier try's submit, which started this execution.
            self._submitted_at = sent_at
        return started

    def _reused_execution(self) -> StartedExecution | None:
        from airflow_provider_aom.submit import StartedExecution

        # The list is the workflow's whole history: only running rows are kept while it streams in. A row
        # is a hint (a newer row of the same execution may precede it): the detail has the last word.
        running = sorted(
            self.hook.list_executions(
                self._workflow, self.project_id, keep=lambda e: self.rules.outcome(e.status) is Outcome.RUNNING
            ),
            key=lambda e: e.begin_time or 0,
            reverse=True,
        )
        for candidate in running[:REUSE_CANDIDATES]:
            status = self.hook.get_execution(self._workflow, candidate.execution_id, self.project_id)["status"]
            if self.rules.outcome(status) is not Outcome.RUNNING:
                continue
            self.log.warning(
                "reuse_existing_run: following execution %s of AOM workflow %s (status %s) instead of starting "
                "another; this task did not start it, so it never terminates it.",
                candidate.execution_id,
                self._workflow,
                escape(status, 32),
            )
            return StartedExecution(candidate.execution_id, owned=False, adopted=True)
        return None

    def get_job_status(self, external_id: Any, context: Context) -> str:
        status: str = self.hook.get_execution(self._workflow, str(external_id), self.project_id)["status"]
        self.log.info("Execution %s from an earlier try is %s.", external_id, escape(status, 32))
        return status

    def is_job_active(self, status: str) -> bool:
        return self.rules.outcome(status) is Outcome.RUNNING

    def is_job_succeeded(self, status: str) -> bool:
        return self.rules.outcome(status) is Outcome.SUCCESS

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        # Returns the result too: the mixin returns this method's value when it reattaches.
        execution_id = str(external_id)
        self._announce(context, execution_id)
        store = context.get("task_state_store")
        if store is not None and store.get(OWNED_KEY) is False:
            self._owned = False
        if not self.wait_for_completion:
            return execution_id
        return self._wait_or_defer(context, execution_id, self._deadline(context))

    def get_job_result(self, external_id: Any, context: Context) -> str:
        execution_id = str(external_id)
        self._announce(context, execution_id)
        return execution_id

    def _deadline(self, context: Context) -> float | None:
        if self.timeout is None:
            return None
        store = context.get("task_state_store")
        first = store.get(SUBMITTED_AT_KEY) if store is not None else None
        start = float(first) if isinstance(first, (int, float)) else (self._submitted_at or time.time())
        return start + self.timeout


class AomWorkflowNodeActionOperator(_AomExecutionWait):
    __doc__ = (
        """
    Restart or skip an execution's failed node, or continue past its pause node; optionally wait.

    The operation is sent once (it is not idempotent): after an unclear answer the
    execution is read again, and only a change there counts as done. The execution
    was not started by this task: it is never terminated by it.

    :param workflow_id: Workflow of the execution. Templated.
    :param execution_id: The execution. Templated.
    :param action: ``restart``, ``skip`` or ``continue``. Templated.
    :param node_id: The node; None: the node the execution is stopped at (its failed
        node for restart and skip, its pause node for continue). Templated.
    :param project_id: Project id (default: the connection's). Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param timeout: Seconds from the operation after which the wait fails (the
        execution is left running); None waits without limit."""
        + _WAIT_PARAMS
    )

    # node_id is BaseOperator's own (the task's id in the graph): the node to act on is target_node_id.
    template_fields: Sequence[str] = (
        "workflow_id",
        "execution_id",
        "action",
        "target_node_id",
        "project_id",
        "aom_conn_id",
    )

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        action: str,
        node_id: str | None = None,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = False,
        poll_interval: float = 15.0,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        on_node_failure: str = OnNodeFailure.FAIL.value,
        max_node_restarts: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.action = action
        self.target_node_id = node_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self._setup_wait(
            wait_for_completion=wait_for_completion,
            poll_interval=poll_interval,
            timeout=timeout,
            deferrable=deferrable,
            cancel_on_kill=cancel_on_kill,
            success_statuses=success_statuses,
            failure_statuses=failure_statuses,
            max_detail_bytes=max_detail_bytes,
            on_node_failure=on_node_failure,
            max_node_restarts=max_node_restarts,
        )
        self._owned = False

    @closes_hook
    def execute(self, context: Context) -> str:
        from airflow_provider_aom.node_ops import node_action

        operation = self.hook.operate_execution(
            self._workflow, self.execution_id, node_action(self.action), self.target_node_id or None, self.project_id
        )
        self.log.info(
            "%s node %s of execution %s of AOM workflow %s%s.",
            operation.action.value.capitalize(),
            escape(operation.node_id, 64),
            self.execution_id,
            self._workflow,
            "" if operation.confirmed else " (the execution showed it took effect)",
        )
        context["ti"].xcom_push(key="node_id", value=operation.node_id)
        self._announce(context, self.execution_id)
        self._owned = False
        if not self.wait_for_completion:
            return self.execution_id
        deadline = time.time() + self.timeout if self.timeout is not None else None
        return self._wait_or_defer(context, self.execution_id, deadline)


class AomGetWorkflowExecutionOperator(BaseOperator):
    """
    Read an execution's detail: returned (as XCom ``return_value``), with ``node_outputs``.

    :param workflow_id: Workflow of the execution. Templated.
    :param execution_id: The execution. Templated.
    :param project_id: Project id (default: the connection's). Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param max_detail_bytes: Largest detail returned, in bytes of JSON (default 64 KiB).
    """

    template_fields: Sequence[str] = ("workflow_id", "execution_id", "project_id", "aom_conn_id")
    operator_extra_links = (AomWorkflowExecutionLink(),)
    ui_color = "#f5d5d7"

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id
        self.max_detail_bytes = check_max_detail_bytes(max_detail_bytes)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_aom.execution import node_outputs, stored
        from airflow_provider_aom.hooks.aom import AomHook  # the HTTP stack: not at DAG-parse time

        with AomHook(aom_conn_id=self.aom_conn_id) as hook:
            detail = hook.get_execution(self.workflow_id, self.execution_id, self.project_id)
            config = hook.config
            url = console_url(
                config.console_url, region=config.region, workflow_id=self.workflow_id, execution_id=self.execution_id
            )
            AomWorkflowExecutionLink.persist(context, url)
            shown = stored(detail, self.max_detail_bytes, url)
            context["ti"].xcom_push(key="node_outputs", value=node_outputs(shown))
            status = escape(detail["status"], 32)
            self.log.info("Execution %s of AOM workflow %s is %s.", self.execution_id, self.workflow_id, status)
            return shown


class AomSetWorkflowTriggerOperator(BaseOperator):
    """
    Enable or disable a workflow's own trigger (its cron schedule in AOM).

    Hand a workflow's schedule over to Airflow (``enable=False``) and back.

    :param workflow_id: The workflow. Templated.
    :param workflow_name: Instead of ``workflow_id``: its exact name. Templated.
    :param enable: True enables the trigger, False disables it.
    :param project_id: Project id (default: the connection's). Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    """

    template_fields: Sequence[str] = ("workflow_id", "workflow_name", "project_id", "aom_conn_id")
    ui_color = "#c7000b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        workflow_id: str | None = None,
        workflow_name: str | None = None,
        enable: bool = True,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (workflow_id is None) == (workflow_name is None):
            raise ValueError("Give exactly one of workflow_id and workflow_name.")
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.enable = enable
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id

    def execute(self, context: Context) -> str:
        from airflow_provider_aom.api import workflow_id_of
        from airflow_provider_aom.hooks.aom import AomHook  # the HTTP stack: not at DAG-parse time

        with AomHook(aom_conn_id=self.aom_conn_id) as hook:
            workflow_id = self.workflow_id or workflow_id_of(
                hook.find_workflow(str(self.workflow_name), self.project_id)
            )
            assert workflow_id is not None
            hook.set_workflow_trigger(workflow_id, self.enable, self.project_id)
            self.log.info("%s the trigger of AOM workflow %s.", "Enabled" if self.enable else "Disabled", workflow_id)
            return workflow_id


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
        aom_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id

    def execute(self, context: Context) -> None:
        from airflow_provider_aom.hooks.aom import AomHook  # the HTTP stack: not at DAG-parse time
        from airflow_provider_aom.node_ops import ended_as

        with AomHook(aom_conn_id=self.aom_conn_id) as hook:
            try:
                hook.terminate_execution(self.workflow_id, self.execution_id, self.project_id)
            except AomBadRequestError:
                # AOM refuses to terminate an execution that already ended: that is not a failure here.
                status = hook.run(ended_as(self.workflow_id, self.execution_id, self.project_id))
                if status is None:
                    raise
                self.log.info("Execution %s already ended as %s; nothing to terminate.", self.execution_id, status)
                return
            self.log.info("Terminated execution %s of AOM workflow %s.", self.execution_id, self.workflow_id)
