"""Starting an execution exactly once: the submit, and which execution an ambiguous one started.

After a submit whose outcome is unknown (no answer, a dropped connection, a 5xx, a garbled
200), the hook lists the workflow's executions and applies these rules. An execution is a
candidate only when

* its ``execution_id`` passes the same check as a submit's answer, and its ``begin_time``
  is epoch milliseconds;
* it began inside the submit's window *on AOM's clock*: from the moment the POST left (minus
  :data:`DATE_MARGIN`) to the moment the list was read. The server clock is measured from the
  list answer's ``Date`` header; without one, the connection's ``submit_clock_skew`` widens
  the window around the local clock instead;
* it was not created by someone else: when AOM reports ``created_by`` and the connection's
  IAM user is known (:meth:`~airflow_provider_aom.auth_flow.AomProtocol.identity`), they must
  match.

Exactly one candidate is adopted. It is *owned* (the task may terminate it at its deadline or
when killed) only when its creator was checked; otherwise the task follows it but never stops
it. Anything else ends in :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError`.

:func:`start_execution` is the whole submit as a plan (:data:`~airflow_provider_aom.api.Plan`),
run alike by the sync and the async hook. With the same window and creator rules,
:func:`pending_submit` finds what the submit of an earlier try started when that try was lost before
it recorded the answer, and :func:`earlier_execution` finds, for ``retry_from_failure``, the execution
an earlier try of a task started.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from airflow_provider_aom import api
from airflow_provider_aom.api import Identify, Pause, Plan, Settings, server_clock_offset
from airflow_provider_aom.auth_flow import Identity
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomAmbiguousSubmitError,
    AomError,
    AomTransportError,
)
from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionList, since
from airflow_provider_aom.retry import RetrySchedule, is_unavailable, may_have_happened
from airflow_provider_aom.vocabulary import check_id

log = logging.getLogger(__name__)

#: Seconds allowed between the gateway's ``Date`` and the clock AOM stamps ``begin_time`` with
#: (both are Huawei Cloud servers on NTP), on top of ``Date``'s one-second resolution.
DATE_MARGIN = 2.0
#: Rows of the execution list whose latest time is older than this before the submit are not even kept
#: (they cannot have begun since): the list is a workflow's whole history. Far beyond any clock skew.
LIST_LOOKBACK_SECONDS = 86400.0

__all__ = ["server_clock_offset"]  # re-exported: where the submit's rules read AOM's clock


@dataclass(frozen=True)
class StartedExecution:
    """The execution a task follows, and whether the task can show it started it."""

    execution_id: str
    #: True when the submit answered with this id, or reconciliation matched its creator to the
    #: connection's user. Only then does the task terminate it (deadline, kill).
    owned: bool = True
    #: True when the id came from reconciliation, not from the submit's answer.
    adopted: bool = False


@dataclass(frozen=True)
class Candidate:
    execution_id: str
    begin_time: int
    created_by: str | None


@dataclass(frozen=True)
class Verdict:
    """The outcome: the adopted candidate (if exactly one is eligible), and what was seen."""

    adopted: Candidate | None
    owned: bool
    eligible: tuple[Candidate, ...]
    foreign: tuple[Candidate, ...]


@dataclass(frozen=True)
class SubmitWindow:
    """When an execution this submit started may have begun."""

    #: ``time.time()`` just before the POST was sent.
    sent_at: float
    #: ``submit_clock_skew``: the window's slack when the server's clock is unknown.
    fallback_skew: float

    def bounds(self, offset: float | None, now: float) -> tuple[float, float]:
        """``(earliest, latest)`` begin time in epoch seconds on AOM's clock."""
        if offset is None:
            return self.sent_at - self.fallback_skew, now + self.fallback_skew
        # Date is truncated to whole seconds: the server's clock is up to 1 s ahead of it.
        return self.sent_at + offset - DATE_MARGIN, now + offset + 1 + DATE_MARGIN


