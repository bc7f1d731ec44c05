"""Starting an execution exactly once (submit.py): the rules that pick what an ambiguous submit started.

The server's clock from the ``Date`` header, the window an execution of this submit may have begun in,
which list entries can be candidates at all, whose execution may be adopted and owned, the execution an
earlier try started, and what the ambiguous-submit message says. The same rules over real HTTP, against a
scripted AOM, are in tests/faults/test_submit_faults.py.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_aom.api import Call, Identify
from airflow_provider_aom.auth_flow import Identity
from airflow_provider_aom.exceptions import AomAmbiguousSubmitError, AomError, AomServerError, AomTransportError
from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionList
from airflow_provider_aom.execution_list import brief as normalized
from airflow_provider_aom.retry import RetryPolicy
from airflow_provider_aom.submit import (
    DATE_MARGIN,
    Candidate,
    StartedExecution,
    SubmitWindow,
    ambiguous_message,
    decide,
    earlier_execution,
    find_started,
    in_window,
    needs_identity,
    pending_submit,
    server_clock_offset,
    start_execution,
)
from airflow_provider_aom.wire import ApiResponse
from tests.flows import Script, drive, quick_settings

ME, OTHER = "etl-bot", "alice"


def brief(execution_id: Any, begin: Any, created_by: Any = ME) -> dict[str, Any]:
    return {"execution_id": execution_id, "begin_time": begin, "created_by": created_by, "status": "executing"}


def test_date_header_gives_the_server_clock_offset() -> None:
    received = 1_800_000_000.25
    header = email.utils.formatdate(received + 3600, usegmt=True)
    offset = server_clock_offset(ApiResponse.build(200, b"[]", {"Date": header}), received)
    assert offset is not None and 3599 <= offset <= 3600
    for bad in ("", "yesterday", "Tue, 99 Foo 2026 99:99:99 GMT"):
        assert server_clock_offset(ApiResponse.build(200, b"[]", {"Date": bad}), received) is None


def test_window_is_tight_on_the_server_clock_and_wide_only_without_it() -> None:
    window = SubmitWindow(sent_at=1000.0, fallback_skew=10.0)
    assert window.bounds(0.0, 1005.0) == (1000.0 - DATE_MARGIN, 1005.0 + 1 + DATE_MARGIN)
    assert window.bounds(None, 1005.0) == (990.0, 1015.0)


def test_forged_and_absurd_entries_are_never_candidates() -> None:
    at = 1_000_000
    entries = [
        brief("e-1\r\n2026-12-02 ERROR forged log line", at),
        brief(12345, at),
        brief({"id": "x"}, at),
        brief("..", at),
        brief("", at),
        brief(" padded ", at),
        brief("e-" + "x" * 70, at),
        brief("e-inf", math.inf),
        brief("e-nan", None),
        brief("e-bool", True),
        brief("e-neg", -5),
        brief("e-float", 1_000_000.5),
        brief("e-ok", at),
    ]
    rows = [row for row in map(normalized, entries) if isinstance(row, ExecutionBrief)]
    found = in_window(rows, (0, 10_000))
    assert [c.execution_id for c in found] == ["e-ok"]


def test_another_users_execution_is_foreign_and_never_adopted() -> None:
    mine, theirs = Candidate("e-mine", 2, ME), Candidate("e-theirs", 1, OTHER)
    verdict = decide([mine, theirs], Identity(frozenset({ME, "user-id-1"})))
    assert verdict.adopted == mine and verdict.owned
    assert verdict.foreign == (theirs,)
    alone = decide([theirs], Identity(frozenset({ME})))
    assert alone.adopted is None and alone.foreign == (theirs,)


def test_unknown_creator_is_adopted_but_not_owned() -> None:
    verdict = decide([Candidate("e-1", 1, OTHER)], None)
    assert verdict.adopted is not None and not verdict.owned
    verdict = decide([Candidate("e-1", 1, None)], Identity(frozenset({ME})))
    assert verdict.adopted is not None and not verdict.owned, "AOM did not say who created it"


# --------------------------------------------------------------------------- earlier_execution, messages


def listed(*rows: dict[str, Any]) -> ExecutionList:
    return ExecutionList(tuple(row for row in map(normalized, rows) if isinstance(row, ExecutionBrief)))


def test_an_earlier_try_finds_its_newest_own_execution_not_another_users() -> None:
    now_ms = int(time.time() * 1000)
    plan = earlier_execution("wf", time.time() - 60)
    call = next(plan)
    assert isinstance(call, Call)
    step = plan.send(
        listed(
            brief("e-old", now_ms - 3_600_000),
            brief("e-mine", now_ms - 30_000),
            brief("e-theirs", now_ms - 10_000, OTHER),
        )
    )
    assert isinstance(step, Identify)
    with pytest.raises(StopIteration) as done:
        plan.send(Identity(frozenset({ME})))
    assert done.value.value == "e-mine"


def test_an_earlier_try_without_creators_needs_no_identity() -> None:
    plan = earlier_execution("wf", time.time() - 60)
    next(plan)
    with pytest.raises(StopIteration) as done:
        plan.send(listed(brief("e-1", int(time.time() * 1000), None)))
    assert done.value.value == "e-1"
    assert not needs_identity([Candidate("e-1", 1, None)]) and needs_identity([Candidate("e-1", 1, ME)])


def test_the_ambiguous_message_names_every_execution_seen_escaped() -> None:
    forged = Candidate("e-1\n2026-12-02 ERROR forged", 2, OTHER)
    mine, other_mine = Candidate("e-2", 2, ME), Candidate("e-3", 1, ME)
    verdict = decide([mine, other_mine, forged], Identity(frozenset({ME})))
    message = ambiguous_message("wf\r\n", RuntimeError("HTTP 502"), verdict)
    assert "\n" not in message and "\r" not in message
    assert "executions that began since then: e-2 (created by etl-bot), e-3 (created by etl-bot)" in message
    assert "started by other users (left alone): e-1\\x0a2026-12-02 ERROR forged (created by alice)" in message
    assert message.endswith("Nothing was re-sent.")


@pytest.mark.parametrize("skew", [600.0, -600.0])
def test_an_earlier_try_is_found_on_aoms_clock_whatever_its_skew(skew: float) -> None:
    """AOM stamps begin_time with its own clock: ten minutes off the hosts' must not hide the earlier try's run."""
    import dataclasses

    aom_now_ms = int((time.time() + skew) * 1000)
    plan = earlier_execution("wf", time.time() - 60)
    next(plan)
    listing = dataclasses.replace(listed(brief("e-mine", aom_now_ms - 30_000, None)), clock_offset=skew)
    with pytest.raises(StopIteration) as done:
        plan.send(listing)
    assert done.value.value == "e-mine"


# --------------------------------------------------------------------------- start_execution: 503 and re-sending

SUBMIT, LIST = "POST executions", "GET executions"


def unavailable(retry_after: float | None = 2.0) -> AomServerError:
    return AomServerError(
        status=503,
        error_code="APIG.0201",
        error_msg="Backend unavailable",
        request_id="r",
        action="Execute",
        retry_after=retry_after,
    )


def submit_script(posts: list[Any], lists: list[Any], **settings: Any) -> Script:
    return Script({SUBMIT: posts, LIST: lists}, settings=quick_settings(**settings), identity=Identity(frozenset({ME})))


def test_a_503_is_resent_after_its_retry_after_once_the_list_shows_nothing_began() -> None:
    script = submit_script([unavailable(2.0), "e-new"], [listed()])
    started = drive(start_execution("wf"), script)
    assert started == StartedExecution("e-new")
    # The pause the server asked for, then the list, then (only then) the POST again.
    assert script.steps == ["settings", SUBMIT, "pause 2.00", "settings", LIST, SUBMIT]


def test_a_503_that_started_an_execution_anyway_adopts_it_and_sends_nothing_more() -> None:
    script = submit_script([unavailable(), "e-never"], [listed(brief("e-mine", int(time.time() * 1000)))])
    started = drive(start_execution("wf"), script)
    assert started == StartedExecution("e-mine", owned=True, adopted=True)
    assert script.count(SUBMIT) == 1


def test_a_503_with_two_candidates_is_ambiguous_and_never_resent() -> None:
    now_ms = int(time.time() * 1000)
    script = submit_script([unavailable()], [listed(brief("e-1", now_ms), brief("e-2", now_ms - 500))])
    with pytest.raises(AomAmbiguousSubmitError, match=r"e-1.*e-2"):
        drive(start_execution("wf"), script)
    assert script.count(SUBMIT) == 1


def test_503s_until_the_retries_run_out_fail_retryably_with_nothing_started() -> None:
    script = submit_script([unavailable(0.0)], [listed()], retry=RetryPolicy(attempts=3, max_wait=0, total=60))
    with pytest.raises(AomServerError) as raised:
        drive(start_execution("wf"), script)
    assert not isinstance(raised.value, AomAmbiguousSubmitError) and raised.value.status == 503
    assert (script.count(SUBMIT), script.count(LIST)) == (3, 3)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_5xx_are_never_resent(status: int) -> None:
    error = AomServerError(status=status, error_code="", error_msg="", request_id=None, action="Execute")
    script = submit_script([error, "e-never"], [listed()])
    with pytest.raises(AomAmbiguousSubmitError, match="Nothing was re-sent"):
        drive(start_execution("wf"), script)
    assert script.count(SUBMIT) == 1


def test_a_list_that_fails_during_an_outage_is_read_again_before_giving_up() -> None:
    refused = AomTransportError("refused", sent=False)
    script = submit_script([unavailable(0.0), "e-new"], [refused, refused, listed()])
    assert drive(start_execution("wf"), script) == StartedExecution("e-new")
    assert script.count(LIST) == 3


# --------------------------------------------------------------------------- pending_submit: a try lost mid-submit


def test_a_lost_tries_submit_is_found_and_adopted_as_owned() -> None:
    sent = time.time() - 90
    script = submit_script(
        [], [listed(brief("e-old", int((sent - 600) * 1000)), brief("e-lost", int((sent + 2) * 1000)))]
    )
    started = drive(pending_submit("wf", sent), script)
    assert started == StartedExecution("e-lost", owned=True, adopted=True)
    assert script.count(SUBMIT) == 0


def test_a_lost_tries_submit_that_started_nothing_leaves_the_submit_to_the_caller() -> None:
    script = submit_script([], [listed()], timeout=0.05)
    assert drive(pending_submit("wf", time.time() - 90), script) is None
    # Read again while the settle time lasts (AOM may still be creating it), never sent.
    assert script.count(LIST) > 1 and script.count(SUBMIT) == 0


def test_a_lost_tries_submit_with_an_unreadable_list_fails_the_try_retryably() -> None:
    refused = AomTransportError("refused", sent=False)
    script = submit_script([], [refused], retry=RetryPolicy(attempts=2, max_wait=0, total=60))
    with pytest.raises(AomError) as raised:
        drive(pending_submit("wf", time.time() - 90), script)
    assert not isinstance(raised.value, AirflowFailException)
    assert "Nothing was sent" in str(raised.value) and script.count(SUBMIT) == 0


def test_a_lost_tries_submit_with_two_candidates_is_ambiguous() -> None:
    sent = time.time() - 90
    rows = [brief("e-1", int((sent + 2) * 1000)), brief("e-2", int((sent + 3) * 1000))]
    with pytest.raises(AomAmbiguousSubmitError, match="e-2"):
        drive(pending_submit("wf", sent), submit_script([], [listed(*rows)]))


# --------------------------------------------------------------------------- recheck_later (durable tasks)


def test_with_a_recheck_later_an_unclear_submit_that_shows_nothing_fails_retryably() -> None:
    lost = AomTransportError("no answer", sent=True)
    script = submit_script([lost], [listed()], timeout=0.01)
    with pytest.raises(AomError) as raised:
        drive(start_execution("wf", recheck_later=True), script)
    assert not isinstance(raised.value, AirflowFailException)
    assert "next try reads the list again" in str(raised.value) and script.count(SUBMIT) == 1
    # Without it (no task state store to leave the mark in), the same is final.
    with pytest.raises(AomAmbiguousSubmitError):
        drive(start_execution("wf"), submit_script([lost], [listed()], timeout=0.01))


def test_with_a_recheck_later_an_unreadable_list_fails_retryably() -> None:
    refused = AomTransportError("refused", sent=False)
    error = AomServerError(status=502, error_code="", error_msg="", request_id=None, action="Execute")
    script = submit_script([error], [refused], retry=RetryPolicy(attempts=2, max_wait=0, total=60))
    with pytest.raises(AomError, match="cannot be read now") as raised:
        drive(start_execution("wf", recheck_later=True), script)
    assert not isinstance(raised.value, AirflowFailException)


def test_with_a_recheck_later_two_candidates_are_still_ambiguous() -> None:
    now_ms = int(time.time() * 1000)
    lost = AomTransportError("no answer", sent=True)
    script = submit_script([lost], [listed(brief("e-1", now_ms), brief("e-2", now_ms - 500))])
    with pytest.raises(AomAmbiguousSubmitError):
        drive(start_execution("wf", recheck_later=True), script)


def test_the_settle_time_counts_from_the_first_list_aom_answers() -> None:
    """After an outage AOM may still be working through the requests it held: keep reading for a while."""
    lost, refused = AomTransportError("no answer", sent=True), AomTransportError("refused", sent=False)
    settings = quick_settings(timeout=0.05)
    window = SubmitWindow(time.time(), 10.0)
    plan = find_started("wf", window, None, settle=0.1, cause=lost)

    class SlowOutage(Script):
        def answer(self, step: Any) -> Any:
            if self.answers[LIST][0] is refused:
                time.sleep(0.1)  # each failed read of the outage takes as long as the whole settle time
            return super().answer(step)

    script = SlowOutage({LIST: [refused, refused, listed()]}, settings=settings)
    began = time.monotonic()
    drive(plan, script)
    assert script.count(LIST) > 3, "read again after the first answer, not only until the first answer"
    assert time.monotonic() - began >= 0.3
