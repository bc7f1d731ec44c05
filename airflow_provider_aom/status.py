"""The vocabulary of waiting, in one place: what a status means, how a wait ends, what it may do.

AOM documents no enum for an execution's ``status`` (reference §2): it stays an open string,
and :class:`StatusRules` classifies it into an :class:`Outcome`. The defaults come from the
workflow-status filter of the workflow list, compared case-insensitively; anything neither a
success nor a failure is still running. A deferred wait ends with a trigger event whose
``status`` is a :class:`WaitEnd`. :class:`NodeAction` and :class:`OnNodeFailure` name what can be
done at a stopped node (:mod:`~airflow_provider_aom.recovery` does it).

This module is what operators need to be *built* (DAG files import them at parse time), so it
imports nothing but the standard library and the exceptions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from airflow_provider_aom.exceptions import AomConfigurationError

DEFAULT_SUCCESS_STATUSES = frozenset({"success"})
DEFAULT_FAILURE_STATUSES = frozenset({"fail", "cancel", "timeout", "approvalfailed"})
#: Running, but waiting for a human (approval, or a paused / failed node to restart or skip).
NEEDS_PERSON_STATUSES = frozenset({"waitapproval", "pausing"})
#: The status of an execution that runs (the usual one after a start). A wait deferred with it as the
#: last logged status logs only changes away from it: a trigger that moves to another triggerer (which
#: knows only its deferral arguments) does not log "executing" again.
EXECUTING_STATUS = "executing"
#: Seconds: a poll that fails this close to a wait's deadline was cut by it, so the wait ends as a timeout.
DEADLINE_SLACK = 0.5


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


class Outcome(str, Enum):
    """What a polled status means for the wait."""

    SUCCESS = "success"
    FAILURE = "failure"
    RUNNING = "running"


class WaitEnd(str, Enum):
    """How a deferred wait ended: the ``status`` of the trigger's event."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    ERROR = "error"

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> WaitEnd | None:
        """The end an event reports; None for anything this version does not know."""
        try:
            return cls(event.get("status"))
        except ValueError:
            return None

    @property
    def outcome(self) -> Outcome | None:
        """The execution's outcome, for the ends that have one."""
        return {WaitEnd.SUCCESS: Outcome.SUCCESS, WaitEnd.FAILURE: Outcome.FAILURE}.get(self)


def normalize(statuses: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    if statuses is None:
        return default
    if isinstance(statuses, str):
        statuses = [statuses]
    return frozenset(s.strip().lower() for s in statuses)


class StatusRules:
    """Classify a status string as an :class:`Outcome`."""

    def __init__(self, success: Iterable[str] | None = None, failure: Iterable[str] | None = None) -> None:
        self.success = normalize(success, DEFAULT_SUCCESS_STATUSES)
        self.failure = normalize(failure, DEFAULT_FAILURE_STATUSES)
        overlap = self.success & self.failure
        if overlap:
            raise AomConfigurationError(
                f"success_statuses and failure_statuses share {sorted(overlap)}; a status can be only one."
            )

    def outcome(self, status: str) -> Outcome:
        key = status.lower()
        if key in self.success:
            return Outcome.SUCCESS
        if key in self.failure:
            return Outcome.FAILURE
        return Outcome.RUNNING

    @staticmethod
    def needs_person(status: str) -> bool:
        return status.lower() in NEEDS_PERSON_STATUSES


class NodeAction(str, Enum):
    """The node operations of reference §1.5."""

    RESTART = "restart"
    SKIP = "skip"
    CONTINUE = "continue"


class OnNodeFailure(str, Enum):
    """What a wait does when the execution pauses at a failed node."""

    FAIL = "fail"
    WAIT = "wait"
    RESTART = "restart"
    SKIP = "skip"


def on_node_failure(value: Any, allowed: tuple[OnNodeFailure, ...] = tuple(OnNodeFailure)) -> OnNodeFailure:
    """Validate an ``on_node_failure`` argument (ValueError: a DAG-file error, raised at parse time)."""
    try:
        policy = OnNodeFailure(value)
    except ValueError:
        policy = None
    if policy is None or policy not in allowed:
        raise ValueError(f"on_node_failure must be one of {', '.join(p.value for p in allowed)}, got {value!r}.")
    return policy


#: Default byte budget of an execution detail in XCom or in a trigger event.
DEFAULT_MAX_DETAIL_BYTES = 64 * 1024
#: Smallest budget a caller may ask for: the ids, status, times and a truncation note fit in it.
MIN_DETAIL_BYTES = 2 * 1024


def check_max_detail_bytes(value: Any) -> int:
    """Validate a ``max_detail_bytes`` argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_DETAIL_BYTES:
        raise ValueError(f"max_detail_bytes must be an integer of at least {MIN_DETAIL_BYTES} (bytes of JSON).")
    return value
