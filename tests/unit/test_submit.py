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

from airflow_provider_aom.api import Call, Identify
from airflow_provider_aom.auth_flow import Identity
from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionList
from airflow_provider_aom.execution_list import brief as normalized
from airflow_provider_aom.submit import (
    DATE_MARGIN,
    Candidate,
    SubmitWindow,
    ambiguous_message,
    decide,
    earlier_execution,
    in_window,
    needs_identity,
    server_clock_offset,
)
from airflow_provider_aom.wire import ApiResponse

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