def in_window(executions: Iterable[ExecutionBrief], bounds: tuple[float, float]) -> list[Candidate]:
    """Executions whose begin time is inside ``bounds``, newest first."""
    earliest, latest = bounds
    found = [
        Candidate(e.execution_id, e.begin_time, e.created_by)
        for e in executions
        if e.begin_time is not None and earliest <= e.begin_time / 1000 <= latest
    ]
    return sorted(found, key=lambda c: c.begin_time, reverse=True)


def recent_executions(workflow_id: str, after: float, project_id: str | None = None) -> api.Call[ExecutionList]:
    """The list call for executions that may have begun after ``after`` (epoch seconds): only recent rows are kept."""
    floor_ms = int((after - LIST_LOOKBACK_SECONDS) * 1000)
    return api.list_executions(workflow_id, project_id, keep=since(floor_ms))


def needs_identity(candidates: Iterable[Candidate]) -> bool:
    """Whether the connection's user must be known to judge these candidates."""
    return any(c.created_by for c in candidates)


def decide(candidates: list[Candidate], identity: Identity | None) -> Verdict:
    foreign = tuple(c for c in candidates if identity and c.created_by and not identity.created(c.created_by))
    eligible = tuple(c for c in candidates if c not in foreign)
    if len(eligible) != 1:
        return Verdict(None, False, eligible, foreign)
    chosen = eligible[0]
    owned = identity is not None and chosen.created_by is not None and identity.created(chosen.created_by)
    return Verdict(chosen, owned, eligible, foreign)


def _listed(candidates: Iterable[Candidate]) -> str:
    return ", ".join(
        escape(c.execution_id, 64) + (f" (created by {escape(c.created_by, 32)})" if c.created_by else "")
        for c in candidates
    )


def ambiguous_message(workflow_id: str, cause: Exception, verdict: Verdict) -> str:
    """Why nothing was adopted, every execution seen named, and what to do."""
    if verdict.eligible:
        found = f"executions that began since then: {_listed(verdict.eligible)}"
    else:
        found = "no execution of this connection's user began since then"
    if verdict.foreign:
        found += f"; started by other users (left alone): {_listed(verdict.foreign)}"
    return (
        f"Submitting workflow {escape(workflow_id, 64)!r} failed ambiguously ({cause}); {found}. An execution may "
        "have started (or may still appear): check the workflow's executions in the AOM console and run the task "
        "again only if none belongs to this submit. Nothing was re-sent."
    )


def unreadable_message(workflow_id: str, cause: Exception, list_error: Exception) -> str:
    return (
        f"Submitting workflow {escape(workflow_id, 64)!r} failed ({cause}) and the execution list could not be read "
        f"({list_error}). An execution may have started: check the workflow's executions in the AOM console before "
        "running the task again."
    )


def recheck_error(workflow_id: str, cause: Exception, list_error: Exception | None) -> AomError:
    """A submit whose outcome is unknown, failed retryably: the next try reads the list again first."""
    seen = (
        f"the execution list cannot be read now ({list_error})"
        if list_error is not None
        else "no execution of this connection's user began since then, as far as the list shows yet"
    )
    return AomError(
        f"Submitting workflow {escape(workflow_id, 64)!r} failed ambiguously ({cause}); {seen}. Nothing was "
        "re-sent: the task's next try reads the list again (an execution may still appear) and submits only if "
        "none began."
    )


def adopted(workflow_id: str, verdict: Verdict) -> StartedExecution:
    """The execution a verdict adopted, with the warning that says so logged."""
    assert verdict.adopted is not None
    log.warning("%s", adoption_note(workflow_id, verdict))
    return StartedExecution(verdict.adopted.execution_id, owned=verdict.owned, adopted=True)


