"""Answer bodies: read as a stream, decoded here, counted after decompression, capped.

gzip and deflate are decoded with bounded output per step, so a gzip bomb never expands beyond
the cap plus one step: past the cap the read stops at once with
:class:`~airflow_provider_aom.exceptions.AomResponseTooLargeError`. An error answer keeps only
its first bytes (the caller's limit) and the rest is not read.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomInvalidResponseError, AomResponseTooLargeError
from airflow_provider_aom.wire import BodySink

#: The most one decompression step may produce (and a sink's usual piece).
DECODE_STEP = 64 * 1024


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
                out = decoder.decompress(data, DECODE_STEP)
                while True:
                    yield out
                    if not decoder.unconsumed_tail:
                        break
                    out = decoder.decompress(decoder.unconsumed_tail, DECODE_STEP)
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
            if self.sink is not None and len(self.body) >= DECODE_STEP:
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
