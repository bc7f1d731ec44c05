"""Node operations: restart or skip an execution's failed node, continue past its pause node.

AOM can act on an execution that stopped at a node (reference §1.5): ``restart`` re-runs a
failed node, ``skip`` passes over it, ``continue`` passes a manual pause node. Which execution and
node statuses each action accepts is not documented; the emulator models the rules in
docs/operators.md, and whatever AOM refuses becomes
:class:`~airflow_provider_aom.exceptions.AomNodeActionRefusedError` naming the action, node and
statuses.

* :func:`stopped_at` says where an execution waits for an operation, if anywhere.
* :func:`operate_execution` is the operation as a plan (both hooks run it): the POST is not
  idempotent, so after an ambiguous failure it is never re-sent; the execution is read again and
  the operation counts as done only if the execution shows it.

The ``on_node_failure`` policy that decides when a wait sends one is in :mod:`~airflow_provider_aom.wait`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_aom import api
from airflow_provider_aom.api import Pause, Plan, Settings
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomAmbiguousOperationError,
    AomBadRequestError,
    AomConfigurationError,
    AomError,
    AomInvalidResponseError,
    AomNodeActionRefusedError,
    AomNothingToOperateError,
    AomServerError,
    AomThrottledError,
    AomTransportError,
)
from airflow_provider_aom.retry import may_have_happened
from airflow_provider_aom.vocabulary import (
    FAILED_EXECUTION_STATUS,
    FAILED_NODE_STATUSES,
    PAUSED_EXECUTION_STATUS,
    PAUSED_NODE_STATUS,
    TERMINATE_PATIENCE_SECONDS,
    NodeAction,
    Outcome,
    StatusRules,
    is_valid_id,
)

log = logging.getLogger(__name__)



def node_action(value: Any) -> NodeAction:
    try:
        return NodeAction(value)
    except ValueError:
        raise AomConfigurationError(
            f"action must be one of {', '.join(a.value for a in NodeAction)}, got {escape(value, 20)!r}."
        ) from None


@dataclass(frozen=True)
class Stop:
    """Where an execution waits for a person or an operation."""

    node_id: str
    node_status: str
    execution_status: str
    #: True: a failed node (restart, skip); False: a manual pause node (continue).
    failed: bool
    output: Any = None

    @property
    def paused(self) -> bool:
        """The execution is still waiting (``pausing``), not ended ``fail``."""
        return self.execution_status.lower() == PAUSED_EXECUTION_STATUS

    def describe(self) -> str:
        output = (
            f", output {escape(json.dumps(self.output, ensure_ascii=False, default=str), 300)}" if self.output else ""
        )
        return f"node {escape(self.node_id, 64)} ({escape(self.node_status, 32)}{output})"


def stopped_at(detail: Mapping[str, Any]) -> Stop | None:
    """The failed node of an execution paused at it or ended by it, else its pause node; None when neither."""
    status = str(detail.get("status", ""))
    if status.lower() not in (PAUSED_EXECUTION_STATUS, FAILED_EXECUTION_STATUS):
        return None
    nodes = [
        n
        for n in detail.get("execution_result_list") or []
        if isinstance(n, Mapping) and is_valid_id(n.get("node_id"))
    ]
    for node in nodes:
        if str(node.get("status", "")).lower() in FAILED_NODE_STATUSES:
            return Stop(node["node_id"], str(node["status"]), status, True, node.get("output"))
    if status.lower() == PAUSED_EXECUTION_STATUS:
        for node in nodes:
            if str(node.get("status", "")).lower() == PAUSED_NODE_STATUS:
                return Stop(node["node_id"], str(node["status"]), status, False, node.get("output"))
    return None


@dataclass(frozen=True)
class NodeOperation:
    """An operation AOM accepted (``confirmed``) or whose effect the execution showed after an unclear answer."""

    action: NodeAction
    node_id: str
    confirmed: bool = True


def _node(detail: Mapping[str, Any], node_id: str) -> tuple[Any, ...]:
    for node in detail.get("execution_result_list") or []:
        if isinstance(node, Mapping) and node.get("node_id") == node_id:
            return (node.get("status"), node.get("begin_time"), node.get("end_time"))
    return ()


def _changed(before: Mapping[str, Any], after: Mapping[str, Any], node_id: str) -> bool:
    """Whether the execution moved on from the stop the operation was for."""
    return before.get("status") != after.get("status") or _node(before, node_id) != _node(after, node_id)


def operate_execution(
    workflow_id: str,
    execution_id: str,
    action: str | NodeAction,
    node_id: str | None = None,
    project_id: str | None = None,
) -> Plan[NodeOperation]:
    """Restart or skip the execution's failed node, or continue past its pause node.

    ``node_id=None`` acts on the node the execution is stopped at (its failed node for restart and
    skip, its pause node for continue). The operation is sent once: after an unclear answer the
    execution is read again (for up to twice the connection's timeout) and the operation counts as
    done only when the execution shows it; otherwise
    :class:`~airflow_provider_aom.exceptions.AomAmbiguousOperationError`, nothing re-sent.
    """
    wanted = node_action(action)
    before: dict[str, Any] = yield api.get_execution(workflow_id, execution_id, project_id)
    stop = stopped_at(before)
    if node_id is None:
        if stop is None or stop.failed == (wanted is NodeAction.CONTINUE):
            what = "pause node to continue" if wanted is NodeAction.CONTINUE else "failed node to " + wanted.value
            raise AomNothingToOperateError(
                f"Execution {escape(execution_id, 64)} of workflow {escape(workflow_id, 64)} is "
                f"{escape(before.get('status'), 32)} with no {what}; give node_id to act on a node anyway."
            )
        node_id = stop.node_id
    node_status = escape(_node(before, node_id)[0] if _node(before, node_id) else "absent", 32)
    try:
        yield api.operate_execution(workflow_id, execution_id, wanted.value, node_id, project_id)
        return NodeOperation(wanted, node_id)
    except AomBadRequestError as exc:
        raise AomNodeActionRefusedError(
            f"AOM refused to {wanted.value} node {escape(node_id, 64)} of execution {escape(execution_id, 64)} "
            f"(workflow {escape(workflow_id, 64)}): the node is {node_status} and the execution "
            f"{escape(before.get('status'), 32)}. {exc}"
        ) from None
    except AomError as exc:
        if not may_have_happened(exc):
            raise
        cause = exc
    log.warning(
        "%s node %s of execution %s got no clear answer (%s); reading the execution to see whether it took effect.",
        wanted.value.capitalize(),
        escape(node_id, 64),
        escape(execution_id, 64),
        cause,
    )
    settings = yield Settings()
    settle_until = time.monotonic() + 2 * settings.timeout
    while True:
        try:
            after: dict[str, Any] = yield api.get_execution(workflow_id, execution_id, project_id)
        except AomError:
            after = before
        if _changed(before, after, node_id):
            log.warning("The execution shows the %s of node %s took effect.", wanted.value, escape(node_id, 64))
            return NodeOperation(wanted, node_id, confirmed=False)
        if time.monotonic() >= settle_until:
            break
        yield Pause(1.0)
    raise AomAmbiguousOperationError(
        f"{wanted.value.capitalize()} node {escape(node_id, 64)} of execution {escape(execution_id, 64)} failed "
        f"ambiguously ({cause}) and the execution still shows the node {node_status}: it was not re-sent. Look at "
        "the execution in the AOM console before acting again."
    )


# --------------------------------------------------------------------------- terminate


def ended_as(workflow_id: str, execution_id: str, project_id: str | None = None) -> Plan[str | None]:
    """The execution's status if it has ended, None while it runs: AOM refuses (400) to terminate an ended one."""
    detail: dict[str, Any] = yield api.get_execution(workflow_id, execution_id, project_id)
    status = str(detail.get("status", ""))
    return None if StatusRules().outcome(status) is Outcome.RUNNING else status


def terminate_when_reachable(
    workflow_id: str, execution_id: str, project_id: str | None = None, patience: float = TERMINATE_PATIENCE_SECONDS
) -> Plan[None]:
    """Terminate the execution, trying again for up to ``patience`` seconds while AOM cannot be reached.

    For a task whose deadline passed during an AOM outage: each attempt is a normal call (with its
    own retries); between attempts that found AOM unreachable (no answer, refused, 5xx, 429) the plan
    pauses and tries again, so the execution is terminated as soon as AOM answers. When AOM refuses
    (400) after an attempt whose answer was lost, the execution is read: one that has ended counts
    as terminated.
    """
    until = time.monotonic() + patience
    unclear = False
    while True:
        try:
            yield api.terminate_execution(workflow_id, execution_id, project_id)
            return
        except AomBadRequestError:
            if not unclear:
                raise
            if (yield from ended_as(workflow_id, execution_id, project_id)) is None:
                raise
            return
        except (AomTransportError, AomServerError, AomThrottledError, AomInvalidResponseError) as exc:
            unclear = unclear or may_have_happened(exc)
            left = until - time.monotonic()
            if left <= 0:
                raise
            log.warning(
                "AOM did not answer the terminate of execution %s (%s); trying again for up to %.0f s.",
                escape(execution_id, 64),
                exc,
                left,
            )
            yield Pause(min(5.0, left))
