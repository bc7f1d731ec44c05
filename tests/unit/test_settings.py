"""Transport settings (airflow_provider_aom/transport/settings.py): header values, proxy and CA precedence, TLS.

The rules without a network first: header values refused by name, ``extra.proxies`` against the
environment, pool keys, and which CA bundle applies. Then TLS trust over loopback: through a CONNECT
proxy (plain and ``https://``), and when a CA variable changes. Both transports, each against real TLS
servers on 127.0.0.1 with certificates from a throwaway CA (``trustme``): ``extra.verify`` naming the
right CA bundle, or the ``REQUESTS_CA_BUNDLE`` variable doing so, succeeds; an unrelated CA fails as a
certificate error that was never sent.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from airflow_provider_aom import transport
from airflow_provider_aom.exceptions import AomConfigurationError, AomTransportError
from airflow_provider_aom.transport import (
    CA_BUNDLE_ENV,
    AsyncTransport,
    SyncTransport,
    TransportSettings,
    proxy_for,
    ssl_context,
    wire_headers,
)
from airflow_provider_aom.wire import ApiResponse, HttpRequest
from tests.loopback import ConnectProxy, KeepAliveServer

MODES = ["sync", "async"]


# --------------------------------------------------------------------------- the rules, no network


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


# --------------------------------------------------------------------------- TLS over loopback


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
