"""Seeded execution histories over real HTTP on 127.0.0.1: admin config, CLI, row shape, streaming, memory."""

from __future__ import annotations

import codecs
import itertools
import json
import re
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPResponse
from typing import Any

import pytest
import requests

from airflow_provider_aom.emulator import DEFAULT_IAM_USER, AomEmulator, EmulatorConfig, EmulatorState, payloads
from airflow_provider_aom.emulator.history import MAX_HISTORY, NEWEST_AGE, OTHER_USERS, RUN_BUDGET_MS, SPACING
from tests.emulator.test_emulator import (
    PID,
    STATIC,
    _read_first_line,
    aom,
    execute,
    fast_workflows,
    run_python,
    start_cli,
    status_of,
)

HEADERS = {"X-Auth-Token": STATIC}
SEEDED_ID = re.compile(r"h-[0-9a-f]{12}-(0|[1-9][0-9]*)")
BRIEF_KEYS = {
    "workflow_id",
    "execution_id",
    "status",
    "begin_time",
    "end_time",
    "last_update_time",
    "created_by",
    "approve_user_name_list",
    "execution_result_list",
    "project_id",
    "workflow_edit_time",
    "last_record_id_with_snapshot",
}
NODE_KEYS = {"node_id", "status", "begin_time", "end_time", "function_execution_id", "output"}
#: Bound on the emulator's growth while it streams a 100,000-row list (about 500 MB of JSON).
MEMORY_BOUND_KIB = 64 * 1024


def configure(emu: AomEmulator, http: requests.Session, **settings: Any) -> dict[str, Any]:
    response = http.post(emu.base_url + "/_emulator/config", json=settings)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listing(emu: AomEmulator, http: requests.Session, workflow_id: str) -> list[dict[str, Any]]:
    response = http.get(emu.base_url + aom(f"/workflow/{workflow_id}/executions"), headers=HEADERS)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def assert_seeded_row(row: dict[str, Any], workflow_id: str, nodes: int, started_at: float) -> None:
    assert set(row) == BRIEF_KEYS
    assert row["workflow_id"] == workflow_id and row["project_id"] == PID
    assert SEEDED_ID.fullmatch(row["execution_id"]) and len(row["execution_id"]) <= 64
    assert row["status"] in {"success", "fail", "cancel"}
    assert row["created_by"] in {DEFAULT_IAM_USER, *OTHER_USERS}
    assert row["approve_user_name_list"] == []
    assert isinstance(row["workflow_edit_time"], int)
    assert re.fullmatch(r"[0-9a-f]{32}", row["last_record_id_with_snapshot"])
    # Ended before the emulator started.
    assert 0 < row["begin_time"] < row["end_time"] == row["last_update_time"] < started_at * 1000
    assert row["end_time"] - row["begin_time"] <= RUN_BUDGET_MS
    results = row["execution_result_list"]
    assert [node["node_id"] for node in results] == [f"node_{n}" for n in range(1, nodes + 1)]
    moment = row["begin_time"]
    for node in results:
        assert set(node) == NODE_KEYS
        assert re.fullmatch(r"[0-9a-f]{32}", node["function_execution_id"])
        assert isinstance(node["output"], dict) and len(json.dumps(node["output"])) < 120
        assert moment <= node["begin_time"] < node["end_time"] <= row["end_time"]
        moment = node["end_time"]
    assert [node["status"] for node in results[:-1]] == ["success"] * (nodes - 1)
    assert results[-1]["status"] == row["status"]


