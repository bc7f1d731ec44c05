"""Status rules and what the wait logs: each change once, people-needed states with approvers, node results."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from airflow_provider_aom.exceptions import AomConfigurationError
from airflow_provider_aom.execution import failure_message
from airflow_provider_aom.vocabulary import StatusRules
from airflow_provider_aom.wait import StatusTracker


def test_default_rules_are_case_insensitive() -> None:
    rules = StatusRules()
    assert rules.outcome("SUCCESS") == "success"
    for status in ("fail", "cancel", "timeout", "approvalFailed", "APPROVALFAILED"):
        assert rules.outcome(status) == "failure"
    for status in ("executing", "waitApproval", "pausing", "canceling", "waitExecute", "something-new"):
        assert rules.outcome(status) == "running"


def test_custom_rules_and_overlap() -> None:
    rules = StatusRules(success=["success", "Cancel"], failure=["fail"])
    assert rules.outcome("cancel") == "success"
    with pytest.raises(AomConfigurationError, match="share"):
        StatusRules(success=["success"], failure=["SUCCESS"])


def detail(status: str, nodes: Sequence[Mapping[str, Any]] | None = None) -> dict[str, object]:
    return {"status": status, "execution_result_list": nodes or [], "approve_user_name_list": ["ops-lead", "cto"]}


def test_tracker_logs_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.tracker")
    tracker = StatusTracker("wf", "ex", StatusRules(), log)
    with caplog.at_level(logging.INFO, logger="test.tracker"):
        for status in ("executing", "executing", "waitApproval", "waitApproval", "executing"):
            assert tracker.observe(detail(status)) == "running"
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Execution ex of workflow wf is executing."
    assert "needs a person" in messages[1] and "ops-lead, cto" in messages[1]
    assert caplog.records[1].levelno == logging.WARNING
    assert len(messages) == 3


def test_tracker_logs_node_results_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.tracker")
    tracker = StatusTracker("wf", "ex", StatusRules(), log)
    nodes = [
        {"node_id": "n1", "status": "success", "output": {}},
        {"node_id": "n2", "status": "fail", "output": {"error": "exit 1"}},
    ]
    with caplog.at_level(logging.INFO, logger="test.tracker"):
        assert tracker.observe(detail("fail", nodes)) == "failure"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "node n1: success" in text and 'node n2: fail, output {"error": "exit 1"}' in text


def test_failure_message_names_everything() -> None:
    nodes = [{"node_id": "n1", "status": "success"}, {"node_id": "n2", "status": "fail"}]
    assert failure_message("wf-1", "ex-1", detail("fail", nodes)) == (
        "AOM workflow wf-1 execution ex-1 ended with status fail; failing node: n2 (fail)."
    )
    assert (
        failure_message("wf-1", "ex-1", detail("cancel"))
        == "AOM workflow wf-1 execution ex-1 ended with status cancel."
    )


def test_poll_pauses_spread_phases_without_polling_more() -> None:
    """Only the first pause is drawn (0.5 to 1.5 intervals): phases spread, the mean interval stays."""
    from airflow_provider_aom.wait import poll_pause

    first = [poll_pause(10.0, 1) for _ in range(4000)]
    assert min(first) >= 5.0 and max(first) <= 15.0
    assert len({round(p, 3) for p in first}) > 3000, "drawn, not fixed"
    assert abs(sum(first) / len(first) - 10.0) < 0.25
    assert all(poll_pause(10.0, n) == 10.0 for n in range(2, 50))
