"""How a :class:`~airflow_provider_aom.api.Call` or a :data:`~airflow_provider_aom.api.Plan` becomes a hook's steps.

A hook performs three kinds of step only (:data:`~airflow_provider_aom.auth_flow.Step`): send a
request, fetch an IAM token, pause. Everything between them is decided here, once, for the sync
and the async hook alike, without I/O:

* :func:`perform`: one call: its project id (resolved once), the request, the retries the call
  allows (:mod:`~airflow_provider_aom.retry`: transient failures of a read; only provably unsent
  failures of anything else), each attempt's authentication (:mod:`~airflow_provider_aom.auth_flow`),
  and the parse of the answer.
* :func:`run`: a plan: each call it yields is performed, each pause passed on, its ``Identify``
  and ``Settings`` steps answered, and each failure thrown back into it.
* :func:`project_id`: the project id with retries, for callers that need it alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_provider_aom import api
from airflow_provider_aom.api import Call, Identify, Pause, Plan, Settings
from airflow_provider_aom.auth_flow import AomProtocol, Flow
from airflow_provider_aom.exceptions import AomError
from airflow_provider_aom.retry import RetrySchedule, is_safe_to_resend, is_transient

T = TypeVar("T")


def monotonic(deadline: float | None) -> float | None:
    """An epoch-seconds deadline on the monotonic clock (what the transport and retries count with)."""
    return None if deadline is None else time.monotonic() + (deadline - time.time())


def retrying(schedule: RetrySchedule, attempt: Callable[[], Flow[T]]) -> Flow[T]:
    """Run ``attempt`` again after each failure the schedule retries, pausing as it says."""
    while True:
        try:
            return (yield from attempt())
        except AomError as exc:
            pause = schedule.pause_after(exc)
            if pause is None:
                raise
            yield Pause(pause)


def project_id(protocol: AomProtocol, override: str | None = None, deadline: float | None = None) -> Flow[str]:
    """The project id to use: ``override``, the connection's, or resolved from IAM once (``deadline``: epoch s)."""
    known = protocol.known_project_id(override)
    if known:
        return known
    schedule = RetrySchedule(protocol.config.retry, deadline=monotonic(deadline))
    return (yield from retrying(schedule, lambda: protocol.project_id(override, schedule.deadline)))


def perform(protocol: AomProtocol, call: Call[T]) -> Flow[T]:
    """Make one call: resolve the project, send with retries as the call allows, parse the answer."""
    project = yield from project_id(protocol, call.project_id, call.deadline)
    request = call.request(project)
    retryable = is_transient if request.idempotent else is_safe_to_resend
    schedule = RetrySchedule(protocol.config.retry, retryable=retryable, deadline=monotonic(call.deadline))

    def attempt() -> Flow[T]:
        response = yield from protocol.call(request, project, schedule.deadline)
        return call.parse(api.check_success(response, request), request)

    return (yield from retrying(schedule, attempt))


def run(protocol: AomProtocol, plan: Plan[T]) -> Flow[T]:
    """Run a plan: each call it yields is performed, each pause passed on, and the outcome sent back."""
    try:
        step = next(plan)
        while True:
            try:
                result: Any
                if isinstance(step, Pause):
                    result = yield step
                elif isinstance(step, Identify):
                    result = yield from protocol.identity(time.monotonic() + protocol.config.retry.total)
                elif isinstance(step, Settings):
                    result = protocol.config
                else:
                    result = yield from perform(protocol, step)
            except AomError as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(result)
    except StopIteration as stop:
        outcome: T = stop.value
        return outcome
