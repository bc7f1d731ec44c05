"""The execution detail: validated field by field, storable JSON, bounded in bytes, described in few log lines."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aom.exceptions import AomInvalidResponseError
from airflow_provider_aom.execution import (
    MAX_DEPTH,
    MAX_NODE_LINES,
    bounded,
    failure_message,
    node_lines,
    parse_detail,
    storable,
    stored,
    timing,
)
from airflow_provider_aom.vocabulary import MIN_DETAIL_BYTES, check_max_detail_bytes


def parse(payload: Any) -> dict[str, Any]:
    return parse_detail(payload, action="Get execution 'e'", status=200, request_id="r-1")


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize("status", [None, "", "   ", 7, ["success"], "s" * 65], ids=repr)
def test_detail_without_a_usable_status_is_an_invalid_answer(status: Any) -> None:
    with pytest.raises(AomInvalidResponseError, match="status"):
        parse({"status": status, "execution_id": "e"})
    with pytest.raises(AomInvalidResponseError, match="not an object"):
        parse(["status"])


def test_wrong_typed_documented_fields_are_dropped_and_the_rest_kept() -> None:
    detail = parse(
        {
            "status": " success ",
            "execution_id": 5,
            "workflow_id": "wf",
            "begin_time": "yesterday",
            "end_time": True,
            "last_update_time": 1_700_000_000_000,
            "execution_result_list": [{"node_id": 3, "status": "success", "begin_time": -1, "output": {}}, "junk"],
            "approve_user_name_list": ["ops", 7],
            "vendor_extra": {"kept": True},
        }
    )
    assert detail == {
        "status": "success",
        "workflow_id": "wf",
        "last_update_time": 1_700_000_000_000,
        "execution_result_list": [{"status": "success", "output": {}}],
        "approve_user_name_list": ["ops"],
        "vendor_extra": {"kept": True},
    }


def test_list_fields_of_the_wrong_kind_are_dropped() -> None:
    detail = parse({"status": "success", "execution_result_list": "x", "approve_user_name_list": {"a": 1}})
    assert detail == {"status": "success"}


def test_storable_replaces_non_finite_numbers_and_cuts_deep_nesting() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    value = storable({"nan": math.nan, "inf": -math.inf, "ok": 1.5, "deep": deep})
    assert value["nan"] is None and value["inf"] is None and value["ok"] == 1.5
    text = json.dumps(value, allow_nan=False)  # raises if anything non-finite survived
    assert f"nested deeper than {MAX_DEPTH} levels" in text


def nodes(count: int, output_bytes: int, failing: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"node_id": f"n{i}", "status": "fail" if i in failing else "success", "output": {"log": "x" * output_bytes}}
        for i in range(count)
    ]


def test_small_detail_is_unchanged() -> None:
    detail = {"status": "success", "execution_result_list": nodes(3, 10)}
    assert bounded(detail, 64 * 1024) == detail


def test_large_outputs_become_markers_first() -> None:
    detail = {"status": "success", "execution_result_list": nodes(10, 1000) + nodes(1, 60_000)}
    cut = bounded(detail, 20_000, "https://console/x")
    assert size(cut) <= 20_000
    assert "execution_result_list_truncated" not in cut, "dropping the big outputs was enough"
    markers = [n["output"] for n in cut["execution_result_list"] if n["output"].get("truncated")]
    assert markers and markers[0]["see"] == "https://console/x"


def test_5000_nodes_keep_failing_ones_and_say_how_many_were_cut() -> None:
    detail = {"status": "fail", "execution_id": "e", "execution_result_list": nodes(5000, 2000, failing=(4321,))}
    cut = bounded(detail, 64 * 1024, "https://console/x")
    assert size(cut) <= 64 * 1024
    kept = [n["node_id"] for n in cut["execution_result_list"]]
    assert "n4321" in kept
    note = cut["execution_result_list_truncated"]
    assert note["total"] == 5000 and note["kept"] == len(kept) and note["see"] == "https://console/x"


@settings(max_examples=60, deadline=None)
@given(
    budget=st.integers(min_value=MIN_DETAIL_BYTES, max_value=200_000),
    count=st.integers(min_value=0, max_value=300),
    output=st.integers(min_value=0, max_value=5000),
    extra=st.text(max_size=3000),
)
def test_bounded_always_fits_the_budget(budget: int, count: int, output: int, extra: str) -> None:
    detail = {"status": "success", "execution_id": "e", "vendor": extra, "execution_result_list": nodes(count, output)}
    cut = bounded(detail, budget)
    assert size(cut) <= budget
    assert cut["status"] == "success"


def test_max_detail_bytes_is_checked() -> None:
    assert check_max_detail_bytes(MIN_DETAIL_BYTES) == MIN_DETAIL_BYTES
    for bad in (MIN_DETAIL_BYTES - 1, True, 3.5, "65536"):
        with pytest.raises(ValueError, match="max_detail_bytes"):
            check_max_detail_bytes(bad)


def test_node_lines_show_failing_nodes_first_then_a_capped_rest() -> None:
    detail = {"execution_result_list": nodes(100, 10, failing=(57, 99))}
    lines = node_lines(detail)
    assert lines[0].startswith("node n57: fail") and lines[1].startswith("node n99: fail")
    assert len(lines) == MAX_NODE_LINES + 1
    assert lines[-1] == "... and 80 more node(s); see the execution in the AOM console."


def test_node_lines_and_failure_message_escape_server_text() -> None:
    detail = {
        "status": "fail\r\nforged",
        "execution_result_list": [{"node_id": "n1\n[error] forged", "status": "fail\u2028x", "output": {"m": "a\rb"}}],
    }
    for text in [*node_lines(detail), failure_message("wf", "e", detail)]:
        assert not any(c in text for c in "\r\n\u2028"), repr(text)


def test_stored_detail_has_iso_8601_utc_times_and_null_for_not_yet() -> None:
    detail = {
        "status": "executing",
        "begin_time": 1_796_169_600_123,
        "end_time": 0,
        "execution_result_list": [{"node_id": "n1", "begin_time": 1_796_169_600_123, "end_time": 0}],
    }
    stored_detail = stored(detail, 64 * 1024)
    assert stored_detail["begin_time"] == "2026-12-02T00:00:00.123000+00:00"
    assert stored_detail["end_time"] is None
    assert stored_detail["execution_result_list"][0] == {
        "node_id": "n1",
        "begin_time": "2026-12-02T00:00:00.123000+00:00",
        "end_time": None,
    }
    assert detail["begin_time"] == 1_796_169_600_123, "the parsed detail itself is left as AOM sent it"


def test_timing_says_when_it_ran_and_for_how_long() -> None:
    began = 1_796_169_600_000
    assert timing({"begin_time": began, "end_time": began + 192_000}) == (
        "began 2026-12-02T00:00:00+00:00, ended 2026-12-02T00:03:12+00:00 (3 minutes 12 seconds)"
    )
    assert timing({"begin_time": began, "end_time": 0}) == "began 2026-12-02T00:00:00+00:00"
    assert timing({"status": "x"}) is None
