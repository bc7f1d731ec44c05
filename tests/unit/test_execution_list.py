"""The execution list's reader and normalizer: streamed, de-duplicated, order-free, bounded (no I/O)."""

from __future__ import annotations

import gzip
import json
import logging
import random
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_aom import api
from airflow_provider_aom.exceptions import AomInvalidResponseError, AomResponseTooLargeError
from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionListReader, since
from airflow_provider_aom.transport import BodyReader
from airflow_provider_aom.watch import MAX_REMEMBERED, Watermark
from airflow_provider_aom.wire import ApiResponse

BEGUN_MS = 1_800_000_000_000
NOW_MS = BEGUN_MS + 86_400_000
SUCCESS = frozenset({"success"})


def row(i: int, *, status: str = "success", end: int | None = None, nodes: int = 20, **extra: Any) -> dict[str, Any]:
    """A list row as AOM sends it, node results included."""
    end_ms = BEGUN_MS - 3_600_000 + i * 1000 if end is None else end
    return {
        "workflow_id": "wf-1",
        "execution_id": f"e-{i:06d}",
        "status": status,
        "begin_time": end_ms - 500,
        "end_time": end_ms,
        "last_update_time": end_ms,
        "created_by": "etl-bot",
        "approve_user_name_list": [],
        "execution_result_list": [
            {"node_id": f"n{j}", "status": "success", "begin_time": end_ms, "end_time": end_ms, "output": "ok " * 20}
            for j in range(nodes)
        ],
        "project_id": "0" * 32,
        **extra,
    }


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(rows: Any, keep: Any = None, piece: int = 64 * 1024) -> list[ExecutionBrief]:
    reader = ExecutionListReader("List executions", keep)
    for chunk in pieces(json.dumps(rows).encode(), piece):
        reader.feed(chunk)
    return list(reader.close())


def test_rows_are_cut_to_the_fields_callers_use_and_node_results_are_dropped() -> None:
    [only] = read([row(1)])
    assert only == ExecutionBrief(
        "e-000001",
        "success",
        "wf-1",
        begin_time=BEGUN_MS - 3_599_500,
        end_time=BEGUN_MS - 3_599_000,
        last_update_time=BEGUN_MS - 3_599_000,
        created_by="etl-bot",
    )
    assert not hasattr(only, "execution_result_list") and "execution_result_list" not in only.to_dict()


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_rows_split_anywhere_between_pieces_parse_the_same(piece: int) -> None:
    rows = [row(i, nodes=3) for i in range(40)]
    assert read(rows, piece=piece) == read(rows, piece=1 << 30)


def test_one_execution_listed_twice_is_one_row_and_the_latest_time_wins() -> None:
    older, newer = row(1, status="executing", end=BEGUN_MS), row(1, status="success", end=BEGUN_MS + 5000)
    for order in ([older, newer], [newer, older]):
        [only] = read(order)
        assert (only.status, only.end_time) == ("success", BEGUN_MS + 5000)


def test_with_a_time_floor_de_duplication_is_exact_whatever_the_order() -> None:
    # The newest row of e-000001 is chosen; an older one before or after it never wins.
    rows = [row(1, end=BEGUN_MS - 10), row(1, status="fail", end=BEGUN_MS + 10), row(2, end=BEGUN_MS - 20)]
    for order in (rows, rows[::-1]):
        [only] = read(order, keep=since(BEGUN_MS))
        assert (only.execution_id, only.status) == ("e-000001", "fail")
    # A newer row that the floor leaves out also leaves out the older row of the same execution.
    assert read([row(1, end=BEGUN_MS + 10), row(1, end=BEGUN_MS - 10)][::-1], keep=since(BEGUN_MS + 100)) == []


def test_a_byte_order_mark_before_the_array_is_allowed() -> None:
    reader = ExecutionListReader("List executions")
    reader.feed(b"\xef\xbb\xbf" + json.dumps([row(1, nodes=0)]).encode())
    assert [e.execution_id for e in reader.close()] == ["e-000001"]


def test_invalid_rows_are_dropped_and_counted_in_one_escaped_warning(caplog: pytest.LogCaptureFixture) -> None:
    rows: list[Any] = [
        1,
        "x",
        [],
        {"execution_id": "e-\r\nforged log line", "status": "success"},
        {"execution_id": "e-2"},
        {"execution_id": "e-3", "status": "  "},
        {"execution_id": "e-4", "status": "success", "end_time": "soon", "begin_time": True, "created_by": 5},
    ]
    reader = ExecutionListReader("List executions")
    reader.feed(json.dumps(rows).encode())
    with caplog.at_level(logging.WARNING):
        listing = reader.close()
    assert [e.execution_id for e in listing] == ["e-4"]
    assert listing.executions[0] == ExecutionBrief("e-4", "success")
    assert (listing.rows, listing.invalid) == (7, 6)
    [warning] = [r.getMessage() for r in caplog.records if "invalid" in r.getMessage()]
    assert "6 of 7 rows" in warning and "\r" not in warning and "\n" not in warning


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"executions": []}',
        b"[",
        b'[{"execution_id": "e-1"',
        b"[1,]",
        b"[NaN]",
        b"null",
        b'"[]"',
        # The API's numbers are longs: one beyond 64 bits is refused by the C parser, and so is the answer.
        b'[{"execution_id": "e-1", "status": "success", "end_time": 100000000000000000000}]',
        b"[" * 100_000,
        b'[{"a":' * 50_000,
    ],
)
def test_an_answer_that_is_not_a_complete_array_is_a_typed_error_with_its_request_id(body: bytes) -> None:
    request = api.list_executions("wf-1").request("0" * 32)
    response = ApiResponse.build(200, body, {"X-Request-Id": "rid-7"})
    with pytest.raises(AomInvalidResponseError) as info:
        api.parse_execution_list(response, request)
    assert info.value.request_id == "rid-7"


