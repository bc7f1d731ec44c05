"""The transport's rules without a network: body caps and decoding, header values, proxy and CA precedence."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import tracemalloc
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aom import transport
from airflow_provider_aom.exceptions import AomConfigurationError, AomInvalidResponseError, AomResponseTooLargeError
from airflow_provider_aom.transport import BodyReader, TransportSettings, pools, proxy_for, ssl_context, wire_headers

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


def test_header_values_with_control_or_non_latin1_characters_are_refused_by_name() -> None:
    secret = "MIItoken"
    with pytest.raises(AomConfigurationError, match="X-Auth-Token header") as info:
        wire_headers({"X-Auth-Token": secret + "\nX-Injected: 1"})
    assert secret not in str(info.value)
    with pytest.raises(AomConfigurationError, match="outside latin-1") as info:
        wire_headers({"X-Auth-Token": secret + "\u2603"})
    assert secret not in str(info.value)
    wire = dict(wire_headers({"X-Auth-Token": secret, "Host": "h"}))
    assert wire[b"X-Auth-Token"] == secret.encode()
    assert wire[b"Accept-Encoding"] == b"gzip, deflate"


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    return monkeypatch


def test_environment_proxy_applies_only_when_extra_proxies_is_absent(proxy_env: pytest.MonkeyPatch) -> None:
    assert proxy_for("https", "aom.cn-north-4.myhuaweicloud.com", None) == "http://env-proxy:3128"
    assert proxy_for("https", "aom.cn-north-4.myhuaweicloud.com", {"https": "http://mine:8080"}) == "http://mine:8080"
    assert proxy_for("https", "aom.cn-north-4.myhuaweicloud.com", {}) is None, "{} switches the environment off"
    proxy_env.setenv("NO_PROXY", ".myhuaweicloud.com")
    assert proxy_for("https", "aom.cn-north-4.myhuaweicloud.com", None) is None


def test_environment_proxy_is_looked_up_once_until_a_proxy_variable_changes(proxy_env: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    real = urllib.request.getproxies_environment

    def counting() -> dict[str, str]:
        calls.append(None)
        return real()

    proxy_env.setattr(urllib.request, "getproxies_environment", counting)
    host = "aom.cn-north-4.example-cache.com"  # a host no other test asks for: nothing cached yet
    assert proxy_for("https", host, None) == "http://env-proxy:3128"
    first = len(calls)
    assert first >= 1
    assert [proxy_for("https", host, None) for _ in range(50)] == ["http://env-proxy:3128"] * 50
    assert len(calls) == first, "urllib scans the whole environment per call: it must not run per request"
    proxy_env.setenv("HTTPS_PROXY", "http://other-proxy:3128")
    assert proxy_for("https", host, None) == "http://other-proxy:3128"
    proxy_env.setenv("no_proxy", "example-cache.com")
    assert proxy_for("https", host, None) is None


def test_socks_proxy_is_a_configuration_error(proxy_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(AomConfigurationError, match="socks5 proxy"):
        proxy_for("https", "h", {"https": "socks5://p:1080"})


def test_endpoint_key_separates_hosts_and_keeps_the_target_exactly() -> None:
    settings = TransportSettings(proxies={})
    one, target = settings.endpoint("https://aom.cn-north-4.myhuaweicloud.com/v1/p/cms/workflow/a%2Fb/executions?x=1")
    two, _ = settings.endpoint("https://iam.cn-north-4.myhuaweicloud.com/v3/projects")
    assert one != two and one.port == 443 and one.proxy is None
    assert target == b"/v1/p/cms/workflow/a%2Fb/executions?x=1"


def test_ca_bundle_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """extra.verify wins; absent, REQUESTS_CA_BUNDLE (then CURL_CA_BUNDLE, SSL_CERT_FILE) applies; else certifi."""
    ssl_context.cache_clear()
    for name in transport.CA_BUNDLE_ENV:
        monkeypatch.delenv(name, raising=False)
    missing = str(tmp_path / "missing.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    try:
        assert ssl_context(False).verify_mode == ssl.CERT_NONE, "verify=false ignores the environment"
        with pytest.raises(AomConfigurationError, match="REQUESTS_CA_BUNDLE"):
            ssl_context(None)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        assert ssl_context(None).verify_mode == ssl.CERT_REQUIRED
    finally:
        ssl_context.cache_clear()


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