def adoption_note(workflow_id: str, verdict: Verdict) -> str:
    """The warning logged when an execution is adopted."""
    assert verdict.adopted is not None
    chosen = verdict.adopted
    ownership = (
        f"it was created by this connection's user ({escape(chosen.created_by, 32)})"
        if verdict.owned
        else "its creator could not be checked, so this task will follow it but never terminate it"
    )
    return (
        f"Adopting execution {escape(chosen.execution_id, 64)} of workflow {escape(workflow_id, 64)}: it is the only "
        f"one that began since the ambiguous submit; {ownership}."
    )


# --------------------------------------------------------------------------- the submit, as a plan


def start_execution(
    workflow_id: str, project_id: str | None = None, *, recheck_later: bool = False
) -> Plan[StartedExecution]:
    """Start an execution of ``workflow_id``: its id, and whether this task can show it started it.

    Never starts two executions by accident: the POST is re-sent at once only when it provably
    started nothing (no byte of it sent, 429, expired token). After an ambiguous failure the
    workflow's executions are read instead: after a timeout or a dropped connection AOM may still be
    creating the execution, so the list is read again, about once a second, for twice the
    connection's ``timeout``, and nothing is re-sent. After a 503 (the service said it is unavailable)
    the POST is re-sent after the pause the server asked for, within the connection's retry bounds,
    but only when the list, read after that pause, shows that no execution began since the first
    POST; when the retries run out with nothing begun, the task fails retryably.

    ``recheck_later``: the caller's next try looks at the list again
    before it submits (:func:`pending_submit`), so when the list shows nothing began, or cannot be read,
    the failure is retryable (:class:`~airflow_provider_aom.exceptions.AomError`) instead of
    :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError`.
    """
    check_workflow = check_id("workflow_id", workflow_id)
    settings = yield Settings()
    window = SubmitWindow(time.time(), settings.submit_clock_skew)
    resends = RetrySchedule(settings.retry, retryable=is_unavailable)
    while True:
        try:
            execution_id: str = yield api.execute_workflow(check_workflow, project_id)
            return StartedExecution(execution_id)
        except AomError as exc:
            if not may_have_happened(exc):
                raise
            cause = exc
        pause = resends.pause_after(cause)
        log.warning(
            "Submitting workflow %s failed ambiguously (%s); %slisting its executions to find out whether it started.",
            escape(workflow_id, 64),
            cause,
            f"after {pause:.1f} s " if pause is not None else "",
        )
        if pause is not None:
            yield Pause(pause)
        settle = 2 * settings.timeout if isinstance(cause, AomTransportError) else 0.0
        unreadable = functools.partial(recheck_error, workflow_id, cause) if recheck_later else None
        verdict = yield from find_started(
            workflow_id, window, project_id, settle=settle, cause=cause, unreadable=unreadable
        )
        if verdict.adopted is not None:
            return adopted(workflow_id, verdict)
        if verdict.eligible:
            raise AomAmbiguousSubmitError(ambiguous_message(workflow_id, cause, verdict))
        if not is_unavailable(cause):
            if recheck_later:
                raise recheck_error(workflow_id, cause, None)
            raise AomAmbiguousSubmitError(ambiguous_message(workflow_id, cause, verdict))
        if pause is None:
            log.warning(
                "No execution of workflow %s began since the first submit: nothing started. Giving up for this try "
                "(the connection's retry_attempts / retry_total are spent); an Airflow retry may submit again.",
                escape(workflow_id, 64),
            )
            raise cause
        log.warning("No execution of workflow %s began since the first submit: re-sending it.", escape(workflow_id, 64))


