"""The two drivers and their connection pools: one exchange, sent, read and classified.

:class:`SyncTransport` keeps one ``httpcore.ConnectionPool`` per endpoint host for one hook.
:class:`AsyncTransport` shares, per event loop, one :class:`_HostConnections` per endpoint host
among every hook on the loop (a triggerer runs all its triggers on one). The rules they share
(the fresh-connection rule, closing, leases) are in the package docstring.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import time
import weakref
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomConfigurationError, AomTransportError
from airflow_provider_aom.transport.bodies import BodyReader
from airflow_provider_aom.transport.deadline import BUDGET, AsyncBackend, Backend, CallBudget
from airflow_provider_aom.transport.errors import NETWORK_FAILURES, classify
from airflow_provider_aom.transport.settings import PoolKey, TransportSettings, ssl_context, wire_headers
from airflow_provider_aom.vocabulary import ERROR_BODY_BYTES
from airflow_provider_aom.wire import ApiResponse, HttpRequest, RequestFacts

log = logging.getLogger(__name__)

#: Longest the async transport works on one answer's bytes before letting the event loop run other tasks.
LOOP_TURN_SECONDS = 0.01
#: Sockets per endpoint host (scheme, host, port, proxy, TLS settings) in one process or event
#: loop. Requests beyond it wait for a free one within their own deadline. By Little's law a host
#: answering in 100 ms then serves at most 1,280 requests a second (5,000 waits at a 5 s poll need
#: 1,000); 64 capped that at 640, and 5,000 such waits polled at 40 % of their rate (BENCHMARKS.md).
MAX_CONNECTIONS_PER_HOST = 128
#: Idle keep-alive connections are dropped after this many seconds (the gateway's idle timeout
#: is undocumented; re-connecting is cheap next to a poll interval).
KEEPALIVE_EXPIRY = 5.0

Request = HttpRequest[RequestFacts]

_SUBJECT_TOKEN = re.compile(r"((?:b)?'x-subject-token', (?:b)?')[^']*(')", re.IGNORECASE)


class _HideSubjectToken(logging.Filter):
    """httpcore logs response headers at DEBUG, before the provider can mask a new IAM token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "subject-token" in record.msg.lower():
            record.msg = _SUBJECT_TOKEN.sub(r"\1***\2", record.msg)
        return True


@functools.lru_cache(maxsize=1)
def _hide_subject_tokens() -> None:
    """Installed when the first transport is made, not when the package is imported."""
    logging.getLogger("httpcore.http11").addFilter(_HideSubjectToken())


