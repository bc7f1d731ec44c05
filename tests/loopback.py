"""Loopback servers for the transport's connection rules: keep-alive, a stale-connection gate, a CONNECT proxy.

* :class:`KeepAliveServer` answers HTTP/1.1 and keeps each connection open, like a gateway; it
  records every request it read (with the connection it came on) and how many connections are open.
* :class:`StaleGate` relays to such a server (or the emulator) and acts like a server whose idle
  keep-alive connection closed just as the client sent a request on it: such a request is never
  passed on, the connection is closed under it.
* :class:`ConnectProxy` is an HTTP CONNECT proxy, optionally itself behind TLS (an ``https://`` proxy).

Everything listens on 127.0.0.1 only, and ``stop()`` (or leaving the ``with`` block) closes every
socket and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Seen:
    """A request a server read: which of its connections (0, 1, ...) carried it, and its request line."""

    connection: int
    method: str
    target: str


class LoopbackServer:
    """A listener on 127.0.0.1 with one thread per accepted connection, all stopped by :meth:`stop`."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        self.open = 0
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=10)
        for _ in range(2):  # a connection's thread may have started a helper thread of its own
            for thread in list(self._threads):
                thread.join(timeout=10)
        assert not any(t.is_alive() for t in self._threads), "a loopback server thread did not stop"

    def wait_open(self, count: int, timeout: float = 5.0) -> bool:
        """True once exactly ``count`` accepted connections are still open (the client closed the others)."""
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if self.open == count:
                return True
            time.sleep(0.01)
        return self.open == count

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                index, self.accepted, self.open = self.accepted, self.accepted + 1, self.open + 1
            thread = threading.Thread(target=self._run, args=(client, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, client: socket.socket, index: int) -> None:
        self.track(client)
        sock: socket.socket = client
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(client, server_side=True)
            sock.settimeout(10)
            self.serve(sock, index)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(OSError):
                client.close()
            with self._lock:
                self._sockets.discard(client)
                self.open -= 1

    def serve(self, sock: socket.socket, index: int) -> None:
        raise NotImplementedError


def _client_gone(sock: socket.socket) -> bool:
    """The client closed its side (a plain socket readable with nothing to read)."""
    if isinstance(sock, ssl.SSLSocket) or not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def read_request(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One whole request (head and Content-Length body) from ``sock``; None when the client closed first."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < end + length:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    request = bytes(buffer[: end + length])
    del buffer[: end + length]
    return request


def request_line(request: bytes) -> tuple[str, str]:
    method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return method, target


def keep_alive_answer(status: int = 200, payload: Any = None) -> bytes:
    body = json.dumps({"ok": True} if payload is None else payload).encode()
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


class KeepAliveServer(LoopbackServer):
    """Answers every request with ``answer(seen)`` (default: 200 ``{"ok": true}``) and keeps the connection.

    A request whose target contains ``/hold`` is answered only once :attr:`release` is set (or the
    server stops); one with ``/half`` gets half of its answer at once and the rest then: a test can
    cancel it while it holds a connection, before or during the answer.
    """

    def __init__(
        self, answer: Callable[[Seen], bytes] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(tls)
        self.answer = answer or (lambda seen: keep_alive_answer())
        self.seen: list[Seen] = []
        self.release = threading.Event()

    def serve(self, sock: socket.socket, index: int) -> None:
        buffer = bytearray()
        while not self._stopping.is_set():
            request = read_request(sock, buffer)
            if request is None:
                return
            seen = Seen(index, *request_line(request))
            self.seen.append(seen)
            answer = self.answer(seen)
            if "/half" in seen.target:
                sock.sendall(answer[: len(answer) // 2])
                answer = answer[len(answer) // 2 :]
            if "/hold" in seen.target or "/half" in seen.target:
                while not self.release.wait(0.02):
                    if self._stopping.is_set() or _client_gone(sock):
                        return
            sock.sendall(answer)

    def requests(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]


def _relay(one: socket.socket, other: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the server stops."""
    sockets = [one, other]
    while not stopping.is_set():
        ready: list[socket.socket] = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select(sockets, [], [], 0.1)
        for source in ready:
            data = source.recv(65536)
            if not data:
                return
            (other if source is one else one).sendall(data)


def _posts(seen: Seen) -> bool:
    return seen.method == "POST"


class StaleGate(LoopbackServer):
    """A relay to ``upstream_port`` on 127.0.0.1 that drops a reused connection under a request ``drop`` picks.

    The first request on each client connection is passed on. A later one for which ``drop(seen)``
    is true is read and never passed on; the gate then closes the connection, as a server does when
    its keep-alive timeout fires just as the request is on the wire. What it dropped is in :attr:`dropped`.
    """

    def __init__(self, upstream_port: int, drop: Callable[[Seen], bool] = _posts) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.drop = drop
        self.dropped: list[Seen] = []

    def serve(self, sock: socket.socket, index: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        self.track(upstream)
        pump = threading.Thread(target=self._answers, args=(upstream, sock), daemon=True)
        self._threads.append(pump)
        pump.start()
        buffer = bytearray()
        try:
            for count in range(1_000_000):
                request = read_request(sock, buffer)
                if request is None:
                    return
                seen = Seen(index, *request_line(request))
                if count and self.drop(seen):
                    self.dropped.append(seen)
                    return
                upstream.sendall(request)
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self._stopping.is_set():
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)


class ConnectProxy(LoopbackServer):
    """An HTTP proxy to 127.0.0.1 only (TLS to the proxy itself when ``tls`` is given).

    ``CONNECT`` opens a tunnel (what an ``https://`` target gets); a request with an absolute
    ``http://`` target is forwarded, and so is every later one on that client connection, over
    one upstream connection of its own (what a plain ``http://`` target gets).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []

    def serve(self, sock: socket.socket, index: int) -> None:
        buffer = bytearray()
        request = read_request(sock, buffer)
        if request is None:
            return
        method, target = request_line(request)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or 80)
        if host != "127.0.0.1":
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.track(upstream)
        try:
            if method == "CONNECT":
                self.tunnels.append(target)
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                self.forwarded.append(target)
                upstream.sendall(request)
            if buffer:
                upstream.sendall(bytes(buffer))
            _relay(sock, upstream, self._stopping)
        finally:
            upstream.close()
