"""Bodies as the transport reads them (transport/bodies.py): caps counted after decompression, decoding, sinks."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from airflow_provider_aom.exceptions import AomInvalidResponseError, AomResponseTooLargeError
from airflow_provider_aom.transport import BodyReader

MIB = 1024 * 1024


def reader(encoding: str = "", limit: int = MIB, truncate: bool = False) -> BodyReader:
    return BodyReader(encoding, limit, truncate=truncate, action="Get execution", status=200)


def test_plain_body_under_the_cap_is_kept_whole() -> None:
    body = reader()
    for chunk in (b'{"status":', b' "success"}'):
        body.feed(chunk)
    assert bytes(body.body) == b'{"status": "success"}'


def test_body_over_the_cap_raises_at_once_and_keeps_no_more() -> None:
    body = reader(limit=1000)
    body.feed(b"x" * 600)
    with pytest.raises(AomResponseTooLargeError, match="larger than 1000 bytes"):
        body.feed(b"x" * 600)
    assert len(body.body) == 600


def test_error_body_is_truncated_not_refused() -> None:
    body = reader(limit=100, truncate=True)
    body.feed(b"e" * 80)
    body.feed(b"e" * 80)
    assert len(body.body) == 100 and body.full
    body.feed(b"more")  # ignored once full
    assert len(body.body) == 100


def test_gzip_is_decoded_and_counted_after_decompression() -> None:
    payload = b'{"status": "success"}' * 100
    body = reader("gzip")
    body.feed(gzip.compress(payload))
    assert bytes(body.body) == payload
    small_cap = reader("gzip", limit=len(payload) - 1)
    with pytest.raises(AomResponseTooLargeError):
        small_cap.feed(gzip.compress(payload))


def test_gzip_bomb_never_expands_past_the_cap() -> None:
    """64 MiB of spaces gzip to ~64 KB; with a 1 MiB cap the decoder stops after about one step more."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(b" " * MIB) for _ in range(64)) + compressor.flush()
    assert len(bomb) < MIB // 4
    tracemalloc.start()
    try:
        body = reader("gzip", limit=MIB)
        with pytest.raises(AomResponseTooLargeError):
            body.feed(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, peak


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib-wrapped", "raw"])
def test_deflate_both_forms(wbits: int) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    data = compressor.compress(b'{"a": 1}') + compressor.flush()
    body = reader("deflate")
    for byte in data:  # one byte at a time: the zlib header check must wait for two bytes
        body.feed(bytes([byte]))
    assert bytes(body.body) == b'{"a": 1}'


def test_unknown_or_corrupt_encoding_is_an_invalid_response() -> None:
    with pytest.raises(AomInvalidResponseError, match="Content-Encoding br"):
        reader("br")
    body = reader("gzip")
    with pytest.raises(AomInvalidResponseError, match="corrupt"):
        body.feed(b"\x1f\x8b\x08\x00garbage-not-deflate")


class _Sink:
    def __init__(self) -> None:
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)

    def close(self) -> int:
        return self.received


def test_a_body_with_a_sink_is_counted_and_handed_on_not_kept() -> None:
    sink = _Sink()
    body = BodyReader("gzip", 10 * MIB, truncate=False, action="List", status=200, sink=sink)
    body.feed(gzip.compress(b"x" * (3 * MIB)))
    assert (body.body, body.count, body.finish()) == (bytearray(), 3 * MIB, 3 * MIB)
    capped = BodyReader("", MIB, truncate=False, action="List", status=200, sink=_Sink())
    with pytest.raises(AomResponseTooLargeError):
        capped.feed(b"x" * (MIB + 1))
