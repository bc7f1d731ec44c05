"""The wait for one execution, written once as a plan that the sync operator, the sensor and the trigger drive.

:func:`follow_execution` is a :data:`~airflow_provider_aom.api.Plan`: it yields the status reads,
the node operations ``on_node_failure`` asks for and the pauses between polls, and returns how the
wait ended (:class:`WaitEnded`). It does no I/O and never sleeps itself: ``AomHook.run`` drives it
blocking (the operator's sync wait), ``AomAsyncHook.run`` on the event loop (the trigger). The
sensor's ``poke`` drives one :func:`poll`. Each driver only turns the end into its own outcome: a
return value or an exception in a task, a ``TriggerEvent`` in a trigger.

What is decided here, once: the deadline (checked before each read, and a read that fails at the
deadline is a timeout), the ``on_node_failure`` policy (:func:`on_stop`), status logging
(:class:`StatusTracker`), node-operation counting, and the spacing of polls (:func:`poll_pause`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aom import api
from airflow_provider_aom.api import Pause, Plan
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomError
from airflow_provider_aom.execution import approvers, failure_message, node_lines, timing
from airflow_provider_aom.node_ops import operate_execution, stopped_at
from airflow_provider_aom.vocabulary import (
    DEADLINE_SLACK,
    OPEN_NODE_STATUSES,
    SKIPPED_NODE_STATUSES,
    SUCCEEDED_NODE_STATUSES,
    NodeAction,
    OnNodeFailure,
    Outcome,
    StatusRules,
    WaitEnd,
    is_epoch_ms,
)


def poll_pause(interval: float, polls_done: int) -> float:
    """Seconds to wait before the next poll of a deferred wait.

    Waits deferred together (mapped tasks) would otherwise poll in the same instant forever, and
    the server and the triggerer would see bursts instead of a steady rate. The first pause is drawn
    between half and one and a half intervals, which spreads their phases across one interval;
    later pauses are the interval itself, so the mean interval (and the number of status calls)
    stays what ``poll_interval`` says.
    """
    if polls_done == 1:
        return interval * random.uniform(0.5, 1.5)  # noqa: S311 - spreading load, not cryptography
    return interval


#: Progress lines (one per node run that ends) a wait logs at most; then one line says the rest is not logged.
MAX_PROGRESS_LINES = 200
#: Characters of a failed node's output shown in its progress line and in the failure message.
PROGRESS_OUTPUT_CHARS = 120
FAILURE_OUTPUT_CHARS = 300
#: Node statuses that do not mean the node has ended, even with an end time (compared in lower case).
#: Nodes that ended in these are not quoted in a failure message.
_UNQUOTED_NODE_STATUSES = SUCCEEDED_NODE_STATUSES | SKIPPED_NODE_STATUSES


def output_excerpt(output: Any, limit: int = PROGRESS_OUTPUT_CHARS) -> str:
    """A node output as one short escaped line: its ``error_msg`` or ``message`` when it has one, else its JSON."""
    if isinstance(output, Mapping):
        for key in ("error_msg", "message", "error", "msg"):
            text = output.get(key)
            if isinstance(text, str) and text.strip():
                return escape(text.strip(), limit)
    if isinstance(output, str):
        return escape(output.strip(), limit)
    if output in (None, {}, [], ""):
        return ""
    try:
        text = json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(output)
    return escape(text, limit)


def _seconds(begin: Any, end: Any) -> str:
    if not (is_epoch_ms(begin) and is_epoch_ms(end)) or begin == 0 or end < begin:
        return "?"
    seconds = (end - begin) / 1000
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def failed_node_output(detail: Mapping[str, Any], limit: int = FAILURE_OUTPUT_CHARS) -> str:
    """The output excerpt of the execution's first node that did not succeed ('' when none has an output)."""
    for node in detail.get("execution_result_list") or []:
        if isinstance(node, Mapping) and str(node.get("status", "")).lower() not in _UNQUOTED_NODE_STATUSES | {""}:
            return output_excerpt(node.get("output"), limit)
    return ""