def test_the_list_is_capped_after_decompression_and_never_held() -> None:
    body = gzip.compress(json.dumps([row(i) for i in range(300)]).encode())
    reader = ExecutionListReader("List executions", since(BEGUN_MS))
    capped = BodyReader("gzip", 100_000, truncate=False, action="List executions", status=200, sink=reader)
    with pytest.raises(AomResponseTooLargeError):
        capped.feed(body)
    streamed = BodyReader("gzip", 1 << 30, truncate=False, action="List executions", status=200, sink=reader)
    reader = ExecutionListReader("List executions", since(BEGUN_MS - 3_600_000 + 290_000))
    streamed.sink = reader
    for chunk in pieces(body, 4096):
        streamed.feed(chunk)
    assert len(streamed.body) < 64 * 1024 and streamed.count > 1_000_000  # at most one step waits for the sink
    assert [e.execution_id for e in streamed.finish()] == [f"e-{i:06d}" for i in range(291, 300)]


def test_memory_of_a_long_list_is_what_is_kept_not_what_is_read() -> None:
    # 20,000 rows of 20 nodes (~60 MB): fed in pieces, only the last rows kept.
    one = json.dumps(row(0)).encode()
    tracemalloc.start()
    try:
        reader = ExecutionListReader("List executions", since(BEGUN_MS))
        reader.feed(b"[")
        for i in range(20_000):
            reader.feed((b"," if i else b"") + one.replace(b"e-000000", f"e-{i:06d}".encode()))
        reader.feed(b"," + json.dumps(row(7, end=BEGUN_MS + 1)).encode() + b"]")
        listing = reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.execution_id for e in listing] == ["e-000007"] and listing.rows == 20_001
    assert peak < 4 * 1024 * 1024, peak


# --------------------------------------------------------------------------- properties of the watch

EXECUTION_IDS = st.sampled_from([f"e-{i}" for i in range(12)])
TIMES = st.one_of(
    st.integers(min_value=BEGUN_MS - 100_000, max_value=BEGUN_MS + 100_000),
    st.sampled_from([0, -1, 9_999_999_999_999, 2**63 - 1, 1 - 2**63, NOW_MS + 10**9]),
    st.none(),
    st.text(max_size=5),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
ROWS = st.fixed_dictionaries(
    {
        "execution_id": st.one_of(EXECUTION_IDS, st.sampled_from(["", "..", 5, None, "x" * 70])),
        "status": st.sampled_from(["success", "SUCCESS", "executing", "fail", "", 3]),
    },
    optional={"end_time": TIMES, "last_update_time": TIMES, "begin_time": TIMES, "created_by": st.text(max_size=3)},
)
POLLS = st.lists(st.lists(ROWS, max_size=25), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(ROWS, max_size=25), polls=POLLS, seed=st.integers())
def test_the_watch_reports_an_execution_at_most_once_and_never_one_that_ended_before_it_began(
    first: list[dict[str, Any]], polls: list[list[dict[str, Any]]], seed: int
) -> None:
    shuffle = random.Random(seed).shuffle
    watermark = Watermark.begin(0.0, read(first, Watermark.first_keep(now=BEGUN_MS / 1000)), SUCCESS, BEGUN_MS / 1000)
    begun = watermark.since_ms
    reported: list[str] = []
    for rows in polls:
        rows = [*rows, *rows[:3]]  # duplicates inside one answer
        shuffle(rows)
        for found in watermark.new(read(rows, watermark.keep()), SUCCESS, now_ms=NOW_MS):
            # Reached after the watch began, and not in the absurd future.
            assert begun < found.reached_at <= NOW_MS + 3_600_000 and found.status.lower() == "success"
            reported.append(found.execution_id)
        assert len(watermark.reported) <= MAX_REMEMBERED
    assert len(reported) == len(set(reported)), reported


def test_a_watch_over_a_100000_row_history_reports_only_the_new_execution() -> None:
    rows = [row(i, nodes=1, end=BEGUN_MS - 200_000_000 + i) for i in range(100_000)]
    watermark = Watermark.begin(0.0, read(rows, Watermark.first_keep(now=BEGUN_MS / 1000)), SUCCESS, BEGUN_MS / 1000)
    assert watermark.reported == {}
    rows.append(row(100_001, end=BEGUN_MS + 5000))
    kept = read(rows, watermark.keep())
    assert [e.execution_id for e in kept] == ["e-100001"]
    assert [e.execution_id for e in watermark.new(kept, SUCCESS, now_ms=NOW_MS)] == ["e-100001"]
    assert watermark.new(read([*rows, rows[-1]], watermark.keep()), SUCCESS, now_ms=NOW_MS) == []


def test_aoms_clock_is_read_from_when_the_headers_arrived_not_when_the_long_body_ended() -> None:
    import email.utils
    import time

    arrived = time.time() - 120  # a list that took two minutes to read
    date = email.utils.formatdate(arrived, usegmt=True)
    request = api.list_executions("wf-1").request("0" * 32)
    response = ApiResponse.build(200, b"[]", {"Date": date}, received_at=arrived)
    offset = api.parse_execution_list(response, request).clock_offset
    assert offset is not None and abs(offset) < 1.5, offset
