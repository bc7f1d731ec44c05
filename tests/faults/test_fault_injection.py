"""Every fault class on the execute POST and on the status GET, over real HTTP against the emulator.

For each fault the emulator can inject (a delay past the client timeout, a connection
dropped before or after the server acted, 429 with ``Retry-After``, 500/502/503/504, a
malformed or truncated 200 body, an expired IAM token) these tests check:

* how many executions exist afterwards (never two from one submit);
* that every execution the server created is either the hook's return value or named in
  the error it raised;
* what the emulator saw: how many execute POSTs (a re-send only after 429 or an expired
  token), and after an ambiguous failure no further POST but one execution-list GET.

Status reads are retried on transport errors, 429, 5xx and garbled 2xx bodies, never on other 4xx; the DAG
tests check that 503s while a wait polls are survived, sync and deferrable.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.exceptions import (
    AomAmbiguousSubmitError,
    AomApiError,
    AomAuthenticationError,
    AomBadRequestError,
    AomError,
    AomInvalidResponseError,
    AomNotFoundError,
    AomPermissionError,
    AomServerError,
    AomThrottledError,
)
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.wire import ApiResponse, HttpRequest, RequestFacts
from tests.conftest import UseConnection
from tests.dags.dagrun import load_test_dag, run, task_states, xcom
from tests.faults import DELAY, DELAY_TIMEOUT, FAST, executions_path, fault_classes, logged, settle, status_path

# Executing for 600 s: nothing the tests read changes while they run.
WORKFLOW = "wf-long"


def airflow_fail_exception() -> type[BaseException]:
    from airflow.providers.common.compat.sdk import AirflowFailException

    return AirflowFailException


@dataclass(frozen=True)
class Fault:
    """One injected fault class and what the provider must do about it."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Connection extras on top of FAST.
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, emulator: AomEmulator, method: str, path: str, count: int = 1) -> None:
        emulator.state.add_fault(self.kind, method=method, path=path, count=count, **self.options)

    @property
    def delays(self) -> int:
        return 1 if self.kind == "delay" else 0


RETRY_AFTER = 0.3
#: Connection extras some classes need: a timeout shorter than the delay; retry_max_wait above Retry-After,
#: so the wait is the server's.
_EXTRAS: dict[str, dict[str, Any]] = {"delay": {"timeout": DELAY_TIMEOUT}, "429": {"retry_max_wait": 1.0}}
FAULTS: dict[str, Fault] = {
    name: Fault(kind, options, _EXTRAS.get(name, {}))
    for name, (kind, options) in fault_classes(DELAY, RETRY_AFTER).items()
}


def connect(use_connection: UseConnection, emulator: AomEmulator, mode: str, **extra: Any) -> AomHook:
    """A hook whose token and project id are already known, then a reset emulator: the log shows only what follows."""
    use_connection(mode, extra={**FAST, **extra})
    hook = AomHook()
    hook.get_project_id()
    emulator.state.reset()
    return hook


def outcome_of(call: Callable[[], Any]) -> tuple[Any, BaseException | None, float]:
    began = time.monotonic()
    try:
        result = call()
    except AomError as exc:
        return None, exc, time.monotonic() - began
    return result, None, time.monotonic() - began


def ids(emulator: AomEmulator, workflow_id: str = WORKFLOW) -> list[str]:
    return [e["execution_id"] for e in emulator.state.executions() if e["workflow_id"] == workflow_id]


def index_of(emulator: AomEmulator, record: dict[str, Any]) -> int:
    return [r["request_id"] for r in emulator.state.requests()].index(record["request_id"])


# --------------------------------------------------------------------------- the execute POST


@dataclass(frozen=True)
class SubmitCase:
    fault: str
    #: returned (first answer), retried (re-sent, then answered), resent (re-sent after the list showed none
    #: began), adopted (reconciled), ambiguous (error)
    outcome: str
    posts: int
    #: execution-list GETs; None: at least one (after a transport error, listing again while the server may
    #: still be working is allowed)
    lists: int | None
    #: executions that exist once the emulator has handled every request
    created: int


