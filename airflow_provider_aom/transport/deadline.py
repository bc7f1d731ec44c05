"""The deadline of one exchange, enforced on every socket operation, and whether a byte of it was sent.

An exchange runs under a :class:`CallBudget` (a context variable, so the sync thread and each
asyncio task see their own). The network backends here wrap httpcore's and clamp *each*
operation (DNS + connect, TLS handshake, every write and every read) to the time left, so a
server that trickles one byte a second, or a proxy that never finishes a chunked body, ends at
the deadline instead of never.
"""

from __future__ import annotations

import asyncio
import contextvars
import select
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore


@dataclass
class CallBudget:
    """The deadline of one HTTP request and what happened on the wire so far."""

    #: ``time.monotonic()`` value after which no socket operation of this request may run.
    deadline: float
    #: A byte of this request (not of a proxy's CONNECT) was handed to the socket.
    sent: bool = False
    #: Response bytes read since the request was sent.
    received: int = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


BUDGET: contextvars.ContextVar[CallBudget | None] = contextvars.ContextVar("aom_call_budget", default=None)


class DeadlineExpired(Exception):
    """Raised by a socket operation that would start after the request's deadline."""


def clamp(timeout: float | None) -> float | None:
    """The time a socket operation may take: its own timeout, but never past the current deadline."""
    budget = BUDGET.get()
    if budget is None:
        return timeout
    remaining = budget.remaining()
    if remaining <= 0:
        raise DeadlineExpired()
    return remaining if timeout is None else min(timeout, remaining)


def _on_write(buffer: bytes) -> None:
    budget = BUDGET.get()
    # A tunnelling proxy first receives CONNECT: that is not our request reaching the server.
    if budget is not None and buffer and not budget.sent and not buffer.startswith(b"CONNECT "):
        budget.sent, budget.received = True, 0
    # Conservative: marked before the write, since a failed write may still have delivered bytes.


def _on_read(data: bytes) -> None:
    budget = BUDGET.get()
    if budget is not None:
        budget.received += len(data)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every operation is bounded by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, clamp(timeout))
        _on_read(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _on_write(buffer)
        self._inner.write(buffer, clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class Backend(httpcore.NetworkBackend):
    """httpcore's blocking backend, every operation clamped to the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, clamp(timeout), local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    """The async twin of :class:`_Stream`."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, clamp(timeout))
        _on_read(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _on_write(buffer)
        await self._inner.write(buffer, clamp(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked each time a connection is taken or given back. anyio answers it by building a dict of
            # every socket attribute (about 70 µs, 4 % of a triggerer's CPU per poll); the socket is fixed.
            if self._socket is None:
                self._socket = self._inner.get_extra_info("socket")
            return is_readable(self._socket)
        return self._inner.get_extra_info(info)


def is_readable(sock: socket.socket | None) -> bool:
    """True when an idle connection's socket has something to read: the server closed it (or sent junk)."""
    if sock is None or sock.fileno() == -1:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class AsyncBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, every operation clamped to the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.connect_tcp(host, port, clamp(timeout), local_address, socket_options))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
