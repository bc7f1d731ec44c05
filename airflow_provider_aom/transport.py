"""HTTP for both hooks, written once: total deadlines, byte caps, TLS and proxy rules, failure classes.

Built on ``httpcore`` (the engine under ``httpx``, in Airflow's dependency tree on 2.11 and 3.x)
because it lets the provider own what a hostile or broken server can abuse:

* **Time.** Every request runs under a :class:`CallBudget` with an absolute deadline. The
  network backends below clamp *each* socket operation (DNS + connect, TLS handshake, every
  write and every read) to the time left, so a server that trickles one byte a second, or a
  proxy that never finishes a chunked body, ends at the deadline instead of never.
* **Size.** Bodies are read as a stream and decoded here (gzip/deflate with bounded output per
  step), counting bytes *after* decompression: past the cap the read stops at once with
  :class:`~airflow_provider_aom.exceptions.AomResponseTooLargeError`; a gzip bomb never expands
  beyond the cap plus one step. Error answers keep only their first ``ERROR_BODY_BYTES``; the rest is not read.
* **Whether it was sent.** The budget records whether a byte of *this* request was written.
  A failure before that (refused, DNS, certificate, an invalid header value, a deadline spent
  waiting for a free connection) provably started nothing; the submit may then be re-sent.
* **TLS and proxies.** ``extra.verify`` and ``extra.proxies`` win over the environment; only
  when they are absent do ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE`` and
  ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` apply (docs/connection.md).

:class:`SyncTransport` serves :class:`~airflow_provider_aom.hooks.aom.AomHook`;
:class:`AsyncTransport` serves :class:`~airflow_provider_aom.hooks.aom.AomAsyncHook`. They share
every rule above and differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import os
import re
import select
import socket
import ssl
import time
import urllib.request
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpcore

from airflow_provider_aom import __version__
from airflow_provider_aom.api import ApiResponse, BodySink
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomConfigurationError,
    AomInvalidResponseError,
    AomResponseTooLargeError,
    AomSlowResponseError,
    AomTransportError,
)
from airflow_provider_aom.vocabulary import ERROR_BODY_BYTES, MAX_LIST_BYTES, MAX_RESPONSE_BYTES, header_value_problem

if TYPE_CHECKING:
    from airflow_provider_aom.protocol import HttpRequest

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
USER_AGENT = f"airflow-provider-aom/{__version__}".encode()
#: What the body decoder below understands; anything else in Content-Encoding is refused.
ACCEPT_ENCODING = b"gzip, deflate"
#: Environment variables naming a CA bundle, honoured (in this order) only when ``extra.verify`` is absent.
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")

_DECODE_STEP = 64 * 1024
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


# --------------------------------------------------------------------------- the budget of one request


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


_BUDGET: contextvars.ContextVar[CallBudget | None] = contextvars.ContextVar("aom_call_budget", default=None)


class _DeadlineExpired(Exception):
    """Raised by a socket operation that would start after the request's deadline."""


def _clamp(timeout: float | None) -> float | None:
    """The time a socket operation may take: its own timeout, but never past the current deadline."""
    budget = _BUDGET.get()
    if budget is None:
        return timeout
    remaining = budget.remaining()
    if remaining <= 0:
        raise _DeadlineExpired()
    return remaining if timeout is None else min(timeout, remaining)


def _on_write(buffer: bytes) -> None:
    budget = _BUDGET.get()
    # A tunnelling proxy first receives CONNECT: that is not our request reaching the server.
    if budget is not None and buffer and not budget.sent and not buffer.startswith(b"CONNECT "):
        budget.sent, budget.received = True, 0
    # Conservative: marked before the write, since a failed write may still have delivered bytes.


