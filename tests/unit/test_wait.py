"""The wait as a plan (airflow_provider_aom/wait.py), driven here by a scripted driver instead of a hook.

What the sync operator, the sensor and the trigger share is decided in the plan, so it is tested once:
which calls it yields, when it pauses and for how long, how the deadline ends it, and what
``on_node_failure`` makes it send.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from airflow_provider_aom.exceptions import AomServerError, AomTransportError
from airflow_provider_aom.vocabulary import OnNodeFailure, StatusRules, WaitEnd
from airflow_provider_aom.wait import StatusTracker, Wait, WaitEnded, follow_execution, poll, poll_pause
from tests.flows import PROJECT, Script, drive

log = logging.getLogger("test_wait")


def detail(status: str, *nodes: tuple[str, str]) -> dict[str, Any]:
    return {"status": status, "execution_result_list": [{"node_id": n, "status": s} for n, s in nodes]}


def tracker() -> StatusTracker:
    return StatusTracker("wf", "ex", StatusRules(), log)


def wait(**kwargs: Any) -> Wait:
    return Wait("wf", "ex", PROJECT, **kwargs)


STATUS = "GET status"  # GET .../executions/{execution_id}/status
OPERATE = "POST operation"


def test_follows_until_success_pausing_one_interval_between_reads() -> None:
    script = Script({STATUS: [detail("executing"), detail("executing"), detail("success")]})
    ended = drive(follow_execution(wait(poll_interval=7.0), tracker()), script)
    assert isinstance(ended, WaitEnded)
    assert ended.end is WaitEnd.SUCCESS and ended.detail == detail("success") and ended.last_status == "success"
    assert script.steps == [STATUS, "pause 7.00", STATUS, "pause 7.00", STATUS]


def test_a_failed_status_ends_as_failure_with_the_failing_node() -> None:
    script = Script({STATUS: [detail("fail", ("n1", "success"), ("n2", "fail"))]})
    ended = drive(follow_execution(wait(), tracker()), script)
    assert ended.end is WaitEnd.FAILURE and "n2" in ended.message and ended.detail is not None


def test_past_the_deadline_ends_as_timeout_without_reading() -> None:
    script = Script({STATUS: [detail("executing")]})
    ended = drive(follow_execution(wait(deadline=time.time() - 1), tracker()), script)
    assert ended.end is WaitEnd.TIMEOUT and ended.detail is None
    assert script.steps == []


def test_pauses_never_run_past_the_deadline() -> None:
    script = Script({STATUS: [detail("executing")]})
    ended = drive(follow_execution(wait(poll_interval=3600.0, deadline=time.time() + 0.3), tracker()), script)
    pauses = [float(s.split()[1]) for s in script.steps if s.startswith("pause")]
    # The script's pauses take no time, so the wait reads until the clock passes the deadline.
    assert pauses and all(p <= 0.3 for p in pauses)
    assert ended.end is WaitEnd.TIMEOUT


def test_a_read_failing_at_the_deadline_is_a_timeout_and_before_it_is_raised() -> None:
    cut = AomTransportError("no answer within the timeout", sent=True)
    ended = drive(follow_execution(wait(deadline=time.time() + 0.2), tracker()), Script({STATUS: [cut]}))
    assert ended.end is WaitEnd.TIMEOUT
    with pytest.raises(AomTransportError):
        drive(follow_execution(wait(deadline=time.time() + 60), tracker()), Script({STATUS: [cut]}))


def test_restart_policy_restarts_the_failed_node_then_reads_again_at_once() -> None:
    paused = detail("pausing", ("n1", "success"), ("n2", "fail"))
    running = detail("executing", ("n1", "success"), ("n2", "executing"))
    script = Script({STATUS: [paused, paused, running, detail("success")], OPERATE: [{"result": {}}]})
    the_wait = wait(policy=OnNodeFailure.RESTART, max_node_restarts=2, poll_interval=1.0)
    ended = drive(follow_execution(the_wait, tracker()), script)
    assert ended.end is WaitEnd.SUCCESS
    assert the_wait.restarts == {"n2": 1}
    # the poll, the operation's own read of the execution, the operation, a read at once (no pause between).
    assert script.steps[:4] == [STATUS, STATUS, OPERATE, STATUS]
    assert script.steps.count(OPERATE) == 1


def test_restarts_beyond_the_limit_fail_naming_the_node() -> None:
    paused = detail("pausing", ("n2", "fail"))
    script = Script({STATUS: [paused], OPERATE: [{"result": {}}]})
    the_wait = wait(policy=OnNodeFailure.RESTART, max_node_restarts=1, restarts={"n2": 1})
    ended = drive(follow_execution(the_wait, tracker()), script)
    assert ended.end is WaitEnd.FAILURE and "max_node_restarts=1" in ended.message and "n2" in ended.message
    assert OPERATE not in script.steps


@pytest.mark.parametrize("policy", [OnNodeFailure.FAIL, OnNodeFailure.WAIT])
def test_fail_and_wait_policies_send_nothing(policy: OnNodeFailure) -> None:
    paused = detail("pausing", ("n2", "fail"))
    script = Script({STATUS: [paused]})
    ended = drive(poll(wait(policy=policy), tracker()), script)
    assert OPERATE not in script.steps
    if policy is OnNodeFailure.FAIL:
        assert ended is not None and ended.end is WaitEnd.FAILURE and "on_node_failure='fail'" in ended.message
    else:
        assert ended is None


def test_one_poll_of_a_running_execution_says_keep_waiting() -> None:
    assert drive(poll(wait(), tracker()), Script({STATUS: [detail("executing")]})) is None


def test_an_error_other_than_at_the_deadline_reaches_the_driver() -> None:
    error = AomServerError(status=500, error_code="", error_msg="boom", request_id=None, action="Get", retry_after=None)
    with pytest.raises(AomServerError):
        drive(poll(wait(), tracker()), Script({STATUS: [error]}))


def test_spread_first_poll_draws_the_first_pause_only() -> None:
    first: list[float] = []
    for _ in range(200):
        script = Script({STATUS: [detail("executing"), detail("executing"), detail("success")]})
        drive(follow_execution(wait(poll_interval=10.0, spread_first_poll=True), tracker()), script)
        pauses = [float(s.split()[1]) for s in script.steps if s.startswith("pause")]
        assert pauses[1] == 10.0
        first.append(pauses[0])
    assert all(5.0 <= p <= 15.0 for p in first) and len(set(first)) > 100


def test_poll_pause_keeps_the_mean_interval() -> None:
    assert all(poll_pause(4.0, n) == 4.0 for n in range(2, 20))
    draws = [poll_pause(4.0, 1) for _ in range(4000)]
    assert 3.8 < sum(draws) / len(draws) < 4.2


def test_status_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test_wait")
    script = Script({STATUS: [detail("executing")] * 3 + [detail("success")]})
    drive(follow_execution(wait(poll_interval=0.0), tracker()), script)

    def lines(status: str) -> int:
        return sum(f"is {status}." in r.getMessage() for r in caplog.records)

    assert lines("executing") == 1 and lines("success") == 1


def test_the_memory_of_ended_node_runs_forgets_the_oldest_first() -> None:
    from airflow_provider_aom.wait import MAX_PROGRESS_LINES

    the_tracker = tracker()
    count = 4 * MAX_PROGRESS_LINES + 10
    nodes = [
        {"node_id": f"n{i}", "status": "success", "begin_time": 1000 + i, "end_time": 2000 + i} for i in range(count)
    ]
    the_tracker.observe({"status": "executing", "execution_result_list": nodes})
    remembered = the_tracker._ended
    assert len(remembered) == 4 * MAX_PROGRESS_LINES
    assert (f"n{count - 1}", str(1000 + count - 1)) in remembered and ("n0", "1000") not in remembered