class StatusTracker:
    """Logs each status change of one execution once (not every poll), what a person must do, and node progress.

    Progress: one short line as each node run ends (``node 2/3 patch-hosts success in 42 s``; a failed
    node adds an excerpt of its output), each run once however often it is polled, at most
    :data:`MAX_PROGRESS_LINES` per wait. ``2/3`` is the node's place among the nodes the execution lists
    so far (AOM lists the nodes reached). A restarted node that ends again is a new run: one more line.
    """

    def __init__(
        self, workflow_id: str, execution_id: str, rules: StatusRules, log: Any, last: str | None = None
    ) -> None:
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.rules = rules
        self.log = log
        self.last = last
        #: The node runs already reported: (node id, function execution id or begin time).
        #: A dict, for its insertion order: the oldest run is forgotten first, never one just reported.
        self._ended: dict[tuple[str, str], None] = {}
        self._progress_lines = 0

    def observe(self, detail: Mapping[str, Any]) -> Outcome:
        """Record a polled detail; returns what it means for the wait."""
        self._progress(detail)
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
        if outcome is not Outcome.RUNNING:
            when = timing(detail)
            if when:
                self.log.info("Execution %s %s.", escape(self.execution_id, 64), when)
            for line in node_lines(detail):
                self.log.info("%s", line)
        return outcome

    def _progress(self, detail: Mapping[str, Any]) -> None:
        nodes = [n for n in detail.get("execution_result_list") or [] if isinstance(n, Mapping)]
        for place, node in enumerate(nodes, 1):
            end = node.get("end_time")
            status = str(node.get("status", ""))
            if not is_epoch_ms(end) or end == 0 or status.lower() in OPEN_NODE_STATUSES:
                continue
            node_id = str(node.get("node_id", ""))
            run = node.get("function_execution_id")
            key = (node_id, run if isinstance(run, str) and run else str(node.get("begin_time")))
            if key in self._ended:
                continue
            self._ended[key] = None
            if len(self._ended) > 4 * MAX_PROGRESS_LINES:  # the memory a trigger keeps stays bounded too
                del self._ended[next(iter(self._ended))]
            self._progress_lines += 1
            if self._progress_lines > MAX_PROGRESS_LINES:
                if self._progress_lines == MAX_PROGRESS_LINES + 1:
                    self.log.info("More nodes ended; their lines are not logged (see the AOM console).")
                continue
            line = f"node {place}/{len(nodes)} {escape(node_id, 64)} {escape(status, 32)} in "
            line += _seconds(node.get("begin_time"), end)
            excerpt = "" if status.lower() in _UNQUOTED_NODE_STATUSES else output_excerpt(node.get("output"))
            if excerpt:
                line += f": {excerpt}"
            self.log.info("%s", line)

    def failure_message(self, detail: Mapping[str, Any]) -> str:
        """The failed execution's message: its status and failing node, and an excerpt of that node's output."""
        message = failure_message(self.workflow_id, self.execution_id, detail)
        excerpt = failed_node_output(detail)
        return f"{message} Output: {excerpt}" if excerpt else message


# --------------------------------------------------------------------------- on_node_failure


@dataclass(frozen=True)
class Decision:
    """What a wait does about a stop: fail with ``message``, keep waiting, or send ``action`` for ``node_id``."""

    fail: str | None = None
    action: NodeAction | None = None
    node_id: str | None = None


KEEP_WAITING = Decision()


def on_stop(
    detail: Mapping[str, Any],
    policy: OnNodeFailure,
    restarts: Mapping[str, int],
    max_node_restarts: int,
    workflow_id: str,
    execution_id: str,
) -> Decision:
    """Apply ``on_node_failure`` to an execution paused at a failed node (anything else: keep waiting)."""
    stop = stopped_at(detail)
    if stop is None or not stop.failed or not stop.paused or policy is OnNodeFailure.WAIT:
        return KEEP_WAITING
    where = f"AOM workflow {escape(workflow_id, 64)} execution {escape(execution_id, 64)} is paused at failed"
    if policy is OnNodeFailure.FAIL:
        return Decision(fail=f"{where} {stop.describe()} (on_node_failure='fail').")
    if policy is OnNodeFailure.SKIP:
        return Decision(action=NodeAction.SKIP, node_id=stop.node_id)
    if restarts.get(stop.node_id, 0) >= max_node_restarts:
        return Decision(
            fail=f"{where} {stop.describe()} again after {restarts.get(stop.node_id, 0)} restart(s) "
            f"(max_node_restarts={max_node_restarts})."
        )
    return Decision(action=NodeAction.RESTART, node_id=stop.node_id)


# --------------------------------------------------------------------------- the wait