# --------------------------------------------------------------------------- one exchange


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _response(status: int, headers: list[tuple[bytes, bytes]], reader: BodyReader) -> ApiResponse:
    return ApiResponse.build(
        status,
        reader.body,
        {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
        reader.finish(),
        received_at=reader.received_at,
    )


def _pool_kwargs(key: PoolKey, max_connections: int) -> dict[str, Any]:
    context = ssl_context(key.trust) if key.uses_tls else None
    proxy = None
    if key.proxy is not None:
        parts = urlsplit(key.proxy)
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        # TLS to an https:// proxy trusts what TLS to the host trusts (httpcore would use certifi's bundle).
        proxy = httpcore.Proxy(bare, auth=auth, ssl_context=context if parts.scheme == "https" else None)
    return {
        "ssl_context": context if key.scheme == "https" else None,
        "proxy": proxy,
        "max_connections": max_connections,
        "max_keepalive_connections": max_connections,
        "keepalive_expiry": KEEPALIVE_EXPIRY,
    }


@dataclass
class Exchange:
    """One request as the pools take it, and the rules it runs under (what both drivers share)."""

    request: Request
    key: PoolKey
    settings: TransportSettings
    budget: CallBudget
    arguments: dict[str, Any]

    @classmethod
    def prepare(cls, settings: TransportSettings, request: Request, deadline: float) -> Exchange:
        key, target = settings.endpoint(request.url)
        # Each operation is also clamped to the deadline by the backend; these are the per-operation ceilings.
        timeout = max(0.0, min(settings.timeout, deadline - time.monotonic()))
        arguments = {
            "method": request.method,
            "url": httpcore.URL(scheme=key.scheme, host=key.host, port=key.port, target=target),
            "headers": wire_headers(request.headers),
            # A POST always carries Content-Length (0 when empty): gateways may answer 411 without one.
            "content": None if request.method in ("GET", "HEAD") else request.body,
            "extensions": {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        }
        return cls(request, key, settings, CallBudget(deadline), arguments)

    @property
    def fresh(self) -> bool:
        """The request may not be sent twice, so it goes out only on a connection made for it."""
        return not self.request.api.idempotent

    @contextlib.contextmanager
    def scope(self) -> Iterator[CallBudget]:
        """Run the exchange under its budget; map what went wrong to the provider's errors."""
        token = BUDGET.set(self.budget)
        try:
            yield self.budget
        except NETWORK_FAILURES as exc:
            raise classify(exc, self.budget, self.request.api.action, self.key) from None
        except httpcore.UnsupportedProtocol as exc:
            raise AomConfigurationError(f"{self.request.api.action}: {escape(str(exc), 200)}") from None
        finally:
            BUDGET.reset(token)

    def reader(self, response: httpcore.Response) -> BodyReader:
        ok = 200 <= response.status < 300
        make_sink = self.request.api.body_sink
        sink = None
        if ok and make_sink is not None:
            sink = make_sink({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers})
        if not ok:
            limit = ERROR_BODY_BYTES
        else:
            limit = self.settings.max_body_bytes if sink is None else self.settings.max_streamed_body_bytes
        return BodyReader(
            _header(response.headers, b"content-encoding"),
            limit,
            truncate=not ok,
            action=self.request.api.action,
            status=response.status,
            sink=sink,
        )

    def core_request(self) -> httpcore.Request:
        """The request for a single connection (a pool adds Content-Length itself; a connection does not)."""
        headers = list(self.arguments["headers"])
        content = self.arguments["content"]
        if content is not None:
            headers.append((b"Content-Length", str(len(content)).encode("ascii")))
        return httpcore.Request(
            self.arguments["method"],
            self.arguments["url"],
            headers=headers,
            content=content,
            extensions=self.arguments["extensions"],
        )


def _same_host(one: PoolKey, other: PoolKey) -> bool:
    return (one.scheme, one.host, one.port) == (other.scheme, other.host, other.port)


# --------------------------------------------------------------------------- sync


class SyncTransport:
    """Blocking requests for :class:`~airflow_provider_aom.hooks.aom.AomHook`: one pool per endpoint host."""

    MAX_CONNECTIONS = 8

    def __init__(self, settings: TransportSettings) -> None:
        _hide_subject_tokens()
        self.settings = settings
        self._pools: dict[PoolKey, httpcore.ConnectionPool] = {}

    def send(self, request: Request, deadline: float) -> ApiResponse:
        """Send ``request``; the whole exchange ends by ``deadline`` (``time.monotonic()``)."""
        exchange = Exchange.prepare(self.settings, request, deadline)
        if not exchange.fresh:
            return self._exchange(self._pool(exchange.key), exchange)
        # Never on a kept-alive connection the server may have just closed (package docstring).
        with httpcore.ConnectionPool(**_pool_kwargs(exchange.key, 1), network_backend=Backend()) as once:
            return self._exchange(once, exchange)

    def _pool(self, key: PoolKey) -> httpcore.ConnectionPool:
        pool = self._pools.get(key)
        if pool is None:
            kwargs = _pool_kwargs(key, self.MAX_CONNECTIONS)
            # A changed proxy or CA setting makes a new key: the old pool's sockets are not used again.
            for old in [k for k in self._pools if _same_host(k, key)]:
                self._pools.pop(old).close()
            pool = self._pools[key] = httpcore.ConnectionPool(**kwargs, network_backend=Backend())
        return pool

    @staticmethod
    def _exchange(pool: httpcore.ConnectionPool, exchange: Exchange) -> ApiResponse:
        with exchange.scope(), pool.stream(**exchange.arguments) as response:
            reader = exchange.reader(response)
            for chunk in response.iter_stream():
                reader.feed(chunk)
                if reader.full:
                    break
        return _response(response.status, response.headers, reader)

    def close(self) -> None:
        """Close every socket; a later request opens new ones."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


# --------------------------------------------------------------------------- async


class _HostConnections:
    """One event loop's connections to one endpoint host, reused last in, first out.

    httpcore's own pool re-examines every connection and every queued request on each request
    event, so its cost per request grows with the number of concurrent waits (a triggerer with
    thousands of them spent most of its CPU there). This stack takes and returns one connection in
    O(1). At most ``size`` requests run at once (``slots``), and a connection is either in use by
    one of them or idle here, so at most ``size`` sockets exist; the others wait for a slot, each
    within its own deadline. Through a proxy, httpcore's pool (which knows how to tunnel) is used
    instead: proxied endpoints are rare and few.
    """

    def __init__(self, key: PoolKey, size: int) -> None:
        self.key = key
        self.size = size
        self.slots = asyncio.Semaphore(size)
        #: Requests holding a slot now.
        self.busy = 0
        #: Closed (its loop's pools were closed, or its key replaced): idle and returned connections are closed.
        self.closed = False
        self.idle: collections.deque[httpcore.AsyncHTTP11Connection] = collections.deque()
        self.host, self.port = key.host, key.port
        self.origin = httpcore.Origin(key.scheme.encode(), key.host.encode("idna"), key.port)
        self.ssl_context = ssl_context(key.trust) if key.scheme == "https" else None
        self.backend = AsyncBackend()
        self.proxied = (
            httpcore.AsyncConnectionPool(**_pool_kwargs(key, size), network_backend=self.backend)
            if key.proxy is not None
            else None
        )

    async def take(self, connect_timeout: float | None, *, fresh: bool = False) -> httpcore.AsyncHTTP11Connection:
        """The most recently used idle connection still usable, or (always when ``fresh``) a new one."""
        if fresh and self.idle and self.busy + len(self.idle) > self.size:
            # In use (at most ``busy``, this request included) and idle would pass the cap with a new socket:
            # it replaces the least recently used idle one.
            await self.idle.popleft().aclose()
        while self.idle and not fresh:
            connection = self.idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        # An HTTP/1.1 connection on a stream connected here: httpcore's AsyncHTTPConnection around it adds
        # a lock to every request for what it does once (connecting), and under anyio each lock costs the
        # loop two extra turns, which at a few polls a second is most of a poll's CPU.
        stream = await self.backend.connect_tcp(self.host, self.port, timeout=connect_timeout)
        if self.ssl_context is not None:
            try:
                stream = await stream.start_tls(self.ssl_context, server_hostname=self.host, timeout=connect_timeout)
            except BaseException:
                await stream.aclose()
                raise
        return httpcore.AsyncHTTP11Connection(self.origin, stream, keepalive_expiry=KEEPALIVE_EXPIRY)

    async def give_back(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        """Keep a connection whose exchange ended cleanly; close any other, and the oldest idle one if expired."""
        if connection.is_idle() and not connection.is_closed() and not self.closed:
            self.idle.append(connection)
        else:
            await connection.aclose()
        # The bottom of the stack is used least: drop it once the server's keep-alive has ended.
        if len(self.idle) > 1 and self.idle[0].has_expired():
            await self.idle.popleft().aclose()

    async def aclose(self) -> None:
        """Close the idle sockets now; those in use are closed when their exchange ends."""
        self.closed = True
        while self.idle:
            await self.idle.pop().aclose()
        if self.proxied is not None and not self.busy:
            await self.proxied.aclose()


class _LoopPools:
    """One event loop's pools, and the transports (one per async hook) that hold a lease on them."""

    def __init__(self) -> None:
        self.hosts: dict[PoolKey, _HostConnections] = {}
        self.leases: weakref.WeakSet[AsyncTransport] = weakref.WeakSet()
        self.keeper: AsyncGenerator[None, None] | None = None

    async def aclose(self) -> None:
        hosts, self.hosts = list(self.hosts.values()), {}
        for host in hosts:
            await host.aclose()


# Keyed weakly by event loop; an entry leaves when its pools are closed (last lease, or the loop's end).
_LOOP_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = weakref.WeakKeyDictionary()


async def _until_the_loop_ends(
    loop: weakref.ref[asyncio.AbstractEventLoop], pools: _LoopPools
) -> AsyncGenerator[None, None]:
    """Started once per loop: ``asyncio.run`` ends by closing every async generator, and this one closes the pools."""
    try:
        yield
    finally:
        running = loop()
        if running is not None and _LOOP_POOLS.get(running) is pools:
            del _LOOP_POOLS[running]
        await pools.aclose()


async def _loop_pools() -> _LoopPools:
    loop = asyncio.get_running_loop()
    pools = _LOOP_POOLS.get(loop)
    if pools is None:
        pools = _LOOP_POOLS[loop] = _LoopPools()
        pools.keeper = _until_the_loop_ends(weakref.ref(loop), pools)
        # Runs to its yield at once: the loop now tracks it (loop.shutdown_asyncgens() will close it).
        await pools.keeper.__anext__()
    return pools


async def _read_into(reader: BodyReader, response: httpcore.Response) -> BodyReader:
    # Reading a long answer (decompressing, parsing into a sink) is CPU work on the loop: let other tasks
    # run every LOOP_TURN_SECONDS, also when the socket always has data ready (then no read suspends).
    turn_ends = time.monotonic() + LOOP_TURN_SECONDS
    async for chunk in response.aiter_stream():
        for _ in reader.steps(chunk):
            if time.monotonic() >= turn_ends:
                await asyncio.sleep(0)
                turn_ends = time.monotonic() + LOOP_TURN_SECONDS
        if reader.full:
            break
    return reader


class AsyncTransport:
    """Requests for :class:`~airflow_provider_aom.hooks.aom.AomAsyncHook` and triggers.

    Every hook on one event loop (a triggerer runs all its triggers on one) shares one pool per
    endpoint host, with at most :attr:`MAX_CONNECTIONS` sockets; requests beyond it wait for a
    free slot within their own deadline. Pools are per host, so a slow or hostile endpoint can
    hold only its own slots, never those of another connection. A transport that has sent on a
    loop holds a lease on its pools until :meth:`aclose` (or until it is garbage-collected).
    """

    MAX_CONNECTIONS = MAX_CONNECTIONS_PER_HOST

    def __init__(self, settings: TransportSettings) -> None:
        _hide_subject_tokens()
        self.settings = settings

    async def _host(self, key: PoolKey) -> _HostConnections:
        pools = await _loop_pools()
        if self not in pools.leases:
            pools.leases.add(self)
        host = pools.hosts.get(key)
        if host is None:
            host = pools.hosts[key] = _HostConnections(key, self.MAX_CONNECTIONS)
            # A changed proxy or CA setting makes a new key: the old host's sockets are not used again. (The
            # new host is in place first, so a task that runs while this one awaits finds it.)
            for old in [k for k in pools.hosts if k != key and _same_host(k, key)]:
                await pools.hosts.pop(old).aclose()
        return host

    async def send(self, request: Request, deadline: float) -> ApiResponse:
        """Send ``request``; the whole exchange, waiting for a free slot included, ends by ``deadline``."""
        exchange = Exchange.prepare(self.settings, request, deadline)
        host = await self._host(exchange.key)
        await self._acquire(host.slots, deadline, request, exchange.key)
        host.busy += 1
        try:
            with exchange.scope():
                if host.proxied is not None:
                    status, headers, reader = await self._via_proxy(host, exchange)
                else:
                    status, headers, reader = await self._direct(host, exchange)
        finally:
            host.busy -= 1
            host.slots.release()
            if host.closed and not host.busy and host.proxied is not None:
                await host.proxied.aclose()
        return _response(status, headers, reader)

    @staticmethod
    async def _direct(host: _HostConnections, exchange: Exchange) -> tuple[int, Any, BodyReader]:
        timeout = exchange.arguments["extensions"]["timeout"]["connect"]
        connection = await host.take(timeout, fresh=exchange.fresh)
        try:
            response = await connection.handle_async_request(exchange.core_request())
            try:
                reader = await _read_into(exchange.reader(response), response)
            finally:
                await response.aclose()
        finally:
            # An exchange that did not end cleanly (an error, a cancelled task) leaves the connection
            # not idle: it is closed here, never kept.
            await host.give_back(connection)
        return response.status, response.headers, reader

    @staticmethod
    async def _via_proxy(host: _HostConnections, exchange: Exchange) -> tuple[int, Any, BodyReader]:
        assert host.proxied is not None
        async with contextlib.AsyncExitStack() as stack:
            pool = host.proxied
            if exchange.fresh:
                # Never on a kept-alive connection the server may have just closed (package docstring).
                once = httpcore.AsyncConnectionPool(**_pool_kwargs(host.key, 1), network_backend=host.backend)
                pool = await stack.enter_async_context(once)
            response = await stack.enter_async_context(pool.stream(**exchange.arguments))
            reader = await _read_into(exchange.reader(response), response)
        return response.status, response.headers, reader

    async def _acquire(self, slots: asyncio.Semaphore, deadline: float, request: Request, key: PoolKey) -> None:
        if not slots.locked():
            await slots.acquire()  # free slot: no timer, no task
            return
        # Not asyncio.wait_for: before Python 3.12 it may swallow a cancellation that arrives as the slot is
        # granted. Here a cancelled wait gives back a slot it was granted, and a timed-out one cancels its acquire
        # (the semaphore passes a slot it had granted to the next waiter).
        acquiring = asyncio.ensure_future(slots.acquire())
        try:
            done, _ = await asyncio.wait((acquiring,), timeout=max(0.0, deadline - time.monotonic()))
        except BaseException:
            if acquiring.done() and not acquiring.cancelled() and acquiring.exception() is None:
                slots.release()
            else:
                acquiring.cancel()
            raise
        if done:
            acquiring.result()
            return
        acquiring.cancel()
        raise AomTransportError(
            f"{request.api.action}: all {self.MAX_CONNECTIONS} connections to {escape(key.label, 300)} stayed "
            "busy until the deadline (a slow endpoint, or more concurrent waits than sockets).",
            sent=False,
        )

    async def aclose(self) -> None:
        """Give up this transport's lease on the running loop's pools; the last lease to go closes them.

        Other transports on the loop keep working: their leases keep the pools open. Pools still
        open when the loop ends (``asyncio.run`` returning) are closed then.
        """
        pools = _LOOP_POOLS.get(asyncio.get_running_loop())
        if pools is None or self not in pools.leases:
            return
        pools.leases.discard(self)
        if not pools.leases and pools.keeper is not None:
            await pools.keeper.aclose()
