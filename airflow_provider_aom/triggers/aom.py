"""Triggers: ``AomWorkflowExecutionTrigger`` waits for one execution; ``AomWorkflowExecutionEventTrigger``
watches a workflow for executions that end, to schedule DAGs on them (asset watchers, Airflow ≥ 3.0)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

# On Airflow 2 (no asset watchers) common-compat gives BaseTrigger: the module imports, the event trigger refuses.
from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aom import DEFAULT_CONN_ID
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomConfigurationError, AomError
from airflow_provider_aom.vocabulary import DEFAULT_MAX_DETAIL_BYTES, OnNodeFailure, StatusRules, WaitEnd

# DAG files import this module at parse time (asset watchers build their trigger there): the HTTP
# stack and the call machinery are imported when a trigger runs.
if TYPE_CHECKING:
    from airflow_provider_aom.execution_list import ExecutionBrief
    from airflow_provider_aom.hooks.aom import AomAsyncHook
    from airflow_provider_aom.watch import Watermark


class AomWorkflowExecutionTrigger(BaseTrigger):
    """
    Polls an execution until it ends or an absolute deadline passes; yields one event.

    Event ``status`` is ``success``, ``failure``, ``timeout`` or ``error``; the
    event also carries ``workflow_id``, ``execution_id``, ``execution_status``,
    the final ``detail`` (when known, cut to ``max_detail_bytes``), ``owned`` and
    a ``message``. Transient errors while polling (connection errors, timeouts,
    429, 5xx, garbled answers) are retried with backoff; a 401 renews the IAM
    token once. The deadline holds while a poll is in flight. Any other failure
    ends the wait with an ``error`` event, never an exception. All triggers of a
    triggerer share one HTTP pool per endpoint host and one token per identity.

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
    :param owned: Whether the deferring task can show it started the execution (passed back in events).
    :param terminate_at_deadline: Terminate an ``owned`` execution when the deadline passes, before the
        ``timeout`` event goes out (the event's ``terminated`` says whether that worked), so it is stopped
        even if the task never resumes (a broker or database outage that fails the resume).
    :param max_detail_bytes: Largest detail carried by the event, in bytes of JSON.
    :param on_node_failure: When the execution pauses at a failed node: ``fail``, ``wait``,
        ``restart`` or ``skip`` (the trigger sends restart and skip itself).
    :param max_node_restarts: Restarts per node for ``restart``.
    :param node_restarts: Restarts already sent per node (kept with the trigger's arguments).
    """

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str | None = None,
        aom_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 15.0,
        deadline: float | None = None,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        cancel_on_kill: bool = True,
        last_status: str | None = None,
        owned: bool = True,
        max_detail_bytes: int = DEFAULT_MAX_DETAIL_BYTES,
        on_node_failure: str = OnNodeFailure.WAIT.value,
        max_node_restarts: int = 1,
        node_restarts: dict[str, int] | None = None,
        terminate_at_deadline: bool = False,
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
        self.owned = owned
        self.max_detail_bytes = int(max_detail_bytes)
        self.on_node_failure = OnNodeFailure(on_node_failure).value
        self.max_node_restarts = int(max_node_restarts)
        self.node_restarts = dict(node_restarts or {})
        self.terminate_at_deadline = bool(terminate_at_deadline)

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
                "owned": self.owned,
                "max_detail_bytes": self.max_detail_bytes,
                "on_node_failure": self.on_node_failure,
                "max_node_restarts": self.max_node_restarts,
                "node_restarts": self.node_restarts,
                "terminate_at_deadline": self.terminate_at_deadline,
            },
        )

    def _hook(self) -> AomAsyncHook:
        from airflow_provider_aom.hooks.aom import AomAsyncHook

        return AomAsyncHook(aom_conn_id=self.aom_conn_id)

    async def _stored(self, hook: Any, detail: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_aom.execution import stored
        from airflow_provider_aom.links.aom import console_url

        config = await hook.get_config()
        url = console_url(
            config.console_url, region=config.region, workflow_id=self.workflow_id, execution_id=self.execution_id
        )
        return stored(detail, self.max_detail_bytes, url)

    def _event(
        self, end: WaitEnd, message: str, detail: dict[str, Any] | None = None, *, terminated: bool = False
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": end.value,
                "workflow_id": self.workflow_id,
                "execution_id": self.execution_id,
                "project_id": self.project_id,
                "execution_status": detail.get("status") if detail else self.last_status,
                "detail": detail,
                "owned": self.owned,
                "message": message,
                "terminated": terminated,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_aom.wait import StatusTracker, Wait, follow_execution

        rules = StatusRules(self.success_statuses, self.failure_statuses)
        tracker = StatusTracker(self.workflow_id, self.execution_id, rules, self.log, last=self.last_status)
        wait = Wait(
            self.workflow_id,
            self.execution_id,
            self.project_id,
            poll_interval=self.poll_interval,
            deadline=self.deadline,
            policy=OnNodeFailure(self.on_node_failure),
            max_node_restarts=self.max_node_restarts,
            restarts=self.node_restarts,
            spread_first_poll=True,
        )
        try:
            # Closed before the event goes out: the triggerer's other waits keep the loop's shared sockets.
            async with self._hook() as hook:
                ended = await hook.run(follow_execution(wait, tracker))
                self.last_status = tracker.last
                detail = await self._stored(hook, ended.detail) if ended.detail is not None else None
                terminated = (
                    ended.end is WaitEnd.TIMEOUT
                    and self.terminate_at_deadline
                    and self.owned
                    and await self._terminate_at_deadline(hook)
                )
                event = self._event(ended.end, ended.message, detail, terminated=terminated)
        except Exception as exc:
            # Whatever went wrong (a provider error, or a bug meeting an answer nobody foresaw), the
            # task must hear of it as an event: a raise would fail the trigger without a message.
            self.last_status = tracker.last
            reason = str(exc) if isinstance(exc, AomError) else f"{type(exc).__name__}: {escape(exc)}"
            event = self._event(WaitEnd.ERROR, f"Waiting for execution {self.execution_id} failed: {reason}")
        yield event

    async def _terminate_at_deadline(self, hook: AomAsyncHook) -> bool:
        """Terminate the execution whose deadline passed, through an AOM outage; False when it could not be."""
        from airflow_provider_aom.node_ops import terminate_when_reachable

        try:
            await hook.run(terminate_when_reachable(self.workflow_id, self.execution_id, self.project_id))
        except Exception as exc:  # the task's own terminate, when it resumes, is the fallback
            self.log.warning(
                "Could not terminate execution %s at its deadline (%s); the task tries again when it resumes.",
                self.execution_id,
                exc if isinstance(exc, AomError) else f"{type(exc).__name__}: {escape(exc)}",
            )
            return False
        self.log.warning(
            "Terminated execution %s of workflow %s: the timeout passed.", self.execution_id, self.workflow_id
        )
        return True

    async def on_kill(self) -> None:
        """Airflow ≥ 3.3: the deferred task was marked failed/success or cleared: stop the remote run.

        Airflow 3.3 also calls this when another triggerer took the trigger over (this one had missed
        its heartbeats, say a stalled host): the task is then still waiting, on the other triggerer,
        and its execution must go on. So the task's state is read first.
        """
        if not self.cancel_on_kill:
            return
        if await self._still_waiting_elsewhere():
            self.log.info(
                "This wait moved to another triggerer; execution %s of workflow %s goes on.",
                self.execution_id,
                self.workflow_id,
            )
            return
        try:
            async with self._hook() as hook:
                await hook.terminate_execution(self.workflow_id, self.execution_id, self.project_id)
            self.log.info("Terminated execution %s of workflow %s.", self.execution_id, self.workflow_id)
        except Exception as exc:  # best-effort: the kill itself must not fail
            self.log.warning("Could not terminate execution %s: %s", self.execution_id, exc)


    async def _still_waiting_elsewhere(self) -> bool:
        """True when the deferred task is still deferred (or already resumed by an event): not a user's kill."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from airflow.utils.state import TaskInstanceState
            from asgiref.sync import sync_to_async

            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
            )
        except Exception as exc:  # Airflow < 3.3, or no answer: Airflow said it was a user's kill
            self.log.warning("Could not read the task's state (%s); terminating as asked.", escape(exc, 200))
            return False
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        state = states.get(ti.run_id, {}).get(key)
        # Deferred: another triggerer holds the wait. Scheduled/queued/running: an event (from that
        # other triggerer) resumed the task, whose own code decides what happens to the execution.
        return state in (
            TaskInstanceState.DEFERRED,
            TaskInstanceState.SCHEDULED,
            TaskInstanceState.QUEUED,
            TaskInstanceState.RUNNING,
        )


#: Largest payload of one watch event, in bytes of JSON (it becomes an asset event in the metadata DB).
EVENT_DETAIL_BYTES = 16 * 1024


class AomWorkflowExecutionEventTrigger(BaseEventTrigger):
    """
    Watches a workflow and yields one event for each execution that reaches one of ``statuses``.

    For asset watchers (``AssetWatcher(name=..., trigger=...)``, Airflow ≥ 3.0): a DAG scheduled on
    the asset runs when AOM itself (its cron trigger, a person in the console, another system)
    starts an execution that then succeeds. Every ``poll_interval`` seconds the trigger reads the
    workflow's execution list (one request per poll per watch) and reports each execution that
    reached one of ``statuses`` after the watch began, exactly once; executions that had already
    ended when it began are never reported. Event payload: ``workflow_id``, ``execution_id``,
    ``status``, ``begin_time``, ``end_time`` (ISO-8601 UTC), ``nodes`` (the node results from the
    execution's detail, bounded). The list is the workflow's whole history (AOM has no paging): it
    is streamed and only rows newer than the watermark are kept (:mod:`~airflow_provider_aom.execution_list`).

    What it has reported is a watermark (:mod:`~airflow_provider_aom.watch`), kept in the asset's
    state store on Airflow ≥ 3.3 *before* the events go out: a restarted triggerer reports the
    executions that ended while it was down and never one twice; a crash in the second or two
    between keeping the watermark and Airflow storing the event loses that event (no repeats was
    chosen over no misses). Without a state store (Airflow 3.0 to 3.2, or one watcher trigger
    shared by several assets) the watermark lives in memory: after a restart the watch begins
    anew, so executions that ended while no triggerer ran it are missed, and none is reported
    twice. Transient errors are retried within a poll; other errors are logged and the watch goes
    on at the next poll.

    :param workflow_id: The workflow to watch (exactly one of ``workflow_id`` and ``workflow_name``).
    :param workflow_name: Its exact name instead, resolved when the watch starts.
    :param statuses: Statuses to report (default ``("success",)``), case-insensitive.
    :param poll_interval: Seconds between two reads of the execution list (default 60).
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    :param project_id: Project id (default: the connection's, or resolved from IAM).
    """

    def __init__(
        self,
        *,
        workflow_id: str | None = None,
        workflow_name: str | None = None,
        statuses: Sequence[str] = ("success",),
        poll_interval: float = 60.0,
        aom_conn_id: str = DEFAULT_CONN_ID,
        project_id: str | None = None,
    ) -> None:
        if BaseEventTrigger is BaseTrigger:
            raise AomConfigurationError(
                "AomWorkflowExecutionEventTrigger needs Airflow 3.0 or later (asset watchers); on Airflow 2 "
                "schedule the DAG on a timetable and use AomWorkflowExecutionSensor, or upgrade."
            )
        super().__init__()
        if (workflow_id is None) == (workflow_name is None):
            raise ValueError("Give exactly one of workflow_id and workflow_name.")
        if isinstance(statuses, str) or not statuses or not all(isinstance(s, str) and s for s in statuses):
            raise ValueError("statuses must be a non-empty list of status names, e.g. ['success'].")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds.")
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.statuses = [s.strip() for s in statuses]
        self.poll_interval = float(poll_interval)
        self.aom_conn_id = aom_conn_id
        self.project_id = project_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workflow_id": self.workflow_id,
                "workflow_name": self.workflow_name,
                "statuses": self.statuses,
                "poll_interval": self.poll_interval,
                "aom_conn_id": self.aom_conn_id,
                "project_id": self.project_id,
            },
        )

    @property
    def _state_key(self) -> str:
        """This watch's key in the asset state store (another watcher of the same asset has its own)."""
        _, kwargs = self.serialize()
        digest = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:16]
        return f"aom_watch_{digest}"

    async def _load(self) -> Any:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            return await store.aget(self._state_key)
        except Exception as exc:  # several assets share this trigger, or the store is unavailable
            self.log.warning("No asset state store for this watch (%s); its watermark stays in memory.", escape(exc))
            self.asset_state_store = None
            return None

    async def _save(self, watermark: Watermark) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await store.aset(self._state_key, watermark.to_json())
        except Exception as exc:
            self.log.warning("Could not keep this watch's watermark (%s); it stays in memory.", escape(exc))

    async def _event(self, hook: AomAsyncHook, workflow_id: str, execution: ExecutionBrief) -> TriggerEvent:
        """The event for a reported execution: the list row's status and times, the detail's node results.

        The list is read without node results (it is the whole history); the detail is read for them.
        When it cannot be read the event still goes out, without nodes: the watch reports each execution once.
        """
        from airflow_provider_aom.execution import stored

        nodes: list[Any] = []
        try:
            detail = await hook.get_execution(workflow_id, execution.execution_id, self.project_id)
            nodes = stored(detail, EVENT_DETAIL_BYTES).get("execution_result_list", [])
        except AomError as exc:
            self.log.warning(
                "Execution %s of workflow %s: its node results could not be read (%s); reporting it without them.",
                escape(execution.execution_id, 64),
                escape(workflow_id, 64),
                exc,
            )
        row = stored(execution.to_dict(), EVENT_DETAIL_BYTES)
        return TriggerEvent(
            {
                "workflow_id": workflow_id,
                "execution_id": execution.execution_id,
                "status": execution.status,
                "begin_time": row.get("begin_time"),
                "end_time": row.get("end_time"),
                "nodes": nodes,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_aom import api
        from airflow_provider_aom.hooks.aom import AomAsyncHook
        from airflow_provider_aom.watch import Watermark

        # The loop's shared sockets are let go when the watch ends (the triggerer closes this generator).
        async with AomAsyncHook(aom_conn_id=self.aom_conn_id) as hook:
            statuses = frozenset(s.lower() for s in self.statuses)
            watermark = Watermark.from_json(await self._load())
            workflow_id = self.workflow_id
            while True:
                events: list[TriggerEvent] = []
                try:
                    if workflow_id is None:
                        found = await hook.find_workflow(str(self.workflow_name), self.project_id)
                        workflow_id = api.workflow_id_of(found)
                        if workflow_id is None:  # find_workflow only answers workflows with a valid id
                            raise AomConfigurationError(f"Workflow {escape(self.workflow_name, 64)} has no valid id.")
                    keep = Watermark.first_keep() if watermark is None else watermark.keep()
                    executions = await hook.list_executions(workflow_id, self.project_id, keep=keep)
                    offset = executions.clock_offset
                    if watermark is None:
                        watermark = Watermark.begin(offset, executions, statuses)
                        self.log.info(
                            "Watching workflow %s for executions that reach %s.",
                            escape(workflow_id, 64),
                            sorted(statuses),
                        )
                        await self._save(watermark)
                    else:
                        aom_now_ms = int((time.time() + (offset or 0.0)) * 1000)
                        reported = watermark.new(executions, statuses, now_ms=aom_now_ms)
                        events = [await self._event(hook, workflow_id, found) for found in reported]
                        if events:
                            # Kept before the events go out: a restart in between misses them rather than
                            # reporting them twice (the watch promises no repeats).
                            await self._save(watermark)
                except Exception as exc:  # a watch outlives a bad answer, or a bug meeting one: the next poll may do
                    reason = str(exc) if isinstance(exc, AomError) else f"{type(exc).__name__}: {escape(exc)}"
                    self.log.warning(
                        "Watching workflow %s: %s; trying again at the next poll.",
                        escape(workflow_id or self.workflow_name, 64),
                        reason,
                    )
                for event in events:
                    self.log.info(
                        "Execution %s of workflow %s is %s.",
                        escape(event.payload["execution_id"], 64),
                        escape(workflow_id, 64),
                        escape(event.payload["status"], 32),
                    )
                    yield event
                await asyncio.sleep(self.poll_interval)
