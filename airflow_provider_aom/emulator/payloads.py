"""Generated bodies (``huge`` and ``gzip_bomb`` faults, streamed JSON arrays), produced without holding them.

``huge`` bodies are yielded piece by piece; a gzip bomb is compressed from
1 MiB blocks, so only its compressed form (about 1 MB per GiB) is ever held;
a JSON array (an execution list with seeded history) is framed from its
elements as they come, in pieces of about :data:`CHUNK_SIZE`.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Iterator

CHUNK_SIZE = 64 * 1024
COMPRESS_BLOCK = 1024 * 1024
# "0," has an even length, so every chunk continues the "0,0,0,..." pattern.
_PADDING = b"0," * (CHUNK_SIZE // 2)
# gzip (wbits 16 + 15) around a raw deflate stream.
_GZIP_WBITS = 31

_gzip_bombs: dict[int, bytes] = {}
# One lock for every size: a second request for a size being compressed waits
# for that result instead of compressing it again.
_gzip_bombs_lock = threading.Lock()


def huge_pieces(size: int) -> Iterator[bytes]:
    """``[`` then ``0,`` padding, ``size`` bytes in all, at most :data:`CHUNK_SIZE` a piece; endless when negative."""
    yield b"["
    remaining = size - 1
    while size < 0 or remaining > 0:
        piece = _PADDING if size < 0 or remaining >= len(_PADDING) else _PADDING[:remaining]
        remaining -= len(piece)
        yield piece


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``Transfer-Encoding: chunked`` framing of ``pieces`` (no final empty chunk: the caller decides)."""
    for piece in pieces:
        if piece:
            yield f"{len(piece):x}\r\n".encode("ascii") + piece + b"\r\n"


def json_array(elements: Iterable[bytes]) -> Iterator[bytes]:
    """``[``, the encoded ``elements`` separated by ``, `` (as json.dumps does), ``]``: pieces of about CHUNK_SIZE."""
    pending = [b"["]
    size = 1
    for index, element in enumerate(elements):
        if index:
            pending.append(b", ")
            size += 2
        pending.append(element)
        size += len(element)
        if size >= CHUNK_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(b"]")
    yield b"".join(pending)


def take(pieces: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of ``pieces``, in the same pieces (the last one cut)."""
    remaining = limit
    for piece in pieces:
        if remaining <= 0:
            return
        if len(piece) > remaining:
            piece = piece[:remaining]
        remaining -= len(piece)
        yield piece


def bytewise(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` one byte at a time."""
    for piece in pieces:
        for start in range(len(piece)):
            yield piece[start : start + 1]


def split(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in slices of at most ``size`` bytes."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def gzip_bomb(size: int) -> bytes:
    """A gzip stream that decompresses to ``[`` and spaces, ``size`` bytes in all (computed once per size)."""
    if size < 1:
        raise ValueError("size must be positive")
    with _gzip_bombs_lock:
        compressed = _gzip_bombs.get(size)
        if compressed is None:
            compressed = _gzip_bombs[size] = _compress_padding(size)
        return compressed


def _compress_padding(size: int) -> bytes:
    # Level 9 reaches deflate's ~1030:1 limit on a run of spaces; level 1 is
    # only ~4x faster and its output is ~4.5x bigger.
    compressor = zlib.compressobj(9, zlib.DEFLATED, _GZIP_WBITS)
    parts = [compressor.compress(b"[")]
    block = b" " * min(size - 1, COMPRESS_BLOCK)
    remaining = size - 1
    while remaining > 0:
        piece = block if remaining >= len(block) else block[:remaining]
        parts.append(compressor.compress(piece))
        remaining -= len(piece)
    parts.append(compressor.flush())
    return b"".join(parts)
