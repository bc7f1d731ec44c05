"""One exchange's deadline (airflow_provider_aom/transport/deadline.py), and whether a byte of it was sent.

Every socket operation of the wrapped streams and backends is clamped to the time the request has
left, past the deadline none starts, a write of the request (not a proxy's CONNECT) marks it sent,
and reads count what arrived. Fake inner streams stand in for httpcore's.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aom.transport import deadline
from airflow_provider_aom.transport.deadline import BUDGET, CallBudget, DeadlineExpired, clamp, is_readable


@pytest.fixture
def budget() -> Iterator[CallBudget]:
    """A budget of 10 s, current for the test."""
    current = CallBudget(time.monotonic() + 10)
    token = BUDGET.set(current)
    yield current
    BUDGET.reset(token)


def test_remaining_is_the_time_to_the_deadline() -> None:
    assert 4.5 < CallBudget(time.monotonic() + 5).remaining() <= 5
    assert CallBudget(time.monotonic() - 1).remaining() < 0


def test_without_a_budget_a_timeout_is_left_as_it_is() -> None:
    assert BUDGET.get() is None
    assert (clamp(3.0), clamp(None)) == (3.0, None)


def test_a_timeout_never_reaches_past_the_deadline(budget: CallBudget) -> None:
    assert clamp(1.0) == 1.0
    assert 9 < (clamp(60.0) or 0) <= 10
    assert 9 < (clamp(None) or 0) <= 10, "no timeout means: until the deadline"


def test_past_the_deadline_no_operation_starts(budget: CallBudget) -> None:
    budget.deadline = time.monotonic() - 0.001
    with pytest.raises(DeadlineExpired):
        clamp(1.0)


def test_the_budget_is_per_context() -> None:
    seen: list[CallBudget | None] = []
    token = BUDGET.set(CallBudget(time.monotonic() + 10))
    try:
        thread = threading.Thread(target=lambda: seen.append(BUDGET.get()))
        thread.start()
        thread.join()
        seen.append(contextvars.Context().run(BUDGET.get))
    finally:
        BUDGET.reset(token)
    assert seen == [None, None]


class FakeStream:
    """Records the timeout each operation got."""

    def __init__(self, data: bytes = b"answer") -> None:
        self.data = data
        self.timeouts: list[tuple[str, float | None]] = []
        self.written: list[bytes] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(("read", timeout))
        return self.data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(("write", timeout))
        self.written.append(buffer)

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        self.timeouts.append(("start_tls", timeout))
        return FakeStream()

    def get_extra_info(self, info: str) -> Any:
        return f"info:{info}"

    def close(self) -> None:
        self.timeouts.append(("close", None))


def test_every_stream_operation_is_clamped(budget: CallBudget) -> None:
    inner = FakeStream()
    stream = deadline._Stream(inner)  # type: ignore[arg-type]
    stream.write(b"GET / HTTP/1.1\r\n", timeout=100.0)
    stream.read(1024, timeout=0.5)
    tls = stream.start_tls(None, "h", timeout=None)  # type: ignore[arg-type]
    assert isinstance(tls, deadline._Stream), "the TLS stream is clamped too"
    ops = dict(inner.timeouts)
    assert 9 < (ops["write"] or 0) <= 10 and ops["read"] == 0.5 and 9 < (ops["start_tls"] or 0) <= 10
    assert stream.get_extra_info("x") == "info:x"
    budget.deadline = time.monotonic() - 1
    with pytest.raises(DeadlineExpired):
        stream.read(1024)


def test_writing_the_request_marks_it_sent_and_reads_count_the_answer(budget: CallBudget) -> None:
    stream = deadline._Stream(FakeStream(b"12345"))  # type: ignore[arg-type]
    stream.write(b"CONNECT aom:443 HTTP/1.1\r\n\r\n")
    assert not budget.sent, "a proxy's CONNECT is not our request"
    stream.read(1024)  # the proxy's 200
    stream.write(b"")
    assert not budget.sent, "an empty write sends nothing"
    stream.write(b"POST /executions HTTP/1.1\r\n")
    assert budget.sent and budget.received == 0, "what arrived before the request is not its answer"
    stream.read(1024)
    stream.read(1024)
    assert budget.received == 10
    stream.write(b"more body")
    assert budget.received == 10, "marked sent once"


def test_a_write_is_marked_sent_even_when_it_fails(budget: CallBudget) -> None:
    class Failing(FakeStream):
        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            raise OSError("broken pipe")

    with pytest.raises(OSError):
        deadline._Stream(Failing()).write(b"POST / HTTP/1.1\r\n")  # type: ignore[arg-type]
    assert budget.sent, "a failed write may still have delivered bytes"


def test_the_backend_clamps_the_connect(budget: CallBudget, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[float | None] = []

    class Inner:
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, *args: Any) -> FakeStream:
            asked.append(timeout)
            return FakeStream()

    backend = deadline.Backend()
    monkeypatch.setattr(backend, "_inner", Inner())
    stream = backend.connect_tcp("h", 1, timeout=None)
    assert isinstance(stream, deadline._Stream) and 9 < (asked[0] or 0) <= 10


def test_the_async_stream_is_clamped_and_counts_alike() -> None:
    class AsyncFake:
        def __init__(self) -> None:
            self.timeouts: list[float | None] = []

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            self.timeouts.append(timeout)
            return b"abc"

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.timeouts.append(timeout)

    async def main() -> tuple[CallBudget, list[float | None]]:
        inner = AsyncFake()
        current = CallBudget(time.monotonic() + 10)
        BUDGET.set(current)  # this task's own context
        stream = deadline._AsyncStream(inner)  # type: ignore[arg-type]
        await stream.write(b"GET / HTTP/1.1\r\n", timeout=None)
        await stream.read(10, timeout=2.0)
        return current, inner.timeouts

    current, timeouts = asyncio.run(main())
    assert current.sent and current.received == 3
    assert 9 < (timeouts[0] or 0) <= 10 and timeouts[1] == 2.0
    assert BUDGET.get() is None, "the task's budget stayed in the task"


def test_is_readable_tells_an_idle_connection_the_server_closed() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert not is_readable(ours), "an idle, open connection"
        theirs.sendall(b"x")
        assert is_readable(ours), "junk on an idle connection"
        ours.recv(1)
        theirs.close()
        assert is_readable(ours), "the server closed it"
    finally:
        ours.close()
    assert is_readable(ours), "a closed socket"
    assert is_readable(None)