def _on_read(data: bytes) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.received += len(data)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every operation is bounded by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _clamp(timeout))
        _on_read(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _on_write(buffer)
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
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
        return _Stream(self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    """The async twin of :class:`_Stream`."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, _clamp(timeout))
        _on_read(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _on_write(buffer)
        await self._inner.write(buffer, _clamp(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked each time a connection is taken or given back. anyio answers it by building a dict of
            # every socket attribute (about 70 µs, 4 % of a triggerer's CPU per poll); the socket is fixed.
            if self._socket is None:
                self._socket = self._inner.get_extra_info("socket")
            return _is_readable(self._socket)
        return self._inner.get_extra_info(info)


def _is_readable(sock: socket.socket | None) -> bool:
    """True when an idle connection's socket has something to read: the server closed it (or sent junk)."""
    if sock is None or sock.fileno() == -1:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class _AsyncBackend(httpcore.AsyncNetworkBackend):
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
        return _AsyncStream(await self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- bodies


class BodyReader:
    """Collects a response body from raw chunks: decoded, counted after decoding, capped.

    ``truncate=False`` (2xx answers): past ``limit`` raise :class:`AomResponseTooLargeError`.
    ``truncate=True`` (error answers): keep the first ``limit`` bytes and report ``full``.
    With a ``sink``, decoded bytes go to it (at most one 64 KiB step waits in ``body``), still counted against
    ``limit``.
    """

    def __init__(
        self,
        content_encoding: str,
        limit: int,
        *,
        truncate: bool,
        action: str,
        status: int,
        sink: BodySink | None = None,
    ) -> None:
        self.limit = limit
        self.truncate = truncate
        self.action = action
        self.status = status
        self.body = bytearray()
        self.sink = sink
        self.count = 0
        #: ``time.time()`` when the answer's headers had arrived (a long body is read long after its Date).
        self.received_at = time.time()
        self.full = False
        self._decoders: list[Any] = []
        # Encodings are listed in the order applied: undo them from the last one.
        for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
            if coding in ("gzip", "x-gzip"):
                self._decoders.append(zlib.decompressobj(16 + zlib.MAX_WBITS))
            elif coding == "deflate":
                self._decoders.append(_Deflate())
            elif coding != "identity":
                raise AomInvalidResponseError(
                    f"{action}: the answer uses Content-Encoding {escape(coding, 40)}, which was not asked for",
                    status=status,
                    request_id=None,
                )

    def feed(self, chunk: bytes) -> None:
        """Add raw bytes; raises once the decoded body passes the cap."""
        for _ in self.steps(chunk):
            pass

    def steps(self, chunk: bytes) -> Iterator[None]:
        """:meth:`feed` one decoded piece (at most 64 KiB after decompression) at a time, yielding after each."""
        if self.full or not chunk:
            return
        # A chain of generators: each decoded step is appended (and counted) before the next is made.
        pieces: Iterable[bytes] = (chunk,)
        for decoder in self._decoders:
            pieces = self._inflate(decoder, pieces)
        for piece in pieces:
            self._append(piece)
            if self.full:
                return
            yield

    def finish(self) -> Any:
        """The sink's reading of the whole body (None without a sink)."""
        if self.sink is None:
            return None
        self._hand_over()
        return self.sink.close()

    def _hand_over(self) -> None:
        assert self.sink is not None
        if self.body:
            self.sink.feed(bytes(self.body))
            self.body.clear()

    def _inflate(self, decoder: Any, pieces: Iterable[bytes]) -> Iterator[bytes]:
        # max_length bounds each step: a bomb is expanded one step at a time and stopped at the cap.
        try:
            for data in pieces:
                out = decoder.decompress(data, _DECODE_STEP)
                while True:
                    yield out
                    if not decoder.unconsumed_tail:
                        break
                    out = decoder.decompress(decoder.unconsumed_tail, _DECODE_STEP)
        except zlib.error:
            raise AomInvalidResponseError(
                f"{self.action}: the answer's compressed body is corrupt", status=self.status, request_id=None
            ) from None

    def _append(self, data: bytes) -> None:
        room = self.limit - self.count
        if len(data) <= room:
            self.count += len(data)
            self.body += data
            # A sink gets pieces of at least one decode step: servers and proxies may send a body in small
            # chunks, and each hand-over costs the sink a fixed amount of work.
            if self.sink is not None and len(self.body) >= _DECODE_STEP:
                self._hand_over()
            return
        if self.truncate:
            self.body += data[:room]
            self.count = self.limit
            self.full = True
            return
        raise AomResponseTooLargeError(
            f"{self.action}: the answer is larger than {self.limit} bytes (counted after decompression); "
            "nothing more was read",
            status=self.status,
            request_id=None,
        )


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped per the RFC, raw deflate as servers often send it."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail if self._inner is not None else b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            data, self._first = self._first, b""
            header = (data[0] << 8) | data[1]
            zlib_wrapped = data[0] & 0x0F == 8 and header % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data, max_length))


# --------------------------------------------------------------------------- settings


def _proxy_url(value: str, source: str) -> str:
    url = value if "://" in value else "http://" + value
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise AomConfigurationError(
            f"{source} is a {escape(scheme, 20)} proxy; only http:// and https:// proxies are supported."
        )
    return url


#: The environment variables that decide a request's proxy (urllib reads either case; REQUEST_METHOD
#: makes it ignore HTTP_PROXY, as under CGI). Their values key the cache of :func:`_environment_proxy`.
_PROXY_VARIABLES = (
    *(case(f"{name}_proxy") for name in ("http", "https", "all", "no") for case in (str.lower, str.upper)),
    "REQUEST_METHOD",
)


@functools.lru_cache(maxsize=256)
def _environment_proxy(scheme: str, host: str, _values: tuple[str | None, ...]) -> str | None:
    # urllib scans the whole environment on every call (a tenth of a triggerer's CPU per poll), so the
    # answer is kept for as long as the variables it depends on keep their values.
    env = urllib.request.getproxies_environment()
    if not env or urllib.request.proxy_bypass(host):
        return None
    chosen = env.get(scheme) or env.get("all")
    return _proxy_url(chosen, f"The {scheme.upper()}_PROXY environment variable") if chosen else None


def proxy_for(scheme: str, host: str, proxies: Mapping[str, str] | None) -> str | None:
    """The proxy for a request: ``extra.proxies`` when set (``{}`` means none), else the environment."""
    if proxies is not None:
        chosen = proxies.get(scheme) or proxies.get(f"{scheme}://") or proxies.get("all")
        return _proxy_url(chosen, "extra.proxies") if chosen else None
    return _environment_proxy(scheme, host, tuple(map(os.environ.get, _PROXY_VARIABLES)))


@functools.lru_cache(maxsize=32)
def ssl_context(verify: bool | str | None) -> ssl.SSLContext:
    """The TLS context for ``extra.verify``: a CA bundle path, ``False`` (no check), ``True``/absent (default).

    When ``extra.verify`` is absent, a CA bundle named by ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``
    or ``SSL_CERT_FILE`` is used (corporate images set these); otherwise certifi's bundle, as
    ``requests`` and ``httpx`` do.
    """
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    if verify is None:
        for name in CA_BUNDLE_ENV:
            path = os.environ.get(name)
            if path:
                return ssl.create_default_context(cafile=path) if os.path.isfile(path) else _bad_env_bundle(name)
    return httpcore.default_ssl_context()


def _bad_env_bundle(name: str) -> ssl.SSLContext:
    raise AomConfigurationError(
        f"The environment variable {name} names a CA bundle that does not exist; fix it, or set extra.verify "
        "in the connection (it takes precedence over the environment)."
    )


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes and how: the key of a connection pool."""

    scheme: str
    host: str
    port: int
    proxy: str | None
    verify: bool | str | None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TransportSettings:
    """The connection's transport extras (``verify``, ``proxies``, ``timeout``) and the body cap."""

    verify: bool | str | None = None
    proxies: Mapping[str, str] | None = None
    timeout: float = 30.0
    max_body_bytes: int = MAX_RESPONSE_BYTES
    #: The cap of a body read into the request's sink (:attr:`~airflow_provider_aom.api.ApiRequest.body_sink`).
    max_streamed_body_bytes: int = MAX_LIST_BYTES

    def endpoint(self, url: str) -> tuple[Endpoint, bytes]:
        """The pool key of ``url`` and its request target (path and query, exactly as built)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Endpoint(scheme, host, port, proxy_for(scheme, host, self.proxies), self.verify), target.encode("ascii")


def _pool_kwargs(endpoint: Endpoint, max_connections: int) -> dict[str, Any]:
    proxy = None
    if endpoint.proxy is not None:
        parts = urlsplit(endpoint.proxy)
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        proxy = httpcore.Proxy(bare, auth=auth)
    return {
        "ssl_context": ssl_context(endpoint.verify) if endpoint.scheme == "https" else None,
        "proxy": proxy,
        "max_connections": max_connections,
        "max_keepalive_connections": max_connections,
        "keepalive_expiry": KEEPALIVE_EXPIRY,
    }


def wire_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """The request's headers as bytes, refusing values no server should receive.

    A control character (a token pasted with its newline) or a character outside latin-1 would
    either split the header or fail mid-send; it is a configuration error naming the header,
    never showing the value.
    """
    wire = []
    for name, value in headers.items():
        problem = header_value_problem(value)
        if problem is not None:
            raise AomConfigurationError(
                f"The {name} header would contain {problem}: fix the connection field it comes from."
            )
        wire.append((name.encode("ascii"), value.encode("latin-1")))
    wire.append((b"Accept-Encoding", ACCEPT_ENCODING))
    wire.append((b"User-Agent", USER_AGENT))
    return wire


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


# --------------------------------------------------------------------------- failures


def classify(exc: BaseException, budget: CallBudget, request: HttpRequest, endpoint: Endpoint) -> AomTransportError:
    """The provider's error for a failure with no complete answer: what happened, and could it have been sent?"""
    action = request.api.action
    where = escape(endpoint.label, 300)
    spent = budget.remaining() <= 0.01
    if isinstance(exc, (_DeadlineExpired, httpcore.TimeoutException)) and (spent or isinstance(exc, _DeadlineExpired)):
        if budget.sent and budget.received:
            return AomSlowResponseError(
                f"{action}: the answer from {where} did not complete before the deadline (a server or proxy "
                "trickling it, or a body that never ends); the partial answer was dropped.",
                sent=True,
            )
        if budget.sent:
            return AomTransportError(f"{action}: no answer from {where} within the timeout.", sent=True)
        return AomTransportError(
            f"{action}: could not connect to {where} and send the request before the deadline.", sent=False
        )
    reason = escape(str(exc) or type(exc).__name__, 200)
    if isinstance(exc, httpcore.ProxyError):
        return AomTransportError(f"{action}: the proxy refused the tunnel to {where} ({reason}).", sent=False)
    if isinstance(exc, httpcore.LocalProtocolError) or not budget.sent:
        hint = (
            " Check extra.verify (a CA bundle path, or false) and the server's certificate."
            if "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper()
            else " Check the connection's host/region and the network."
        )
        return AomTransportError(f"{action}: could not connect to {where} ({reason}).{hint}", sent=False)
    return AomTransportError(
        f"{action}: the connection to {where} broke before a complete answer ({reason}).", sent=True
    )


def _response(status: int, headers: list[tuple[bytes, bytes]], reader: BodyReader) -> ApiResponse:
    return ApiResponse.build(
        status,
        reader.body,
        {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
        reader.finish(),
        received_at=reader.received_at,
    )


def _reader(response: httpcore.Response, settings: TransportSettings, request: HttpRequest) -> BodyReader:
    ok = 200 <= response.status < 300
    sink = None
    if ok and request.api.body_sink is not None:
        sink = request.api.body_sink({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers})
    if not ok:
        limit = ERROR_BODY_BYTES
    else:
        limit = settings.max_body_bytes if sink is None else settings.max_streamed_body_bytes
    return BodyReader(
        _header(response.headers, b"content-encoding"),
        limit,
        truncate=not ok,
        action=request.api.action,
        status=response.status,
        sink=sink,
    )


def _extensions(settings: TransportSettings, deadline: float) -> dict[str, Any]:
    # Each operation is also clamped to the deadline by the backend; these are the per-operation ceilings.
    timeout = max(0.0, min(settings.timeout, deadline - time.monotonic()))
    return {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}


def _content(request: HttpRequest) -> bytes | None:
    # A POST always carries Content-Length (0 when empty): gateways may answer 411 without one.
    return None if request.method in ("GET", "HEAD") else request.body


@dataclass
class Exchange:
    """One request as the pools take it, and the rules it runs under (what both drivers share)."""

    request: HttpRequest
    endpoint: Endpoint
    settings: TransportSettings
    budget: CallBudget
    arguments: dict[str, Any]

    @classmethod
    def prepare(cls, settings: TransportSettings, request: HttpRequest, deadline: float) -> Exchange:
        endpoint, target = settings.endpoint(request.url)
        arguments = {
            "method": request.method,
            "url": httpcore.URL(scheme=endpoint.scheme, host=endpoint.host, port=endpoint.port, target=target),
            "headers": wire_headers(request.headers),
            "content": _content(request),
            "extensions": _extensions(settings, deadline),
        }
        return cls(request, endpoint, settings, CallBudget(deadline), arguments)

    @contextlib.contextmanager
    def scope(self) -> Iterator[CallBudget]:
        """Run the exchange under its budget; map what went wrong to the provider's errors."""
        token = _BUDGET.set(self.budget)
        try:
            yield self.budget
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError, _DeadlineExpired) as exc:
            raise classify(exc, self.budget, self.request, self.endpoint) from None
        except httpcore.UnsupportedProtocol as exc:
            raise AomConfigurationError(f"{self.request.api.action}: {escape(str(exc), 200)}") from None
        finally:
            _BUDGET.reset(token)

    def reader(self, response: httpcore.Response) -> BodyReader:
        return _reader(response, self.settings, self.request)

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


# --------------------------------------------------------------------------- drivers


class SyncTransport:
    """Blocking requests for :class:`~airflow_provider_aom.hooks.aom.AomHook`: one pool per endpoint host."""

    MAX_CONNECTIONS = 8

    def __init__(self, settings: TransportSettings) -> None:
        _hide_subject_tokens()
        self.settings = settings
        self._pools: dict[Endpoint, httpcore.ConnectionPool] = {}

    def send(self, request: HttpRequest, deadline: float) -> ApiResponse:
        """Send ``request``; the whole exchange ends by ``deadline`` (``time.monotonic()``)."""
        exchange = Exchange.prepare(self.settings, request, deadline)
        pool = self._pools.get(exchange.endpoint)
        if pool is None:
            pool = self._pools[exchange.endpoint] = httpcore.ConnectionPool(
                **_pool_kwargs(exchange.endpoint, self.MAX_CONNECTIONS), network_backend=_Backend()
            )
        with exchange.scope(), pool.stream(**exchange.arguments) as response:
            reader = exchange.reader(response)
            for chunk in response.iter_stream():
                reader.feed(chunk)
                if reader.full:
                    break
        return _response(response.status, response.headers, reader)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class _HostConnections:
    """One event loop's connections to one endpoint host, reused last in, first out.

    httpcore's own pool re-examines every connection and every queued request on each request
    event, so its cost per request grows with the number of concurrent waits (a triggerer with
    thousands of them spent most of its CPU there). This stack takes and returns one connection in
    O(1). At most ``size`` requests run at once (``slots``), so at most ``size`` sockets exist;
    the others wait for a slot, each within its own deadline. Through a proxy, httpcore's pool
    (which knows how to tunnel) is used instead: proxied endpoints are rare and few.
    """

    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self.slots = asyncio.Semaphore(size)
        self.idle: collections.deque[httpcore.AsyncHTTP11Connection] = collections.deque()
        self.host, self.port = endpoint.host, endpoint.port
        self.origin = httpcore.Origin(endpoint.scheme.encode(), endpoint.host.encode("idna"), endpoint.port)
        self.ssl_context = ssl_context(endpoint.verify) if endpoint.scheme == "https" else None
        self.backend = _AsyncBackend()
        self.proxied = (
            httpcore.AsyncConnectionPool(**_pool_kwargs(endpoint, size), network_backend=self.backend)
            if endpoint.proxy is not None
            else None
        )

    async def take(self, connect_timeout: float | None) -> httpcore.AsyncHTTP11Connection:
        """The most recently used idle connection still usable, or a new one, connected here."""
        while self.idle:
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
        if connection.is_idle() and not connection.is_closed():
            self.idle.append(connection)
        else:
            await connection.aclose()
        # The bottom of the stack is used least: drop it once the server's keep-alive has ended.
        if len(self.idle) > 1 and self.idle[0].has_expired():
            await self.idle.popleft().aclose()


@dataclass
class _LoopPools:
    hosts: dict[Endpoint, _HostConnections] = field(default_factory=dict)


# Keyed weakly by event loop: a loop that is gone (``asyncio.run`` in tests) takes its pools with it.
_LOOP_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = weakref.WeakKeyDictionary()


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
    hold only its own slots, never those of another connection.
    """

    MAX_CONNECTIONS = MAX_CONNECTIONS_PER_HOST

    def __init__(self, settings: TransportSettings) -> None:
        _hide_subject_tokens()
        self.settings = settings

    def _host(self, endpoint: Endpoint) -> _HostConnections:
        loop = asyncio.get_running_loop()
        shared = _LOOP_POOLS.get(loop)
        if shared is None:
            shared = _LOOP_POOLS[loop] = _LoopPools()
        host = shared.hosts.get(endpoint)
        if host is None:
            host = shared.hosts[endpoint] = _HostConnections(endpoint, self.MAX_CONNECTIONS)
        return host

    async def send(self, request: HttpRequest, deadline: float) -> ApiResponse:
        """Send ``request``; the whole exchange, waiting for a free slot included, ends by ``deadline``."""
        exchange = Exchange.prepare(self.settings, request, deadline)
        host = self._host(exchange.endpoint)
        await self._acquire(host.slots, deadline, request, exchange.endpoint)
        try:
            with exchange.scope():
                if host.proxied is not None:
                    async with host.proxied.stream(**exchange.arguments) as response:
                        reader = await _read_into(exchange.reader(response), response)
                else:
                    connection = await host.take(exchange.arguments["extensions"]["timeout"]["connect"])
                    try:
                        response = await connection.handle_async_request(exchange.core_request())
                        try:
                            reader = await _read_into(exchange.reader(response), response)
                        finally:
                            await response.aclose()
                    finally:
                        await host.give_back(connection)
        finally:
            host.slots.release()
        return _response(response.status, response.headers, reader)

    async def _acquire(
        self, slots: asyncio.Semaphore, deadline: float, request: HttpRequest, endpoint: Endpoint
    ) -> None:
        if not slots.locked():
            await slots.acquire()  # free slot: no timer, no task
            return
        try:
            await asyncio.wait_for(slots.acquire(), max(0.0, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            raise AomTransportError(
                f"{request.api.action}: all {self.MAX_CONNECTIONS} connections to {escape(endpoint.label, 300)} stayed "
                "busy until the deadline (a slow endpoint, or more concurrent waits than sockets).",
                sent=False,
            ) from None