SUBMIT_CASES = [
    # The server is still working when the client gives up: the hook keeps listing for a while and adopts it.
    SubmitCase("delay", "ambiguous", posts=1, lists=None, created=1),
    SubmitCase("drop_before", "ambiguous", posts=1, lists=None, created=0),
    SubmitCase("drop_after", "adopted", posts=1, lists=1, created=1),
    SubmitCase("429", "retried", posts=2, lists=0, created=1),
    SubmitCase("500", "ambiguous", posts=1, lists=1, created=0),
    SubmitCase("502", "ambiguous", posts=1, lists=1, created=0),
    # 503: the service said it is unavailable; re-sent once the list showed nothing began.
    SubmitCase("503", "resent", posts=2, lists=1, created=1),
    SubmitCase("504", "ambiguous", posts=1, lists=1, created=0),
    SubmitCase("malformed", "adopted", posts=1, lists=1, created=1),
    SubmitCase("truncated", "adopted", posts=1, lists=1, created=1),
    SubmitCase("expire_token", "retried", posts=2, lists=0, created=1),
]


def case_params(cases: list[Any]) -> list[Any]:
    """Each case in aksk and password mode (expire_token: password only, the mode with a token to expire)."""
    params = []
    for case in cases:
        modes = ["password"] if case.fault == "expire_token" else ["aksk", "password"]
        params += [pytest.param(case, mode, id=f"{case.fault}-{mode}") for mode in modes]
    return params