@dataclass
class Wait:
    """One wait: which execution, until when, what it does at a failed node, and the restarts it sent."""

    workflow_id: str
    execution_id: str
    project_id: str | None = None
    poll_interval: float = 15.0
    #: Epoch seconds after which the wait ends as a timeout; None waits without limit.
    deadline: float | None = None
    policy: OnNodeFailure = OnNodeFailure.FAIL
    max_node_restarts: int = 1
    #: Restarts sent per node by this wait (kept across a trigger's hand-over in its arguments).
    restarts: dict[str, int] = field(default_factory=dict)
    #: Draw the first pause around the interval (:func:`poll_pause`): deferred waits that start together spread out.
    spread_first_poll: bool = False

    def past_deadline(self, slack: float = 0.0) -> bool:
        return self.deadline is not None and time.time() >= self.deadline - slack


@dataclass(frozen=True)
class WaitEnded:
    """How a wait ended: ``end`` is success, failure or timeout; ``detail`` is the last one read (None on timeout)."""

    end: WaitEnd
    message: str
    detail: dict[str, Any] | None
    last_status: str | None


def _timed_out(wait: Wait, tracker: StatusTracker) -> WaitEnded:
    return WaitEnded(
        WaitEnd.TIMEOUT,
        f"Execution {wait.execution_id} of workflow {wait.workflow_id} did not end before the deadline "
        f"(last status {escape(tracker.last, 64)}).",
        None,
        tracker.last,
    )


def poll(wait: Wait, tracker: StatusTracker) -> Plan[WaitEnded | None]:
    """Read the execution once and decide: its end, or None to keep waiting.

    A node operation the policy asks for is sent here, and the execution read again at once.
    A read that fails once the deadline has (nearly) passed ends the wait as a timeout: the
    deadline cut it. Any other failure is raised to the driver.
    """
    while True:
        if wait.past_deadline():
            return _timed_out(wait, tracker)
        try:
            # The read itself ends by the deadline: a slow answer cannot hold the wait past it.
            detail: dict[str, Any] = yield api.get_execution(
                wait.workflow_id, wait.execution_id, wait.project_id, deadline=wait.deadline
            )
        except AomError:
            if wait.past_deadline(DEADLINE_SLACK):
                return _timed_out(wait, tracker)
            raise
        outcome = tracker.observe(detail)
        if outcome is Outcome.SUCCESS:
            message = f"Execution {wait.execution_id} of workflow {wait.workflow_id} succeeded."
            return WaitEnded(WaitEnd.SUCCESS, message, detail, tracker.last)
        if outcome is Outcome.FAILURE:
            return WaitEnded(WaitEnd.FAILURE, tracker.failure_message(detail), detail, tracker.last)
        decision = on_stop(
            detail, wait.policy, wait.restarts, wait.max_node_restarts, wait.workflow_id, wait.execution_id
        )
        if decision.fail:
            return WaitEnded(WaitEnd.FAILURE, decision.fail, detail, tracker.last)
        if decision.action is None or decision.node_id is None:
            return None
        yield from operate_execution(
            wait.workflow_id, wait.execution_id, decision.action, decision.node_id, wait.project_id
        )
        _count(wait, tracker, decision.action, decision.node_id)


def _count(wait: Wait, tracker: StatusTracker, action: NodeAction, node_id: str) -> None:
    if action is NodeAction.RESTART:
        wait.restarts[node_id] = wait.restarts.get(node_id, 0) + 1
        tracker.log.warning(
            "Restarted failed node %s of execution %s (restart %d of at most %d).",
            escape(node_id, 64),
            escape(wait.execution_id, 64),
            wait.restarts[node_id],
            wait.max_node_restarts,
        )
    else:
        tracker.log.warning(
            "Skipped failed node %s of execution %s (on_node_failure='skip').",
            escape(node_id, 64),
            escape(wait.execution_id, 64),
        )


def follow_execution(wait: Wait, tracker: StatusTracker) -> Plan[WaitEnded]:
    """Poll the execution every ``poll_interval`` seconds until it ends or the deadline passes."""
    polls = 0
    while True:
        ended = yield from poll(wait, tracker)
        if ended is not None:
            return ended
        polls += 1
        pause = poll_pause(wait.poll_interval, polls) if wait.spread_first_poll else wait.poll_interval
        if wait.deadline is not None:
            pause = max(0.0, min(pause, wait.deadline - time.time()))
        # poll() has returned, so nothing of the last detail is kept while sleeping: a triggerer holds
        # thousands of waits, each would keep its last answer alive between polls.
        yield Pause(pause)
