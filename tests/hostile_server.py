"""A loopback HTTP server whose answers a test scripts byte by byte: trickles, floods, bombs, garbage.

The emulator answers like AOM (and injects faults per request); this server answers like a
broken proxy or a hostile gateway, below the level of a well-formed response: a status line
sent one byte at a time, a body that never ends, a gzip bomb. Each connection is served by a
thread that reads one request head, hands an :class:`Exchange` to the test's ``respond``
function and closes the connection. Every loop stops when the client hangs up or the server
stops, so no test leaves a thread or a socket behind.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_aom.emulator.payloads import chunked, gzip_bomb, huge_pieces
from tests.loopback import LoopbackServer

__all__ = [
    "Exchange",
    "HostileServer",
    "endless_chunked",
    "gzip_bomb",
    "huge_pieces",
    "json_response",
    "replying",
    "response",
]


@dataclass
class Exchange:
    """One request, as the scripted answer sees it."""

    sock: socket.socket
    head: bytes
    stopping: threading.Event

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def trickle(self, data: bytes, pause: float) -> None:
        """Write ``data`` one byte every ``pause`` seconds until done, the client leaves or the server stops."""
        for index in range(len(data)):
            if self.stopping.wait(pause) or not self.send(data[index : index + 1]):
                return

    def flood(self, chunks: Iterator[bytes], then: None = None) -> None:
        """Write chunks until they run out, the client leaves or the server stops (see :meth:`flooded`)."""
        self.flooded(chunks)

    def flooded(self, chunks: Iterator[bytes]) -> int:
        """:meth:`flood`, returning the bytes written."""
        written = 0
        for chunk in chunks:
            if self.stopping.is_set() or not self.send(chunk):
                break
            written += len(chunk)
        return written


def response(status: int, body: bytes, headers: dict[str, str] | None = None, reason: str = "OK") -> bytes:
    """A complete HTTP/1.1 response with Content-Length."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {"Content-Type": "application/json"}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def replying(data: bytes) -> Callable[[Exchange], None]:
    """A ``respond`` function that writes ``data`` (a whole response) and is done."""

    def respond(exchange: Exchange) -> None:
        exchange.send(data)

    return respond


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> bytes:
    return response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def endless_chunked() -> Iterator[bytes]:
    """A 200 whose chunked body never ends."""
    yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    yield from chunked(huge_pieces(-1))


class HostileServer(LoopbackServer):
    """``with HostileServer(respond) as server: server.base_url``; ``respond(exchange)`` writes the answer."""

    def __init__(self, respond: Callable[[Exchange], None], tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.respond = respond
        #: The head of every request read, in order.
        self.heads: list[bytes] = []

    @property
    def base_url(self) -> str:
        return self.url

    def __enter__(self) -> HostileServer:
        super().__enter__()
        return self

    def serve(self, sock: socket.socket, index: int) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        self.heads.append(head.split(b"\r\n\r\n", 1)[0])
        self.respond(Exchange(sock, head, self._stopping))