@pytest.mark.parametrize(("case", "mode"), case_params(SUBMIT_CASES))
def test_submit_fault(case: SubmitCase, mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    fault = FAULTS[case.fault]
    hook = connect(use_connection, emulator, mode, **fault.extra)
    iam_before = emulator.state.iam_token_requests()
    fault.add(emulator, "POST", r"/executions$")

    result, error, elapsed = outcome_of(lambda: hook.execute_workflow(WORKFLOW))
    visible = ids(emulator)  # what the hook could have known when it answered
    settle(emulator.state, fault.delays)
    created = ids(emulator)
    posts = logged(emulator.state, "POST", executions_path(WORKFLOW))
    lists = logged(emulator.state, "GET", executions_path(WORKFLOW))

    # Never two executions from one submit, and exactly the intended number.
    assert len(created) == case.created, created
    assert len(posts) == case.posts, emulator.state.requests()
    if case.lists is None:
        assert len(lists) >= 1, emulator.state.requests()
    else:
        assert len(lists) == case.lists, emulator.state.requests()
    # Every execution known when the hook answered is its return value or named in its error.
    for execution_id in visible:
        assert execution_id == result or (error is not None and execution_id in str(error))
    if case.outcome == "resent":
        # The list was read between the answered-503 POST and its re-send.
        assert index_of(emulator, posts[0]) < index_of(emulator, lists[0]) < index_of(emulator, posts[1])
    elif lists and case.fault != "delay":  # a delayed POST is logged when the server finally answers it
        # Reconciliation came after the (only) POST, and nothing was sent after it.
        assert index_of(emulator, lists[0]) > index_of(emulator, posts[-1])

    if case.fault == "delay":
        # Created after the read timeout: adopted once the server has created it, or named in the error.
        [late] = created
        assert late == result or (error is not None and late in str(error))
    if case.fault == "delay" and error is None:
        # The late execution is adopted once the server has created it.
        assert [result] == created
    elif case.outcome == "ambiguous":
        assert isinstance(error, AomAmbiguousSubmitError), error
        assert "Nothing was re-sent" in str(error)
    else:
        assert error is None, error
        assert [result] == created
    if case.fault == "429":
        # Re-sent exactly once, and not before the server's Retry-After.
        assert [p["status"] for p in posts] == [429, 200]
        assert posts[1]["time"] - posts[0]["time"] >= RETRY_AFTER
        assert elapsed >= RETRY_AFTER
    if case.fault == "expire_token":
        assert [p["status"] for p in posts] == [401, 200]
        assert emulator.state.iam_token_requests() - iam_before == 1


def test_ambiguous_submit_names_every_candidate(use_connection: UseConnection, emulator: AomEmulator) -> None:
    """Another execution began inside the clock-skew window: two candidates, none adopted, both named."""
    hook = connect(use_connection, emulator, "aksk")
    earlier = hook.execute_workflow(WORKFLOW)
    FAULTS["drop_after"].add(emulator, "POST", r"/executions$")
    with pytest.raises(AomAmbiguousSubmitError) as info:
        hook.execute_workflow(WORKFLOW)
    created = ids(emulator)
    assert len(created) == 2
    for execution_id in created:
        assert execution_id in str(info.value)
    assert earlier in created
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 2


def test_execution_list_outage_during_reconciliation_is_retried(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    hook = connect(use_connection, emulator, "aksk")
    FAULTS["drop_after"].add(emulator, "POST", r"/executions$")
    FAULTS["503"].add(emulator, "GET", r"/executions$", count=2)
    execution_id = hook.execute_workflow(WORKFLOW)
    assert ids(emulator) == [execution_id]
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1
    assert [r["status"] for r in logged(emulator.state, "GET", executions_path(WORKFLOW))] == [503, 503, 200]


def test_unreadable_execution_list_fails_without_resending(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    """The list answers garbage on every attempt (each one retried): the error says it could not be read."""
    hook = connect(use_connection, emulator, "aksk")
    FAULTS["drop_after"].add(emulator, "POST", r"/executions$")
    FAULTS["malformed"].add(emulator, "GET", r"/executions$", count=50)
    with pytest.raises(AomAmbiguousSubmitError, match="could not be read") as info:
        hook.execute_workflow(WORKFLOW)
    assert "may have started" in str(info.value)
    assert len(ids(emulator)) == 1
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1


def test_persistent_throttling_gives_up_after_the_attempts(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    hook = connect(use_connection, emulator, "aksk", retry_attempts=3)
    emulator.state.add_fault("status", method="POST", path=r"/executions$", status=429, count=10)
    with pytest.raises(AomThrottledError) as info:
        hook.execute_workflow(WORKFLOW)
    assert not isinstance(info.value, airflow_fail_exception()), "nothing started: an Airflow retry is safe"
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 3
    assert logged(emulator.state, "GET", executions_path(WORKFLOW)) == []
    assert ids(emulator) == []


def test_retry_after_longer_than_retry_max_wait_is_not_cut_short(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    hook = connect(use_connection, emulator, "aksk", retry_max_wait=0.1)
    emulator.state.add_fault("status", method="POST", path=r"/executions$", status=429, retry_after=0.5)
    result, error, _ = outcome_of(lambda: hook.execute_workflow(WORKFLOW))
    posts = logged(emulator.state, "POST", executions_path(WORKFLOW))
    # Either honoured (re-sent no earlier than Retry-After) or not re-sent at all.
    assert len(posts) == 1 or posts[1]["time"] - posts[0]["time"] >= 0.5, (result, error)


def test_refused_connection_is_resent(
    use_connection: UseConnection, emulator: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt meets a closed port (provably never sent): the POST is sent again, once."""
    hook = connect(use_connection, emulator, "aksk")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    real_send = hook.transport.send
    calls: list[str] = []

    def first_attempt_refused(request: HttpRequest[RequestFacts], deadline: float) -> ApiResponse:
        calls.append(request.url)
        if len(calls) == 1:
            parts = urlsplit(request.url)
            request = dataclasses.replace(request, url=urlunsplit(parts._replace(netloc=f"127.0.0.1:{closed_port}")))
        return real_send(request, deadline)

    monkeypatch.setattr(hook.transport, "send", first_attempt_refused)
    execution_id = hook.execute_workflow(WORKFLOW)
    assert len(calls) == 2
    assert ids(emulator) == [execution_id]
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1
    assert logged(emulator.state, "GET", executions_path(WORKFLOW)) == []


def test_token_rejected_twice_is_an_authentication_error(use_connection: UseConnection, emulator: AomEmulator) -> None:
    hook = connect(use_connection, emulator, "password")
    FAULTS["expire_token"].add(emulator, "POST", r"/executions$", count=2)
    with pytest.raises(AomAuthenticationError) as info:
        hook.execute_workflow(WORKFLOW)
    assert isinstance(info.value, airflow_fail_exception())
    assert [p["status"] for p in logged(emulator.state, "POST", executions_path(WORKFLOW))] == [401, 401]
    assert ids(emulator) == []


def test_static_token_rejected_is_not_resent(use_connection: UseConnection, emulator: AomEmulator) -> None:
    hook = connect(use_connection, emulator, "token")
    FAULTS["expire_token"].add(emulator, "POST", r"/executions$")
    with pytest.raises(AomAuthenticationError):
        hook.execute_workflow(WORKFLOW)
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1
    assert ids(emulator) == []


def test_failed_token_renewal_is_not_an_ambiguous_submit(use_connection: UseConnection, emulator: AomEmulator) -> None:
    hook = connect(use_connection, emulator, "password")
    FAULTS["expire_token"].add(emulator, "POST", r"/executions$")
    emulator.state.add_fault("status", method="POST", path=r"^/v3/auth/tokens$", status=503)
    result, error, _ = outcome_of(lambda: hook.execute_workflow(WORKFLOW))
    assert not isinstance(error, AomAmbiguousSubmitError), error
    assert logged(emulator.state, "GET", executions_path(WORKFLOW)) == []
    assert ids(emulator) == ([result] if result else [])


def test_ambiguous_submit_error_is_not_retried_by_airflow() -> None:
    """Pinned separately from the DAG test below: the class itself must stop Airflow retries."""
    assert issubclass(AomAmbiguousSubmitError, airflow_fail_exception())


# --------------------------------------------------------------------------- the status GET


@dataclass(frozen=True)
class ReadCase:
    fault: str
    #: the detail is returned (after a retry) or a typed error is raised
    survives: bool
    gets: int


READ_CASES = [
    ReadCase("delay", True, 2),
    ReadCase("drop_before", True, 2),
    ReadCase("drop_after", True, 2),
    ReadCase("429", True, 2),
    ReadCase("500", True, 2),
    ReadCase("502", True, 2),
    ReadCase("503", True, 2),
    ReadCase("504", True, 2),
    # A 200 with a body that is not the documented detail (a proxy's page, a cut answer) is read again.
    ReadCase("malformed", True, 2),
    ReadCase("truncated", True, 2),
    ReadCase("expire_token", True, 2),
]


@pytest.mark.parametrize(("case", "mode"), case_params(READ_CASES))
def test_status_read_fault(case: ReadCase, mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    fault = FAULTS[case.fault]
    hook = connect(use_connection, emulator, mode, **fault.extra)
    execution_id = hook.execute_workflow(WORKFLOW)
    iam_before = emulator.state.iam_token_requests()
    fault.add(emulator, "GET", r"/status$")

    detail, error, elapsed = outcome_of(lambda: hook.get_execution(WORKFLOW, execution_id))
    settle(emulator.state, fault.delays)
    gets = logged(emulator.state, "GET", status_path(WORKFLOW, execution_id))

    # Reads never create anything and never re-send the submit.
    assert ids(emulator) == [execution_id]
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1
    assert len(gets) == case.gets, emulator.state.requests()
    if case.survives:
        assert error is None, error
        assert detail["execution_id"] == execution_id
        assert detail["status"] == "executing"
    else:
        assert isinstance(error, AomInvalidResponseError), error
        assert execution_id in str(error)
        assert gets[0]["request_id"] in str(error), "the request id is kept for support"
    if case.fault == "429":
        assert gets[1]["time"] - gets[0]["time"] >= RETRY_AFTER
        assert elapsed >= RETRY_AFTER
    if case.fault == "expire_token":
        assert emulator.state.iam_token_requests() - iam_before == 1


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, AomBadRequestError), (403, AomPermissionError), (404, AomNotFoundError), (409, AomApiError)],
)
def test_other_4xx_on_a_read_is_never_retried(
    status: int, error_type: type[AomApiError], use_connection: UseConnection, emulator: AomEmulator
) -> None:
    hook = connect(use_connection, emulator, "aksk")
    execution_id = hook.execute_workflow(WORKFLOW)
    emulator.state.add_fault("status", method="GET", path=r"/status$", status=status, count=5)
    with pytest.raises(error_type) as info:
        hook.get_execution(WORKFLOW, execution_id)
    assert info.value.status == status
    if status != 409:
        assert isinstance(info.value, airflow_fail_exception()), "never succeeds on an Airflow retry"
    assert len(logged(emulator.state, "GET", status_path(WORKFLOW, execution_id))) == 1


def test_read_retries_are_bounded_in_attempts(use_connection: UseConnection, emulator: AomEmulator) -> None:
    hook = connect(use_connection, emulator, "aksk", retry_attempts=3)
    execution_id = hook.execute_workflow(WORKFLOW)
    emulator.state.add_fault("status", method="GET", path=r"/status$", status=503, count=10)
    with pytest.raises(AomServerError):
        hook.get_execution(WORKFLOW, execution_id)
    assert len(logged(emulator.state, "GET", status_path(WORKFLOW, execution_id))) == 3


def test_read_retries_are_bounded_in_total_time(use_connection: UseConnection, emulator: AomEmulator) -> None:
    hook = connect(use_connection, emulator, "aksk", retry_total=0.3, retry_max_wait=5)
    execution_id = hook.execute_workflow(WORKFLOW)
    emulator.state.add_fault("status", method="GET", path=r"/status$", status=429, retry_after=1.2, count=10)
    _, error, elapsed = outcome_of(lambda: hook.get_execution(WORKFLOW, execution_id))
    assert isinstance(error, AomThrottledError)
    assert elapsed < 0.9, f"retry_total is 0.3 s, the call took {elapsed:.2f} s"


@pytest.mark.parametrize("call", ["terminate", "list_executions", "list_workflows"])
def test_other_idempotent_calls_retry_transient_errors(
    call: str, use_connection: UseConnection, emulator: AomEmulator
) -> None:
    hook = connect(use_connection, emulator, "aksk")
    execution_id = hook.execute_workflow(WORKFLOW)
    if call == "terminate":
        emulator.state.add_fault("status", method="POST", path=r"/terminate$", status=503)
        hook.terminate_execution(WORKFLOW, execution_id)
        assert hook.get_execution(WORKFLOW, execution_id)["status"] == "cancel"
        path = f"{executions_path(WORKFLOW)}/{execution_id}/terminate"
        assert [r["status"] for r in logged(emulator.state, "POST", path)] == [503, 200]
    elif call == "list_executions":
        emulator.state.add_fault("drop_before", method="GET", path=r"/executions$")
        assert [e.execution_id for e in hook.list_executions(WORKFLOW)] == [execution_id]
        assert len(logged(emulator.state, "GET", executions_path(WORKFLOW))) == 2
    else:
        emulator.state.add_fault("status", method="POST", path=r"/workflow-list$", status=502)
        assert WORKFLOW in {w["id"] for w in hook.list_workflows(search="wf-")}
    assert ids(emulator) == [execution_id]


# --------------------------------------------------------------------------- on real Airflow


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_wait_survives_503s_while_polling(
    mode: str, use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk", extra={"retry_max_wait": 0.05})
    quick_workflows.state.add_fault("status", method="GET", path=r"/status$", status=503, count=3)
    dag_run = run(load_test_dag(f"aom_wait_success_{mode}"))
    assert task_states(dag_run) == {"run": "success"}
    [execution_id] = ids(quick_workflows, "wf-quick")
    assert xcom(dag_run, "run") == execution_id
    assert xcom(dag_run, "run", "execution_detail")["status"] == "success"
    statuses = [r["status"] for r in logged(quick_workflows.state, "GET", status_path("wf-quick", execution_id))]
    assert statuses[:3] == [503, 503, 503] and statuses[-1] == 200
    assert quick_workflows.state.faults() == []
    assert len(logged(quick_workflows.state, "POST", executions_path("wf-quick"))) == 1


@pytest.mark.dag
@pytest.mark.usefixtures("airflow_db")
def test_ambiguous_submit_never_starts_a_second_execution_on_airflow_retry(
    use_connection: UseConnection, emulator: AomEmulator
) -> None:
    use_connection("aksk", extra=FAST)
    # The POST starts an execution but its answer is lost, and the list cannot be read to adopt it.
    FAULTS["drop_after"].add(emulator, "POST", r"/executions$")
    FAULTS["malformed"].add(emulator, "GET", r"/executions$", count=50)
    dag_run = run(load_test_dag("aom_fail_once"), conf={"workflow_id": WORKFLOW})
    assert len(ids(emulator)) == 1, "one task, one execution"
    assert len(logged(emulator.state, "POST", executions_path(WORKFLOW))) == 1
    assert task_states(dag_run) == {"run": "failed"}
