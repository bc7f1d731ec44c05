"""Watermark: which executions a watch reports, once each, and how it survives a restart (no I/O)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionListReader, brief
from airflow_provider_aom.watch import FUTURE_TOLERANCE_SECONDS, MAX_REMEMBERED, REMEMBER_SECONDS, Watermark

SUCCESS = frozenset({"success"})
BEGUN_MS = 1_800_000_000_000
#: AOM's time in these tests: a day after the watch began.
NOW_MS = BEGUN_MS + 86_400_000


def listed(rows: list[dict[str, Any]]) -> list[ExecutionBrief]:
    """The rows as the watch gets them: through the one normalizer of list answers."""
    reader = ExecutionListReader("List executions")
    reader.feed(json.dumps(rows).encode())
    return list(reader.close())


def new(watermark: Watermark, rows: list[dict[str, Any]], statuses: frozenset[str] = SUCCESS) -> list[str]:
    """The ids the watch reports for one list answer."""
    return [e.execution_id for e in watermark.new(listed(rows), statuses, now_ms=NOW_MS)]


def reached_at(row: dict[str, Any]) -> int:
    found = brief({"execution_id": "e", "status": "success", **row})
    assert isinstance(found, ExecutionBrief)
    return found.reached_at


def execution(
    execution_id: str, status: str = "success", end_ms: int = BEGUN_MS + 1000, **extra: Any
) -> dict[str, Any]:
    return {"execution_id": execution_id, "status": status, "end_time": end_ms, **extra}


def test_begin_uses_aoms_clock_when_the_answer_gave_it() -> None:
    assert Watermark.begin(12.5, now=1_800_000_000.0).since_ms == BEGUN_MS + 12_500
    assert Watermark.begin(None, now=1_800_000_000.0).since_ms == BEGUN_MS


def test_what_the_first_list_shows_finished_is_never_reported() -> None:
    # Date has whole seconds: an execution that ended just before the watch began can look newer.
    first = [execution("just-before", end_ms=BEGUN_MS + 800), execution("running", status="executing", end_ms=0)]
    watermark = Watermark.begin(0.0, listed(first), SUCCESS, now=1_800_000_000.0)
    later = [execution("running", end_ms=BEGUN_MS + 5000), *first[:1]]
    assert new(watermark, later, SUCCESS) == ["running"]


def test_executions_that_ended_before_the_watch_began_are_never_reported() -> None:
    watermark = Watermark(BEGUN_MS)
    assert new(watermark, [execution("old", end_ms=BEGUN_MS - 1), execution("edge", end_ms=BEGUN_MS)]) == []


def test_each_new_execution_is_reported_once_oldest_first() -> None:
    watermark = Watermark(BEGUN_MS)
    listing = [execution("b", end_ms=BEGUN_MS + 2000), execution("a", end_ms=BEGUN_MS + 1000)]
    assert new(watermark, listing, SUCCESS) == ["a", "b"]
    assert new(watermark, listing) == []
    assert new(watermark, [*listing, execution("c")], SUCCESS) == ["c"]


def test_other_statuses_and_running_executions_are_not_reported() -> None:
    watermark = Watermark(BEGUN_MS)
    listing = [execution("failed", status="fail"), execution("running", status="executing", end_ms=0)]
    assert new(watermark, listing) == []
    assert new(watermark, listing, frozenset({"fail"})) == ["failed"]


def test_status_is_matched_case_insensitively_and_garbage_is_skipped() -> None:
    watermark = Watermark(BEGUN_MS)
    listing: list[dict[str, Any]] = [
        execution("upper", status="SUCCESS"),
        execution("x" * 65),  # longer than any id
        execution(".."),
        {"execution_id": "no-status", "end_time": BEGUN_MS + 5},
        execution("no-time", end_ms=-3),
        execution("bool-time", end_ms=True),
    ]
    assert new(watermark, listing, SUCCESS) == ["upper"]


def test_a_status_reached_without_ending_counts_from_last_update_time() -> None:
    paused = execution("p", status="pausing", end_ms=0, last_update_time=BEGUN_MS + 10)
    assert reached_at(paused) == BEGUN_MS + 10
    assert new(Watermark(BEGUN_MS), [paused], frozenset({"pausing"})) == ["p"]


def test_documented_text_times_are_understood() -> None:
    assert reached_at({"end_time": 0, "last_update_time": "2027-01-15T08:00:00Z"}) == BEGUN_MS
    assert reached_at({"end_time": "yesterday"}) == 0
    assert reached_at({"end_time": "2027-01-15T08:00:00"}) == 0  # no zone: not a moment


def test_json_round_trip_carries_on_without_replay() -> None:
    first = Watermark(BEGUN_MS)
    new(first, [execution("a")])
    stored = json.loads(json.dumps(first.to_json()))
    again = Watermark.from_json(stored)
    assert again == first
    assert again is not None and new(again, [execution("a"), execution("b", end_ms=BEGUN_MS + 3000)]) == ["b"]


def test_a_stored_value_that_is_not_a_watermark_begins_anew() -> None:
    values: list[object] = [
        None,
        "x",
        [],
        {"since_ms": "1"},
        {"since_ms": BEGUN_MS},
        {"since_ms": BEGUN_MS, "reported": []},
    ]
    for value in values:
        assert Watermark.from_json(value) is None
    cleaned = Watermark.from_json(
        {"since_ms": BEGUN_MS, "reported": {"ok": BEGUN_MS + 1, "": BEGUN_MS, "..": BEGUN_MS, "x": "y"}}
    )
    assert cleaned == Watermark(BEGUN_MS, {"ok": BEGUN_MS + 1})


def test_memory_stays_bounded_and_forgotten_ids_stay_covered() -> None:
    watermark = Watermark(BEGUN_MS)
    hour_later = BEGUN_MS + REMEMBER_SECONDS * 1000 + 5000
    new(watermark, [execution("early", end_ms=BEGUN_MS + 1000)])
    new(watermark, [execution("late", end_ms=hour_later)])
    assert set(watermark.reported) == {"late"}
    assert watermark.since_ms >= BEGUN_MS + 1000  # "early" is covered by the watermark now
    assert new(watermark, [execution("early", end_ms=BEGUN_MS + 1000)]) == []

    crowd = [execution(f"e{i}", end_ms=hour_later + i) for i in range(MAX_REMEMBERED + 50)]
    assert len(new(watermark, crowd)) == MAX_REMEMBERED + 50
    assert len(watermark.reported) <= MAX_REMEMBERED
    assert new(watermark, crowd) == []


def test_one_execution_named_twice_in_one_answer_is_reported_once() -> None:
    watermark = Watermark(BEGUN_MS)
    twice = execution("twice")
    # Through the normalizer and straight into the watermark: neither reports it twice.
    assert new(watermark, [twice, twice]) == ["twice"]
    direct = Watermark(BEGUN_MS)
    row = listed([twice])[0]
    assert [e.execution_id for e in direct.new([row, row], SUCCESS, now_ms=NOW_MS)] == ["twice"]


def test_an_execution_that_flaps_is_reported_once() -> None:
    watermark = Watermark(BEGUN_MS)
    assert new(watermark, [execution("f", end_ms=BEGUN_MS + 1000)]) == ["f"]
    assert new(watermark, [execution("f", status="executing", end_ms=0, last_update_time=BEGUN_MS + 2000)]) == []
    assert new(watermark, [execution("f", end_ms=BEGUN_MS + 3000)]) == []


def test_an_absurd_future_time_is_not_reported_and_does_not_hide_later_executions() -> None:
    watermark = Watermark(BEGUN_MS)
    far = NOW_MS + FUTURE_TOLERANCE_SECONDS * 1000 + 1
    assert new(watermark, [execution("future", end_ms=far), execution("max", end_ms=9_999_999_999_999)]) == []
    assert watermark.since_ms == BEGUN_MS
    assert new(watermark, [execution("next", end_ms=BEGUN_MS + 5000)]) == ["next"]


def test_a_new_watch_reads_only_recent_rows_and_then_only_rows_after_its_watermark() -> None:
    old = brief(execution("old", end_ms=BEGUN_MS - 2 * 86_400_000))
    recent = brief(execution("recent", end_ms=BEGUN_MS - 1000))
    assert isinstance(old, ExecutionBrief) and isinstance(recent, ExecutionBrief)
    first = Watermark.first_keep(now=BEGUN_MS / 1000)
    assert not first(old) and first(recent)
    keep = Watermark(BEGUN_MS).keep()
    assert not keep(recent) and keep(listed([execution("after", end_ms=BEGUN_MS + 1)])[0])