def find_started(
    workflow_id: str,
    window: SubmitWindow,
    project_id: str | None,
    *,
    settle: float,
    cause: Exception,
    unreadable: Callable[[Exception], AomError] | None = None,
) -> Plan[Verdict]:
    """Which execution a submit whose outcome is unknown started, read from the workflow's list.

    The list is read again about once a second for ``settle`` seconds (from its first answer) while it
    shows no candidate (AOM may still be creating the execution). A list that cannot be read is tried again within the
    connection's retry bounds, then ends in ``unreadable(list_error)`` (default:
    :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError` naming ``cause``).
    """
    settings = yield Settings()
    listing = recent_executions(workflow_id, window.sent_at, project_id)
    # A list call already retries transient failures; this outer schedule lets one outage (a storm, a
    # down, a blackhole) outlast it, within the same bounds again.
    patience = RetrySchedule(settings.retry)
    # Counted from the first list AOM answers: after an outage, requests it held may still be in hand.
    settle_until: float | None = None
    while True:
        try:
            executions: ExecutionList = yield listing
        except AomError as exc:
            again = patience.pause_after(exc)
            if again is None:
                if unreadable is not None:
                    raise unreadable(exc) from None
                raise AomAmbiguousSubmitError(unreadable_message(workflow_id, cause, exc)) from None
            yield Pause(again)
            continue
        if settle_until is None:
            settle_until = time.monotonic() + settle
        candidates = in_window(executions, window.bounds(executions.clock_offset, time.time()))
        if candidates or time.monotonic() >= settle_until:
            break
        yield Pause(min(1.0, max(settle / 8, 0.1)))
    identity = (yield Identify()) if needs_identity(candidates) else None
    return decide(candidates, identity)


def pending_submit(workflow_id: str, sent_at: float, project_id: str | None = None) -> Plan[StartedExecution | None]:
    """What the submit of an earlier try started when that try was lost before it recorded the answer.

    The earlier try recorded ``sent_at`` (epoch seconds) just before its POST, then its worker died
    (or its answer never came) before the execution id was stored. The same rules as after an
    ambiguous submit decide, on a list read now and again for twice the connection's ``timeout``
    while it shows nothing: exactly one candidate is adopted, none means that POST started nothing
    (None: the caller submits), more than one ends in
    :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError`. A list that cannot be read
    fails the try retryably (:class:`~airflow_provider_aom.exceptions.AomError`): nothing was sent,
    and the next try asks again.
    """
    settings = yield Settings()
    cause = AomError("an earlier try's submit got no recorded answer (its task process was lost)")

    def unreadable(list_error: Exception) -> AomError:
        return AomError(
            f"An earlier try of this task submitted workflow {escape(workflow_id, 64)!r} and was lost before it "
            f"recorded the answer; the execution list, which tells whether that submit started anything, cannot "
            f"be read now ({list_error}). Nothing was sent; the next try looks again."
        )

    window = SubmitWindow(sent_at, settings.submit_clock_skew)
    verdict = yield from find_started(
        workflow_id, window, project_id, settle=2 * settings.timeout, cause=cause, unreadable=unreadable
    )
    if verdict.adopted is not None:
        return adopted(workflow_id, verdict)
    if verdict.eligible:
        raise AomAmbiguousSubmitError(ambiguous_message(workflow_id, cause, verdict))
    log.info(
        "The submit of an earlier try (sent %s) started no execution of workflow %s; submitting.",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at)),
        escape(workflow_id, 64),
    )
    return None


def earlier_execution(workflow_id: str, since: float, project_id: str | None = None) -> Plan[str | None]:
    """The newest execution of the workflow that began since ``since`` (epoch seconds) and is not another user's.

    For ``retry_from_failure`` below Airflow 3.3 (no task state store): ``since`` is when the task
    instance's first try started, so only an execution an earlier try can have started qualifies.
    """
    executions: ExecutionList = yield recent_executions(workflow_id, since, project_id)
    # begin_time is on AOM's clock: the window moves by its offset from ours (none known: taken as 0).
    offset = executions.clock_offset or 0.0
    candidates = in_window(executions, (since + offset - DATE_MARGIN, time.time() + offset + 1 + DATE_MARGIN))
    if any(c.created_by for c in candidates):
        identity: Identity | None = yield Identify()
        if identity is not None:
            candidates = [c for c in candidates if c.created_by is None or identity.created(c.created_by)]
    return candidates[0].execution_id if candidates else None