def test_history_set_through_the_admin_api(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/config"
    assert http.get(admin).json() == {"history": 0, "history_nodes": 20}
    real = execute(emu, http, "fast-success")
    assert [row["execution_id"] for row in listing(emu, http, "fast-success")] == [real]

    assert configure(emu, http, history=30, history_nodes=3) == {"history": 30, "history_nodes": 3}
    assert http.get(admin).json() == {"history": 30, "history_nodes": 3}
    newer = execute(emu, http, "fast-success")
    rows = listing(emu, http, "fast-success")
    assert len(rows) == 32
    # The real executions come last (newest first among themselves), after the seeded history.
    assert [row["execution_id"] for row in rows[30:]] == [newer, real]
    seeded = rows[:30]
    for row in seeded:
        assert_seeded_row(row, "fast-success", 3, emu.state.started_at)
    assert len({row["execution_id"] for row in rows}) == 32
    # Newest first, 5 minutes apart, the newest begun an hour before the emulator started.
    begins = [row["begin_time"] for row in seeded]
    assert [a - b for a, b in itertools.pairwise(begins)] == [SPACING * 1000] * 29
    assert abs(begins[0] / 1000 - (emu.state.started_at - NEWEST_AGE)) < 1
    assert max(row["end_time"] for row in seeded) < min(row["begin_time"] for row in rows[30:])
    # The same rows again: generated from their index, not stored.
    assert listing(emu, http, "fast-success")[:30] == seeded

    # Every workflow has its own ids; the admin listing and the request log hold real executions only.
    other = listing(emu, http, "fast-fail")
    assert len(other) == 30 and not {row["execution_id"] for row in other} & {row["execution_id"] for row in seeded}
    assert [e["execution_id"] for e in http.get(emu.base_url + "/_emulator/executions").json()] == [real, newer]
    assert len(http.get(emu.base_url + "/_emulator/requests").json()) == 6

    # A partial update keeps the other setting; growing the history keeps the rows already there.
    configure(emu, http, history=40)
    assert http.get(admin).json() == {"history": 40, "history_nodes": 3}
    assert listing(emu, http, "fast-success")[:30] == seeded
    configure(emu, http, history=0)
    assert [row["execution_id"] for row in listing(emu, http, "fast-success")] == [newer, real]

    # Reset puts back what the emulator started with.
    configure(emu, http, history=5, history_nodes=1)
    assert http.post(emu.base_url + "/_emulator/reset").ok
    assert http.get(admin).json() == {"history": 0, "history_nodes": 20}
    assert listing(emu, http, "fast-success") == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"history": -1},
        {"history": MAX_HISTORY + 1},
        {"history": "5"},
        {"history": True},
        {"history": 1.5},
        {"history_nodes": 0},
        {"history_nodes": 201},
        {"history": 5, "history_nodes": None, "bogus": 1},
        {"answer_delay": 1},
    ],
)
def test_admin_config_rejects_bad_settings(emu: AomEmulator, http: requests.Session, payload: Any) -> None:
    response = http.post(emu.base_url + "/_emulator/config", json=payload)
    assert response.status_code == 400 and "error" in response.json()
    # Nothing changed, not even half of a request.
    assert http.get(emu.base_url + "/_emulator/config").json() == {"history": 0, "history_nodes": 20}


def test_config_history_is_validated_and_mixes_statuses_and_users(http: requests.Session) -> None:
    with pytest.raises(ValueError, match="history_nodes"):
        EmulatorState(EmulatorConfig(history=1, history_nodes=201))
    with pytest.raises(ValueError, match="history"):
        EmulatorState(EmulatorConfig(history=-1))
    config = EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows(), history=2000, history_nodes=2)
    with AomEmulator(config) as emulator:
        rows = listing(emulator, http, "fast-success")
    assert len(rows) == 2000 and len({row["execution_id"] for row in rows}) == 2000
    statuses = Counter(row["status"] for row in rows)
    assert statuses["success"] > 0.8 * 2000 and statuses["fail"] > statuses["cancel"] > 0
    creators = Counter(row["created_by"] for row in rows)
    assert creators[DEFAULT_IAM_USER] > 0.7 * 2000 and all(creators[user] > 0 for user in OTHER_USERS)
    failed = next(row for row in rows if row["status"] == "fail")
    assert failed["execution_result_list"][-1]["output"]["code"] == 1


