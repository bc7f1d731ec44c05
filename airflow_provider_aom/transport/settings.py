"""What a request's connection is made of: proxy, TLS trust, pool key, and the header values it may carry.

``extra.verify`` and ``extra.proxies`` win over the environment; only when they are absent do
``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE`` and ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` apply (docs/connection.md). Both are resolved for
each request (from a few environment look-ups, cached on their values), and the result is part of
the request's :class:`PoolKey`: a CA variable or a proxy variable that changes takes effect on
the next request, on a connection made under the new setting.
"""

from __future__ import annotations

import functools
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore

from airflow_provider_aom import __version__
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomConfigurationError
from airflow_provider_aom.vocabulary import MAX_LIST_BYTES, MAX_RESPONSE_BYTES, header_value_problem

USER_AGENT = f"airflow-provider-aom/{__version__}".encode()
#: What the body decoder understands; anything else in Content-Encoding is refused.
ACCEPT_ENCODING = b"gzip, deflate"
#: Environment variables naming a CA bundle, honoured (in this order) only when ``extra.verify`` is absent.
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


# --------------------------------------------------------------------------- proxies


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


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Trust:
    """What a TLS handshake trusts, resolved from ``extra.verify`` and, when it is absent, the environment."""

    #: False: no verification at all (``extra.verify`` false).
    verify: bool
    #: The CA bundle; None: certifi's.
    cafile: str | None
    #: Where it came from, for messages: ``extra.verify``, a CA variable's name, or ``certifi``.
    source: str


def trust_for(verify: bool | str | None) -> Trust:
    """The trust of a request now: ``extra.verify`` when set, else the first CA variable set, else certifi."""
    if verify is False:
        return Trust(False, None, "extra.verify")
    if isinstance(verify, str):
        return Trust(True, verify, "extra.verify")
    if verify is None:
        for name in CA_BUNDLE_ENV:
            path = os.environ.get(name)
            if path:
                return Trust(True, path, name)
    return Trust(True, None, "certifi")


class _Contexts:
    """``ssl_context(verify)``: the TLS context for ``extra.verify`` and the CA variables as they are *now*.

    A context is built once per :class:`Trust` (a CA bundle is parsed once, not per connection), and
    the trust is resolved on each call, so a CA variable changed later is honoured.
    """

    def __call__(self, verify: bool | str | Trust | None) -> ssl.SSLContext:
        return self.of(verify if isinstance(verify, Trust) else trust_for(verify))

    @staticmethod
    @functools.lru_cache(maxsize=32)
    def of(trust: Trust) -> ssl.SSLContext:
        if not trust.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if trust.cafile is None:
            return httpcore.default_ssl_context()
        if not os.path.isfile(trust.cafile):
            if trust.source == "extra.verify":
                raise AomConfigurationError(
                    "extra.verify names a CA bundle that does not exist; fix the path, or set it to true or false."
                )
            raise AomConfigurationError(
                f"The environment variable {trust.source} names a CA bundle that does not exist; fix it, or set "
                "extra.verify in the connection (it takes precedence over the environment)."
            )
        try:
            return ssl.create_default_context(cafile=trust.cafile)
        except ssl.SSLError:
            raise AomConfigurationError(
                f"The CA bundle named by {trust.source} holds no readable PEM certificate; fix the file or the setting."
            ) from None

    def cache_clear(self) -> None:
        """Forget the contexts built (a CA bundle file rewritten in place is read again)."""
        self.of.cache_clear()


ssl_context = _Contexts()


# --------------------------------------------------------------------------- pool keys


@dataclass(frozen=True)
class PoolKey:
    """Where a request goes and how: the key of a connection pool (an endpoint host, not an API endpoint)."""

    scheme: str
    host: str
    port: int
    proxy: str | None
    #: What TLS to the host (and to an ``https://`` proxy) trusts; part of the key, so it follows the settings.
    trust: Trust

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        """A TLS handshake is made: with the host, or with an ``https://`` proxy."""
        return self.scheme == "https" or (self.proxy is not None and self.proxy.startswith("https:"))


@dataclass(frozen=True)
class TransportSettings:
    """The connection's transport extras (``verify``, ``proxies``, ``timeout``) and the body caps."""

    verify: bool | str | None = None
    proxies: Mapping[str, str] | None = None
    timeout: float = 30.0
    max_body_bytes: int = MAX_RESPONSE_BYTES
    #: The cap of a body read into the request's sink (:attr:`~airflow_provider_aom.wire.RequestFacts.body_sink`).
    max_streamed_body_bytes: int = MAX_LIST_BYTES

    def endpoint(self, url: str) -> tuple[PoolKey, bytes]:
        """The pool key of ``url`` and its request target (path and query, exactly as built)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = PoolKey(scheme, host, port, proxy_for(scheme, host, self.proxies), trust_for(self.verify))
        return key, target.encode("ascii")


# --------------------------------------------------------------------------- headers


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
