"""Where an execution is stopped, and what on_node_failure does about it (the rules, without I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom.api import Pause
from airflow_provider_aom.node_ops import Stop, stopped_at
from airflow_provider_aom.vocabulary import NodeAction, OnNodeFailure, on_node_failure
from airflow_provider_aom.wait import KEEP_WAITING, on_stop
from tests.flows import run_steps, scripted


def detail(status: str, *nodes: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": status,
        "execution_result_list": [
            {"node_id": n, "status": s, "output": {"code": 1} if s == "fail" else {}} for n, s in nodes
        ],
    }


PAUSED_AT_FAILED = detail("pausing", ("node_1", "success"), ("node_2", "fail"))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (PAUSED_AT_FAILED, Stop("node_2", "fail", "pausing", True, {"code": 1})),
        (detail("fail", ("node_1", "success"), ("node_2", "fail")), Stop("node_2", "fail", "fail", True, {"code": 1})),
        (
            detail("pausing", ("node_1", "success"), ("pause_1", "pausing")),
            Stop("pause_1", "pausing", "pausing", False, {}),
        ),
        (detail("executing", ("node_1", "success"), ("node_2", "executing")), None),
        (detail("success", ("node_1", "success")), None),
        (detail("pausing", ("node_1", "success")), None),
        (detail("cancel", ("node_2", "fail")), None),
    ],
    ids=["paused-at-failed", "ended-fail", "pause-node", "executing", "success", "pausing-no-node", "cancelled"],
)
def test_stopped_at(case: dict[str, Any], expected: Stop | None) -> None:
    assert stopped_at(case) == expected


def decide(
    policy: OnNodeFailure, case: dict[str, Any] = PAUSED_AT_FAILED, restarts: dict[str, int] | None = None
) -> Any:
    return on_stop(case, policy, restarts or {}, 1, "wf", "ex-1")


def test_fail_names_the_node_and_its_output() -> None:
    decision = decide(OnNodeFailure.FAIL)
    assert decision.fail is not None and decision.action is None
    assert 'paused at failed node node_2 (fail, output {"code": 1})' in decision.fail


def test_wait_keeps_waiting_and_restart_and_skip_act_on_the_failed_node() -> None:
    assert decide(OnNodeFailure.WAIT) == KEEP_WAITING
    assert (decide(OnNodeFailure.RESTART).action, decide(OnNodeFailure.RESTART).node_id) == (
        NodeAction.RESTART,
        "node_2",
    )
    assert (decide(OnNodeFailure.SKIP).action, decide(OnNodeFailure.SKIP).node_id) == (NodeAction.SKIP, "node_2")


def test_restart_stops_after_max_node_restarts() -> None:
    decision = decide(OnNodeFailure.RESTART, restarts={"node_2": 1})
    assert decision.action is None and decision.fail is not None
    assert "again after 1 restart(s) (max_node_restarts=1)" in decision.fail


@pytest.mark.parametrize("policy", list(OnNodeFailure))
def test_only_a_paused_failed_node_triggers_the_policy(policy: OnNodeFailure) -> None:
    """An execution that ended fail is a failure of the wait, not a stop; a pause node waits for a person."""
    for case in (
        detail("fail", ("node_2", "fail")),
        detail("pausing", ("pause_1", "pausing")),
        detail("executing", ("node_1", "executing")),
    ):
        assert decide(policy, case) == KEEP_WAITING


def test_on_node_failure_values_are_checked() -> None:
    assert on_node_failure("restart") is OnNodeFailure.RESTART
    with pytest.raises(ValueError, match="on_node_failure must be one of fail, wait, restart, skip"):
        on_node_failure("retry")
    with pytest.raises(ValueError, match="must be one of fail, wait"):
        on_node_failure("restart", (OnNodeFailure.FAIL, OnNodeFailure.WAIT))


# --------------------------------------------------------------------------- terminate_when_reachable


def _drive(plan: Any, answers: list[Any]) -> list[str]:
    """Run a plan, answering its calls from ``answers`` in order; returns what it did (pauses included)."""
    _, steps = run_steps(plan, scripted(*answers))
    return ["pause" if isinstance(step, Pause) else step.request("0" * 32).path.rsplit("/", 1)[-1] for step in steps]


def _server_error(status: int) -> Exception:
    from airflow_provider_aom.exceptions import error_for_status

    return error_for_status(status)(
        status=status, error_code="X", error_msg="down", request_id=None, action="Terminate", retry_after=None
    )


def test_terminate_goes_on_through_an_outage_until_aom_answers() -> None:
    from airflow_provider_aom.exceptions import AomTransportError
    from airflow_provider_aom.node_ops import terminate_when_reachable

    outage = [AomTransportError("refused", sent=False), _server_error(503), AomTransportError("no answer", sent=True)]
    done = _drive(terminate_when_reachable("wf", "e-1", patience=60), [*outage, None])
    assert done == ["terminate", "pause", "terminate", "pause", "terminate", "pause", "terminate"]


def test_terminate_gives_up_when_its_patience_is_spent() -> None:
    from airflow_provider_aom.exceptions import AomTransportError
    from airflow_provider_aom.node_ops import terminate_when_reachable

    with pytest.raises(AomTransportError):
        _drive(terminate_when_reachable("wf", "e-1", patience=0), [AomTransportError("refused", sent=False)])


def test_a_refusal_after_a_lost_answer_is_success_when_the_execution_ended() -> None:
    from airflow_provider_aom.exceptions import AomBadRequestError, AomTransportError
    from airflow_provider_aom.node_ops import terminate_when_reachable

    lost = AomTransportError("no answer", sent=True)
    done = _drive(terminate_when_reachable("wf", "e-1", patience=60), [lost, _server_error(400), {"status": "cancel"}])
    assert done == ["terminate", "pause", "terminate", "status"]
    with pytest.raises(AomBadRequestError):  # refused at once: nothing of ours was unclear, so it stands
        _drive(terminate_when_reachable("wf", "e-1", patience=60), [_server_error(400)])
    with pytest.raises(AomBadRequestError):  # refused while it still runs
        _drive(terminate_when_reachable("wf", "e-1", patience=60), [lost, _server_error(400), {"status": "executing"}])
