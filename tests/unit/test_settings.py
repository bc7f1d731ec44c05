"""TLS trust over loopback: through a CONNECT proxy (plain and ``https://``), and when a CA variable changes.

Both transports, each against real TLS servers on 127.0.0.1 with certificates from a throwaway
CA (``trustme``): ``extra.verify`` naming the right CA bundle, or the ``REQUESTS_CA_BUNDLE``
variable doing so, succeeds; an unrelated CA fails as a certificate error that was never sent.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from airflow_provider_aom.exceptions import AomTransportError
from airflow_provider_aom.transport import CA_BUNDLE_ENV, AsyncTransport, SyncTransport, TransportSettings
from airflow_provider_aom.wire import ApiResponse, HttpRequest
from tests.loopback import ConnectProxy, KeepAliveServer

MODES = ["sync", "async"]


@dataclass(frozen=True)
class Facts:
    """The little the transport needs to know of a call."""

    action: str = "Get thing"
    idempotent: bool = True
    body_sink: None = None


def get(url: str) -> HttpRequest[Facts]:
    netloc = url.split("/")[2]
    return HttpRequest("GET", url + "/thing", {"Host": netloc}, b"", Facts())


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return Pki(directory / "ca.pem", directory / "other-ca.pem", server)


@pytest.fixture(autouse=True)
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CA_BUNDLE_ENV, "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def https_server(pki: Pki) -> Iterator[KeepAliveServer]:
    with KeepAliveServer(tls=pki.server) as server:
        yield server


Outcome = ApiResponse | AomTransportError


def send_all(
    mode: str, settings: TransportSettings, requests: list[HttpRequest[Facts]], between: list[dict[str, str]]
) -> list[Outcome]:
    """Each request on one transport, in order; before request ``i``, the CA variables ``between[i]`` are set."""

    def prepare(index: int) -> None:
        for name in CA_BUNDLE_ENV:
            os.environ.pop(name, None)
        os.environ.update(between[index] if index < len(between) else {})

    outcomes: list[Outcome] = []
    if mode == "sync":
        sync = SyncTransport(settings)
        try:
            for index, request in enumerate(requests):
                prepare(index)
                try:
                    outcomes.append(sync.send(request, time.monotonic() + 5))
                except AomTransportError as exc:
                    outcomes.append(exc)
        finally:
            sync.close()
        return outcomes

    async def run() -> None:
        transport = AsyncTransport(settings)
        try:
            for index, request in enumerate(requests):
                prepare(index)
                try:
                    outcomes.append(await transport.send(request, time.monotonic() + 5))
                except AomTransportError as exc:
                    outcomes.append(exc)
        finally:
            await transport.aclose()

    asyncio.run(run())
    return outcomes


def send(mode: str, settings: TransportSettings, url: str, env: dict[str, str] | None = None) -> ApiResponse:
    [outcome] = send_all(mode, settings, [get(url)], [env or {}])
    if isinstance(outcome, AomTransportError):
        raise outcome
    return outcome


def assert_untrusted(mode: str, settings: TransportSettings, url: str, env: dict[str, str] | None = None) -> None:
    with pytest.raises(AomTransportError, match="CERTIFICATE") as info:
        send(mode, settings, url, env)
    assert info.value.sent is False
    assert "extra.verify" in str(info.value)


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
@pytest.mark.parametrize("mode", MODES)
def test_https_through_a_connect_proxy_honours_verify(
    mode: str, proxy_tls: bool, pki: Pki, https_server: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA that verifies the host verifies an https:// proxy too (httpcore alone would use certifi's there)."""
    with ConnectProxy(tls=pki.server if proxy_tls else None) as proxy:
        proxies = {"https": proxy.url}
        assert_untrusted(mode, TransportSettings(verify=str(pki.other_ca), proxies=proxies), https_server.url)
        response = send(mode, TransportSettings(verify=str(pki.ca), proxies=proxies), https_server.url)
        assert response.status == 200 and response.body == b'{"ok": true}'
        from_env = TransportSettings(proxies=proxies)
        assert send(mode, from_env, https_server.url, {"REQUESTS_CA_BUNDLE": str(pki.ca)}).status == 200
        assert_untrusted(mode, from_env, https_server.url, {"SSL_CERT_FILE": str(pki.other_ca)})
        # extra.verify wins over the variable, for the proxy's certificate as for the host's.
        response = send(
            mode,
            TransportSettings(verify=str(pki.ca), proxies=proxies),
            https_server.url,
            {"REQUESTS_CA_BUNDLE": str(pki.other_ca)},
        )
        assert response.status == 200
    assert len(https_server.seen) == 3, "every trusted request went through, none of the others"
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{https_server.port}"}


@pytest.mark.parametrize("mode", MODES)
def test_ssl_context_follows_a_ca_variable_changed_after_a_first_request(
    mode: str, pki: Pki, https_server: KeepAliveServer
) -> None:
    """One transport (one pool): the variable's new value applies to the next request, both ways."""
    settings = TransportSettings(proxies={})
    wrong, right = {"REQUESTS_CA_BUNDLE": str(pki.other_ca)}, {"REQUESTS_CA_BUNDLE": str(pki.ca)}
    outcomes = send_all(mode, settings, [get(https_server.url)] * 4, [wrong, right, right, wrong])
    assert isinstance(outcomes[0], AomTransportError) and "REQUESTS_CA_BUNDLE" in str(outcomes[0])
    assert [getattr(o, "status", None) for o in outcomes[1:3]] == [200, 200]
    # Back to a CA that does not trust the server: the connection verified under the other one is not reused.
    assert isinstance(outcomes[3], AomTransportError) and "CERTIFICATE" in str(outcomes[3])
    assert len(https_server.seen) == 2


def test_a_missing_ca_bundle_names_its_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_aom.exceptions import AomConfigurationError
    from airflow_provider_aom.transport import ssl_context

    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(AomConfigurationError, match=r"^extra\.verify names a CA bundle that does not exist"):
        ssl_context(missing)
    monkeypatch.setenv("CURL_CA_BUNDLE", missing)
    with pytest.raises(AomConfigurationError, match="CURL_CA_BUNDLE names a CA bundle that does not exist"):
        ssl_context(None)