def test_seeded_detail_terminate_and_operations(emu: AomEmulator, http: requests.Session) -> None:
    configure(emu, http, history=200, history_nodes=4)
    rows = listing(emu, http, "fast-success")
    by_status = {row["status"]: row for row in rows}
    assert set(by_status) == {"success", "fail", "cancel"}
    for row in by_status.values():
        execution_id = row["execution_id"]
        detail = status_of(emu, http, "fast-success", execution_id)
        assert detail == {key: value for key, value in row.items() if key != "created_by"}
        base = emu.base_url + aom(f"/workflow/fast-success/executions/{execution_id}")
        terminated = http.post(base + "/terminate", headers=HEADERS)
        assert terminated.status_code == 400
        assert terminated.json()["error_msg"] == "execution already finished."
        refused = http.post(base + "/operation", params={"action": "restart", "node_id": "node_4"}, headers=HEADERS)
        assert refused.status_code == 400 and refused.json()["error_code"] == "AOM.31001302"
        status = row["status"]
        assert refused.json()["error_msg"] == f"action restart refused: node node_4 is {status}, execution is {status}"
        missing_node = http.post(base + "/operation", params={"action": "skip", "node_id": "node_9"}, headers=HEADERS)
        assert "node node_9 does not exist" in missing_node.json()["error_msg"]
        # Still the same, ended.
        assert status_of(emu, http, "fast-success", execution_id) == detail
    assert emu.state.executions() == []

    def detail_status(workflow_id: str, execution_id: str) -> int:
        path = aom(f"/workflow/{workflow_id}/executions/{execution_id}/status")
        return http.get(emu.base_url + path, headers=HEADERS).status_code

    newest = rows[0]["execution_id"]
    tag = newest.split("-")[1]
    assert detail_status("fast-success", f"h-{tag}-199") == 200
    # Past the history, another workflow's row, a non-canonical index, a made-up tag: no such execution.
    assert detail_status("fast-success", f"h-{tag}-200") == 404
    assert detail_status("fast-fail", newest) == 404
    assert detail_status("fast-success", f"h-{tag}-07") == 404
    assert detail_status("fast-success", "h-000000000000-1") == 404
    history = emu.state.history("fast-success")
    assert history is not None and history.count == 200 and history.execution_id(0) == newest
    assert emu.state.history("no-such-workflow") is None


def test_workflow_list_shows_the_newest_seeded_run_until_a_real_one(emu: AomEmulator, http: requests.Session) -> None:
    configure(emu, http, history=3, history_nodes=2)
    newest = listing(emu, http, "fast-fail")[0]

    def workflow() -> dict[str, Any]:
        response = http.post(emu.base_url + aom("/workflow-list"), json={"search": "fast fail"}, headers=HEADERS)
        [element] = response.json()["elements"]
        return dict(element)

    shown = workflow()
    assert shown["last_execution_id"] == newest["execution_id"] and shown["status"] == newest["status"]
    assert shown["last_execution_start_time"] == newest["begin_time"]
    assert shown["last_execute_by"] == newest["created_by"]
    real = execute(emu, http, "fast-fail")
    assert workflow()["last_execution_id"] == real


def read_chunked_raw(response: HTTPResponse) -> bytes:
    body = response.read()
    assert response.getheader("Transfer-Encoding") == "chunked" and response.getheader("Content-Length") is None
    return body


def test_streamed_list_is_chunked_and_keeps_the_connection(emu: AomEmulator, http: requests.Session) -> None:
    configure(emu, http, history=200, history_nodes=20)
    real = execute(emu, http, "fast-success")
    connection = HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", aom("/workflow/fast-success/executions"), headers=HEADERS)
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Content-Type") == "application/json"
            body = read_chunked_raw(response)
            assert len(body) > 4 * payloads.CHUNK_SIZE
            rows = json.loads(body)
            assert len(rows) == 201 and rows[-1]["execution_id"] == real
            # Formatted as json.dumps formats every other answer.
            assert body == json.dumps(rows).encode("ascii")
        # The same keep-alive connection goes on serving.
        connection.request("GET", aom(f"/workflow/fast-success/executions/{real}/status"), headers=HEADERS)
        assert json.loads(connection.getresponse().read())["execution_id"] == real
    finally:
        connection.close()


def test_streamed_list_to_an_http_1_0_client_ends_with_the_connection(emu: AomEmulator, http: requests.Session) -> None:
    configure(emu, http, history=20, history_nodes=2)
    expected = http.get(emu.base_url + aom("/workflow/fast-success/executions"), headers=HEADERS).content
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        path = aom("/workflow/fast-success/executions")
        sock.sendall(f"GET {path} HTTP/1.0\r\nX-Auth-Token: {STATIC}\r\n\r\n".encode("ascii"))
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower() and b"connection: close" in head.lower()
    assert body == expected and len(json.loads(body)) == 20


