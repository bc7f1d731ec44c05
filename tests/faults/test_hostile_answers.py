"""Answers from a broken or hostile server, over real sockets: time, size, hosts, TLS, proxies, headers, text.

Each test scripts the server byte by byte (tests/hostile_server.py) and checks what the
hooks do with it, sync and async:

* a trickled answer ends at the exchange's total deadline, with an error that is not retried;
* a huge, endless or gzip-bomb body stops at the byte cap with memory bounded by the cap;
* a slow endpoint holds only its own request slots;
* ``extra.verify`` / ``extra.proxies`` win over the environment;
* failures before a byte was sent are "not sent" and never make a submit ambiguous;
* server text in an error cannot forge a log line.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aom.auth_flow import RESOLVED
from airflow_provider_aom.exceptions import (
    AomAmbiguousSubmitError,
    AomApiError,
    AomConfigurationError,
    AomError,
    AomResponseTooLargeError,
    AomServerError,
    AomSlowResponseError,
    AomTransportError,
)
from airflow_provider_aom.hooks.aom import AomAsyncHook, AomHook
from tests.faults import PROJECT
from tests.hostile_server import (
    Exchange,
    HostileServer,
    endless_chunked,
    gzip_bomb,
    huge_pieces,
    json_response,
    replying,
    response,
)

MIB = 1024 * 1024
TOKEN = "MIIhostile-test-token"
WORKFLOW, EXECUTION = "wf-hostile", "e-1"
DETAIL = {"workflow_id": WORKFLOW, "execution_id": EXECUTION, "status": "executing", "execution_result_list": []}
#: Generous bound on how long a call may take when it must end at a ~1-2 s deadline: it catches a
#: hang (the defect), not a slow machine.
HANG = 20.0


@pytest.fixture
def use_server(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``use_server(base_url, **extra)``: aom_default as a static-token connection to that server."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    RESOLVED.clear()

    def use(base_url: str, password: str = TOKEN, **extra: Any) -> None:
        conn = {
            "conn_type": "huaweicloud_aom",
            "host": base_url,
            "password": password,
            "extra": {
                "auth_type": "token",
                "project_id": PROJECT,
                "region": "cn-north-4",
                "timeout": 2,
                "retry_attempts": 3,
                "retry_max_wait": 0.05,
                "retry_total": 30,
                **extra,
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_AOM_DEFAULT", json.dumps(conn))

    return use


def read_status(mode: str) -> dict[str, Any]:
    """One status read through the sync or the async hook."""
    if mode == "sync":
        return AomHook().get_execution(WORKFLOW, EXECUTION)
    return asyncio.run(AomAsyncHook().get_execution(WORKFLOW, EXECUTION))


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    began = time.monotonic()
    try:
        call()
    except AomError as exc:
        return exc, time.monotonic() - began
    return None, time.monotonic() - began


def peak_memory(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """The error ``call`` raised and the peak of memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        error, _ = timed(call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, peak


MODES = ["sync", "async"]

# --------------------------------------------------------------------------- 1. time


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("part", ["status-line", "body"])
def test_trickled_answer_errors_at_the_total_deadline_and_is_not_retried(
    mode: str, part: str, use_server: Callable[..., None]
) -> None:
    """Every byte arrives well within a per-read timeout, yet the answer ends at the 2 s total deadline."""
    whole = json_response(200, DETAIL)
    head, body = whole.split(b"\r\n\r\n", 1)

    def respond(exchange: Exchange) -> None:
        if part == "body":
            exchange.send(head + b"\r\n\r\n")
            exchange.trickle(body, 0.05)
        else:
            exchange.trickle(whole, 0.05)

    with HostileServer(respond) as server:
        use_server(server.base_url)
        error, elapsed = timed(lambda: read_status(mode))
    assert isinstance(error, AomSlowResponseError), error
    assert error.sent and "did not complete before the deadline" in str(error)
    assert len(server.heads) == 1, "a trickling server is not asked again within the call"
    assert elapsed < HANG


@pytest.mark.parametrize("mode", MODES)
def test_silent_server_is_retried_then_fails_within_retry_total(mode: str, use_server: Callable[..., None]) -> None:
    """No byte at all within the timeout: retried (the network may recover), bounded by retry_total."""

    def respond(exchange: Exchange) -> None:
        exchange.stopping.wait(30)

    with HostileServer(respond) as server:
        use_server(server.base_url, timeout=0.5, retry_attempts=10, retry_total=2)
        error, elapsed = timed(lambda: read_status(mode))
    assert isinstance(error, AomTransportError) and not isinstance(error, AomSlowResponseError), error
    assert 2 <= len(server.heads) < 10, "retried, but stopped by retry_total before the attempts ran out"
    assert elapsed < HANG


# --------------------------------------------------------------------------- 2. size


@pytest.mark.parametrize("mode", MODES)
def test_400_mb_body_stops_at_the_cap_with_bounded_memory(mode: str, use_server: Callable[..., None]) -> None:
    written: list[int] = []

    def respond(exchange: Exchange) -> None:
        size = 400 * MIB
        exchange.send(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
        written.append(exchange.flooded(huge_pieces(size)))

    with HostileServer(respond) as server:
        use_server(server.base_url, timeout=60)
        error, peak = peak_memory(lambda: read_status(mode))
    assert isinstance(error, AomResponseTooLargeError), error
    assert "16777216 bytes" in str(error)
    assert len(server.heads) == 1, "an oversized answer is not asked for again"
    assert peak < 48 * MIB, f"{peak / MIB:.1f} MiB"
    assert written[0] < 400 * MIB, "the client stopped reading: the server could not send it all"


@pytest.mark.parametrize("mode", MODES)
def test_never_ending_chunked_body_stops_at_the_cap(mode: str, use_server: Callable[..., None]) -> None:
    with HostileServer(lambda exchange: exchange.flood(endless_chunked())) as server:
        use_server(server.base_url, timeout=60, max_response_bytes=MIB)
        error, peak = peak_memory(lambda: read_status(mode))
    assert isinstance(error, AomResponseTooLargeError), error
    assert peak < 8 * MIB, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("mode", MODES)
def test_gzip_bomb_stops_at_the_cap_after_decompression(mode: str, use_server: Callable[..., None]) -> None:
    """1 MB on the wire, 1 GiB decoded: stopped at the 16 MiB cap, counted after decompression."""
    bomb = gzip_bomb(1024 * MIB)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with HostileServer(replying(response(200, bomb, headers))) as server:
        use_server(server.base_url, timeout=60)
        error, peak = peak_memory(lambda: read_status(mode))
    assert isinstance(error, AomResponseTooLargeError), error
    assert "after decompression" in str(error)
    assert peak < 48 * MIB, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("mode", MODES)
def test_huge_error_answer_is_read_only_up_to_its_message(mode: str, use_server: Callable[..., None]) -> None:
    """A 503 whose body never ends: its first 64 KB make the error, the read stops, the 503 is retried."""

    def respond(exchange: Exchange) -> None:
        exchange.send(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 419430400\r\n\r\n"
        )
        exchange.flood(huge_pieces(400 * MIB))

    with HostileServer(respond) as server:
        use_server(server.base_url, timeout=60)
        error, peak = peak_memory(lambda: read_status(mode))
    assert isinstance(error, AomServerError) and error.status == 503, error
    assert len(server.heads) == 3, "503 is transient: every attempt was made"
    assert peak < 8 * MIB, f"{peak / MIB:.1f} MiB"


# --------------------------------------------------------------------------- 3. hosts


async def test_a_slow_endpoint_holds_only_its_own_slots(
    use_server: Callable[..., None], monkeypatch: pytest.MonkeyPatch, use_connection: Any, emulator: Any
) -> None:
    """4 slots per host: four trickling calls to host A hold A's; a call to host B (the emulator) is not delayed,
    and a fifth call to A waits for a slot only until its own deadline, then fails as never sent."""
    from airflow_provider_aom.transport import AsyncTransport

    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", 4)
    use_connection("token", conn_id="healthy")
    healthy = AomHook(aom_conn_id="healthy")
    execution_id = healthy.execute_workflow("wf-long")
    whole = json_response(200, DETAIL)
    with HostileServer(lambda exchange: exchange.trickle(whole, 0.05)) as server:
        use_server(server.base_url, timeout=3)
        slow = AomAsyncHook()
        stuck = [asyncio.ensure_future(slow.get_execution(WORKFLOW, EXECUTION)) for _ in range(4)]
        while len(server.heads) < 4:
            await asyncio.sleep(0.01)
        fifth = asyncio.ensure_future(slow.get_execution(WORKFLOW, EXECUTION, deadline=time.time() + 1))
        detail = await AomAsyncHook(aom_conn_id="healthy").get_execution("wf-long", execution_id)
        assert detail["status"] == "executing"
        assert not any(task.done() for task in stuck), "host B answered while all of A's slots were held"
        with pytest.raises(AomTransportError, match="stayed busy") as info:
            await fifth
        assert info.value.sent is False
        results = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(r, AomSlowResponseError) for r in results), results
    assert len(server.heads) == 4, "the fifth call never reached host A"


# --------------------------------------------------------------------------- 4. TLS and proxies


def _certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, its key, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def make_ca(name: str) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca = make_ca("aom-test-ca")
    _, other = make_ca("unrelated-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = [directory / name for name in ("ca.pem", "server.pem", "server.key", "other-ca.pem")]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[3].write_bytes(other.public_bytes(serialization.Encoding.PEM))
    return paths[0], paths[1], paths[2], paths[3]


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HostileServer, Path, Path]]:
    """An HTTPS server answering a detail, with (server, its CA, an unrelated CA); CA env variables cleared."""
    from airflow_provider_aom.transport import CA_BUNDLE_ENV, ssl_context

    for name in (*CA_BUNDLE_ENV, "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    ssl_context.cache_clear()
    ca, cert, key, other = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with HostileServer(replying(json_response(200, DETAIL)), tls=context) as server:
        yield server, ca, other
    ssl_context.cache_clear()


@pytest.mark.parametrize("mode", MODES)
def test_extra_verify_ca_path_wins_over_requests_ca_bundle(
    mode: str, tls_server: tuple[HostileServer, Path, Path], use_server: Callable[..., None], monkeypatch: Any
) -> None:
    server, ca, other = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    use_server(server.base_url, verify=str(ca))
    assert read_status(mode)["status"] == "executing"


@pytest.mark.parametrize("mode", MODES)
def test_extra_verify_false_wins_over_the_environment(
    mode: str, tls_server: tuple[HostileServer, Path, Path], use_server: Callable[..., None], monkeypatch: Any
) -> None:
    server, _, other = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    use_server(server.base_url, verify=False)
    assert read_status(mode)["status"] == "executing"


@pytest.mark.parametrize("mode", MODES)
def test_environment_ca_bundle_applies_when_verify_is_absent(
    mode: str, tls_server: tuple[HostileServer, Path, Path], use_server: Callable[..., None], monkeypatch: Any
) -> None:
    server, ca, _ = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    use_server(server.base_url)
    assert read_status(mode)["status"] == "executing"


def test_certificate_error_is_not_sent_so_a_submit_is_never_ambiguous(
    tls_server: tuple[HostileServer, Path, Path], use_server: Callable[..., None]
) -> None:
    """The server's certificate is not trusted: the POST never left, so it is retried and then fails plainly."""
    server, _, _ = tls_server
    use_server(server.base_url)
    with pytest.raises(AomTransportError) as info:
        AomHook().execute_workflow(WORKFLOW)
    assert not isinstance(info.value, AomAmbiguousSubmitError)
    assert info.value.sent is False
    assert "CERTIFICATE" in str(info.value).upper() and "extra.verify" in str(info.value)
    assert server.heads == [], "no request was ever sent, so none was read"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", MODES)
def test_empty_proxies_switch_the_environment_proxy_off(
    mode: str, use_server: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    with HostileServer(replying(json_response(200, DETAIL))) as server:
        use_server(server.base_url, retry_attempts=1)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", dead_proxy)
        error, _ = timed(lambda: read_status(mode))
        assert isinstance(error, AomTransportError) and "could not connect" in str(error), "absent: env applies"
        assert server.heads == []
        use_server(server.base_url, retry_attempts=1, proxies={})
        assert read_status(mode)["status"] == "executing"
    assert len(server.heads) == 1


@pytest.mark.parametrize("mode", MODES)
def test_http_proxy_from_extra_proxies_carries_the_request(mode: str, use_server: Callable[..., None]) -> None:
    """The endpoint's name never resolves: only the proxy is reached, with the absolute-form request."""
    with HostileServer(replying(json_response(200, DETAIL))) as proxy:
        use_server("http://aom.example.invalid:8089", proxies={"http": proxy.base_url})
        assert read_status(mode)["status"] == "executing"
    [head] = proxy.heads
    assert head.startswith(b"GET http://aom.example.invalid:8089/v1/"), head[:80]
    assert b"/status HTTP/1.1" in head.split(b"\r\n")[0]


# --------------------------------------------------------------------------- 5. before a byte is sent


@pytest.mark.parametrize(
    ("password", "problem"),
    [("MIIabc\nX-Injected: 1", "control character"), ("MIIabc\u2603", "outside latin-1")],
    ids=["newline-inside", "non-latin-1"],
)
def test_bad_header_value_is_a_configuration_error_naming_the_field(
    password: str, problem: str, use_server: Callable[..., None]
) -> None:
    with HostileServer(replying(json_response(200, DETAIL))) as server:
        use_server(server.base_url, password=password)
        with pytest.raises(AomConfigurationError, match=problem) as info:
            AomHook().execute_workflow(WORKFLOW)
    assert "password (the IAM token)" in str(info.value)
    assert "MIIabc" not in str(info.value)
    assert server.heads == []


@pytest.mark.parametrize("mode", MODES)
def test_token_pasted_with_its_newline_is_stripped(mode: str, use_server: Callable[..., None]) -> None:
    with HostileServer(replying(json_response(200, DETAIL))) as server:
        use_server(server.base_url, password=f"  {TOKEN}\r\n")
        assert read_status(mode)["status"] == "executing"
    assert f"X-Auth-Token: {TOKEN}\r\n".encode() in server.heads[0]


# --------------------------------------------------------------------------- 9. server text


@pytest.mark.parametrize("mode", MODES)
def test_server_text_in_an_error_cannot_forge_a_log_line(mode: str, use_server: Callable[..., None]) -> None:
    forged = "\r\n2026-12-02T00:00:00Z [error] forged line \u2028 \x1b[31m"
    body = {"error_code": "AOM.31001302" + forged, "error_msg": "Invalid param" + forged, "request_id": "r-1" + forged}
    headers = {"Content-Type": "application/json", "X-Request-Id": "r-1\x1b[31m\x7f"}
    with HostileServer(replying(response(400, json.dumps(body).encode(), headers))) as s:
        use_server(s.base_url)
        error, _ = timed(lambda: read_status(mode))
    assert isinstance(error, AomApiError), error
    text = str(error)
    for character in ("\r", "\n", "\u2028", "\x1b", "\x7f"):
        assert character not in text, repr(character)
    assert "forged line" in text, "escaped, not dropped"
