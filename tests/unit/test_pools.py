"""The pools over loopback: the fresh-connection rule, cancellation, and who closes the sockets.

* A submit after a read: the server closed the kept-alive connection just as the submit was
  sent (:class:`~tests.loopback.StaleGate`). The submit goes out on a fresh connection, so it
  reaches the server once and is not ambiguous; a read is still sent on the kept-alive one.
* A task cancelled while its request holds a connection gives back its slot and closes the
  connection; so does a task cancelled while it waits for a slot.
* Async pools are shared per loop: closing one transport leaves the others' sockets open, the
  last one closes them, and whatever is left closes when ``asyncio.run`` ends.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_aom.exceptions import AomTransportError
from airflow_provider_aom.transport import AsyncTransport, BodyReader, SyncTransport, TransportSettings, pools
from airflow_provider_aom.wire import ApiResponse, HttpRequest
from tests.loopback import ConnectProxy, KeepAliveServer, StaleGate

MODES = ["sync", "async"]


@dataclass(frozen=True)
class Facts:
    action: str = "Call"
    idempotent: bool = True
    body_sink: None = None


def request(url: str, method: str = "GET", path: str = "/read", *, idempotent: bool = True) -> HttpRequest[Facts]:
    netloc = url.split("/")[2]
    body = b"{}" if method == "POST" else b""
    return HttpRequest(method, url + path, {"Host": netloc}, body, Facts(f"{method} {path}", idempotent))


def run(mode: str, settings: TransportSettings, requests: list[HttpRequest[Facts]]) -> list[Any]:
    """Each request in order on one transport (closed after); an AomTransportError is returned, not raised."""
    outcomes: list[Any] = []
    if mode == "sync":
        sync = SyncTransport(settings)
        try:
            for item in requests:
                try:
                    outcomes.append(sync.send(item, time.monotonic() + 5))
                except AomTransportError as exc:
                    outcomes.append(exc)
        finally:
            sync.close()
        return outcomes

    async def main() -> None:
        transport = AsyncTransport(settings)
        try:
            for item in requests:
                try:
                    outcomes.append(await transport.send(item, time.monotonic() + 5))
                except AomTransportError as exc:
                    outcomes.append(exc)
        finally:
            await transport.aclose()

    asyncio.run(main())
    return outcomes


@pytest.fixture
def server() -> Iterator[KeepAliveServer]:
    with KeepAliveServer() as started:
        yield started


@pytest.fixture
def gate(server: KeepAliveServer) -> Iterator[StaleGate]:
    with StaleGate(server.port) as started:
        yield started


# --------------------------------------------------------------------------- the fresh-connection rule


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
@pytest.mark.parametrize("mode", MODES)
def test_a_submit_after_a_kept_alive_read_reaches_the_server_once(
    mode: str, proxied: bool, server: KeepAliveServer, gate: StaleGate
) -> None:
    with ConnectProxy() as proxy:
        settings = TransportSettings(proxies={"http": proxy.url} if proxied else {})
        read, submit = request(gate.url), request(gate.url, "POST", "/executions", idempotent=False)
        outcomes = run(mode, settings, [read, read, submit, read])
    assert all(isinstance(o, ApiResponse) and o.status == 200 for o in outcomes), outcomes
    assert gate.dropped == []
    [posted] = server.requests("POST")
    reads = server.requests("GET")
    assert len(reads) == 3
    assert reads[0].connection == reads[1].connection, "a read reuses the kept-alive connection"
    assert posted.connection not in {r.connection for r in reads[:2]}, "the submit went out on a fresh connection"
    if proxied:
        assert len(proxy.forwarded) == 2, "one proxy connection for the reads, one made for the submit"


@pytest.mark.parametrize("mode", MODES)
def test_the_gate_drops_a_request_sent_on_a_kept_alive_connection(
    mode: str, server: KeepAliveServer, gate: StaleGate
) -> None:
    """What the rule prevents: a POST that may be re-sent (idempotent) reuses the connection and is lost, as sent."""
    read, post = request(gate.url), request(gate.url, "POST", "/workflow-list")
    outcomes = run(mode, TransportSettings(proxies={}), [read, post])
    assert isinstance(outcomes[0], ApiResponse)
    assert isinstance(outcomes[1], AomTransportError) and outcomes[1].sent is True, outcomes[1]
    assert [s.target for s in gate.dropped] == ["/workflow-list"]
    assert server.requests("POST") == []


# --------------------------------------------------------------------------- cancellation


def _host(transport: AsyncTransport, url: str) -> Any:
    key, _ = transport.settings.endpoint(url + "/")
    return pools._LOOP_POOLS[asyncio.get_running_loop()].hosts[key]


async def _until(condition: Any, timeout: float = 5.0) -> None:
    ends = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < ends, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("where", ["/hold", "/half"], ids=["before-the-answer", "during-the-body"])
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
async def test_a_cancelled_request_gives_back_its_slot_and_closes_its_connection(
    where: str, proxied: bool, server: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", 2)
    with ConnectProxy() as proxy:
        transport = AsyncTransport(TransportSettings(proxies={"http": proxy.url} if proxied else {}))
        try:
            task = asyncio.ensure_future(transport.send(request(server.url, path=where), time.monotonic() + 10))
            await _until(lambda: len(server.seen) == 1)
            host = _host(transport, server.url)
            assert host.busy == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (host.slots._value, host.busy, len(host.idle)) == (2, 0, 0)
            await _until(lambda: server.open == 0)  # the server saw the connection close
            server.release.set()
            after = await transport.send(request(server.url), time.monotonic() + 5)
            assert after.status == 200 and host.slots._value == 2
            assert [s.connection for s in server.seen] == [0, 1], "a new connection, not the cancelled one"
        finally:
            await transport.aclose()


async def test_a_request_cancelled_while_waiting_for_a_slot_leaves_the_slots_whole(
    server: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", 1)
    transport = AsyncTransport(TransportSettings(proxies={}))
    try:
        holder = asyncio.ensure_future(transport.send(request(server.url, path="/hold"), time.monotonic() + 10))
        await _until(lambda: len(server.seen) == 1)
        host = _host(transport, server.url)
        waiter = asyncio.ensure_future(transport.send(request(server.url), time.monotonic() + 10))
        await asyncio.sleep(0.05)
        waiter.cancel()
        server.release.set()  # the slot frees as the waiter is cancelled
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (await holder).status == 200
        assert host.slots._value == 1 and host.busy == 0
        assert (await transport.send(request(server.url), time.monotonic() + 5)).status == 200
        assert len(server.seen) == 2, "the cancelled request was never sent"
    finally:
        await transport.aclose()


# --------------------------------------------------------------------------- closing


def test_sync_close_closes_the_sockets(server: KeepAliveServer) -> None:
    transport = SyncTransport(TransportSettings(proxies={}))
    assert transport.send(request(server.url), time.monotonic() + 5).status == 200
    assert server.open == 1
    transport.close()
    assert server.wait_open(0)
    assert transport.send(request(server.url), time.monotonic() + 5).status == 200, "usable again after close"
    transport.close()
    assert server.wait_open(0)


async def test_closing_one_async_transport_leaves_the_loop_pools_to_the_others(server: KeepAliveServer) -> None:
    one, two = AsyncTransport(TransportSettings(proxies={})), AsyncTransport(TransportSettings(proxies={}))
    assert (await one.send(request(server.url), time.monotonic() + 5)).status == 200
    assert (await two.send(request(server.url), time.monotonic() + 5)).status == 200
    assert server.accepted == 1, "one pool for the loop: the second transport reused the connection"
    await one.aclose()
    assert server.open == 1
    assert (await two.send(request(server.url), time.monotonic() + 5)).status == 200
    assert server.accepted == 1, "the other transport's connection stayed open and in the pool"
    await two.aclose()
    await _until(lambda: server.open == 0)
    assert asyncio.get_running_loop() not in pools._LOOP_POOLS
    # A closed transport takes the pools up again when used.
    assert (await one.send(request(server.url), time.monotonic() + 5)).status == 200
    await one.aclose()
    await _until(lambda: server.open == 0)


def test_pools_left_open_are_closed_when_the_loop_ends(server: KeepAliveServer) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        transport = AsyncTransport(TransportSettings(proxies={}))
        assert (await transport.send(request(server.url), time.monotonic() + 5)).status == 200
        assert server.open == 1  # never closed by the caller

    asyncio.run(main())
    assert server.wait_open(0)
    assert loops[0] not in pools._LOOP_POOLS


@pytest.mark.parametrize("size", [1, 2])
async def test_a_fresh_connection_keeps_the_host_within_its_socket_cap(
    size: int, server: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one slot, the submit's new socket replaces the idle one; with room, the idle one stays for reads."""
    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", size)
    transport = AsyncTransport(TransportSettings(proxies={}))
    try:
        await transport.send(request(server.url), time.monotonic() + 5)
        await transport.send(request(server.url, "POST", "/executions", idempotent=False), time.monotonic() + 5)
        await transport.send(request(server.url), time.monotonic() + 5)
        assert server.accepted == 2, "the submit got a new connection; the read after it reused one"
        await _until(lambda: server.open == size)
    finally:
        await transport.aclose()


MIB = 1024 * 1024


class _Sink:
    def __init__(self) -> None:
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)

    def close(self) -> int:
        return self.received


def test_reading_a_body_lets_the_event_loop_run_even_when_the_socket_never_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every chunk is ready at once (the stream never suspends) and inflates to many 64 KiB pieces: without the
    # transport's own turns the ticker would not run until the whole body was read.
    monkeypatch.setattr(pools, "LOOP_TURN_SECONDS", 0.0)
    compressed = gzip.compress(b"x" * (8 * MIB))

    class Ready:
        async def aiter_stream(self) -> Any:
            for start in range(0, len(compressed), 4096):
                yield compressed[start : start + 4096]

    async def main() -> tuple[int, int]:
        ticks = 0
        done = False

        async def tick() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        started = ticks
        reader = BodyReader("gzip", 100 * MIB, truncate=False, action="List", status=200, sink=_Sink())
        body = await pools._read_into(reader, Ready())  # type: ignore[arg-type]
        done = True
        await ticker
        assert body.count == 8 * MIB
        return started, ticks

    started, ticks = asyncio.run(main())
    assert ticks > started + 100, (started, ticks)  # 128 pieces of 64 KiB