def test_faults_on_a_streamed_list(emu: AomEmulator, http: requests.Session) -> None:
    configure(emu, http, history=50, history_nodes=5)
    url = emu.base_url + aom("/workflow/fast-success/executions")
    whole = http.get(url, headers=HEADERS).content

    emu.state.add_fault("truncated", path="executions$")
    cut = http.get(url, headers=HEADERS)
    assert cut.status_code == 200 and cut.headers["Content-Length"] == str(len(whole) // 2)
    assert cut.content == whole[: len(whole) // 2]

    emu.state.add_fault("patch", path="executions$", patch={"status": float("nan"), "end_time": "soon"})
    patched = http.get(url, headers=HEADERS)
    assert patched.content.count(b'"status": NaN') == 50
    assert all(row["end_time"] == "soon" for row in json.loads(patched.content))

    configure(emu, http, history=1, history_nodes=1)
    small = http.get(url, headers=HEADERS).content
    emu.state.add_fault("trickle", path="executions$", delay=0.0005)
    started = time.monotonic()
    trickled = http.get(url, headers=HEADERS, timeout=30)
    assert trickled.content == small and time.monotonic() - started >= len(small) * 0.0005
    assert [r["fault"] for r in emu.state.requests()] == [None, "truncated", "patch", None, "trickle"]


# -- 100,000 rows from the CLI, with the emulator's memory measured ----------------


def proc_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def stream_array(response: HTTPResponse) -> Iterator[Any]:
    """The elements of a JSON array answer, decoded one by one as its bytes arrive (never all held)."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buffer, position, started = "", 0, False
    done = False
    while True:
        chunk = response.read(1024 * 1024)
        buffer = buffer[position:] + text.decode(chunk, final=not chunk)
        position = 0
        while True:
            while position < len(buffer) and buffer[position] in " \r\n\t":
                position += 1
            if position == len(buffer):
                break
            if not started:
                assert buffer[position] == "["
                started, position = True, position + 1
                continue
            if buffer[position] in ",]":
                done = buffer[position] == "]"
                position += 1
                assert not done or not buffer[position:].strip()
                continue
            try:
                element, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                if not chunk:
                    raise
                break
            position = end
            yield element
        if not chunk:
            assert done, "the array never ended"
            return


def test_cli_history_streams_100000_rows_in_bounded_memory() -> None:
    assert "--history-nodes" in run_python("-m", "airflow_provider_aom.emulator", "--help").stdout
    process = start_cli("--history", "100000", "--history-nodes", "20", "--static-token", STATIC, "--quiet")
    try:
        port = int(_read_first_line(process).rstrip("\n").rsplit(":", 1)[1])
        path = aom("/workflow/wf-success/executions")
        connection = HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", path, headers=HEADERS)
        real = json.loads(connection.getresponse().read())["execution_id"]
        # A first, abandoned list: whatever a first answer allocates once is in the baseline.
        connection.request("GET", path, headers=HEADERS)
        connection.getresponse().read(100)
        connection.close()
        time.sleep(0.3)
        before = proc_kib(process.pid, "VmRSS")

        connection = HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.monotonic()
        connection.request("GET", path, headers=HEADERS)
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        ids: set[str] = set()
        count, last = 0, None
        for row in stream_array(response):
            count += 1
            if count <= 100000:
                assert SEEDED_ID.fullmatch(row["execution_id"]), row["execution_id"]
                assert len(row["execution_result_list"]) == 20
            ids.add(row["execution_id"])
            last = row
        elapsed = time.monotonic() - started
        connection.close()
        peak = proc_kib(process.pid, "VmHWM")
        assert count == 100001 and len(ids) == 100001
        assert last is not None and last["execution_id"] == real and set(last) == BRIEF_KEYS
        growth = peak - before
        print(f"100,000-row list: {elapsed:.1f} s, emulator RSS {before} KiB, peak {peak} KiB (+{growth} KiB)")
        assert growth < MEMORY_BOUND_KIB, f"the emulator grew by {growth} KiB"
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def test_cli_rejects_a_bad_history() -> None:
    for args, message in [
        (["--history", "-1"], "--history must be from 0 to 1000000"),
        (["--history-nodes", "201"], "--history-nodes must be from 1 to 200"),
        (["--history-nodes", "0"], "--history-nodes must be from 1 to 200"),
    ]:
        result = run_python("-m", "airflow_provider_aom.emulator", *args)
        assert result.returncode == 2, args
        assert message in result.stderr
