"""How one API call is made, written once for the sync hook and the async trigger.

The flows here are generators that *yield* what must go over the wire and are
*sent* what came back; they never do I/O themselves. A driver (``requests`` in
:class:`~airflow_provider_aom.hooks.aom.AomHook`, an async client in the
trigger) runs them. So authentication (AK/SK signing, IAM tokens with renewal
on 401), project-id discovery and header rules exist in one place.

A flow yields two kinds of step:

* :class:`HttpRequest`: send it and ``send()`` back an :class:`ApiResponse`
  (or ``throw()`` an :class:`~airflow_provider_aom.exceptions.AomTransportError`).
* :class:`FetchToken`: return a valid :class:`IamToken` for ``key``. The driver
  checks the shared cache under its own lock type (a thread lock or an asyncio
  lock) and only sends ``http`` when no fresh token is cached, so concurrent
  callers make a single IAM call.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_aom import api
from airflow_provider_aom.api import ApiRequest, ApiResponse
from airflow_provider_aom.auth.signer import sign_headers
from airflow_provider_aom.auth.tokens import TOKEN_CACHE, IamToken, TokenCache, cache_key
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import AomConfigurationError

JSON = "application/json"


@dataclass(frozen=True)
class HttpRequest:
    """A fully prepared request: every header here is final (and, for AK/SK, signed)."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    api: ApiRequest


@dataclass(frozen=True)
class FetchToken:
    key: str
    http: HttpRequest


Step = HttpRequest | FetchToken
Flow = Generator[Step, Any, Any]

# Project ids resolved from IAM, per identity and region, for the life of the process.
_PROJECT_IDS: dict[str, str] = {}
_PROJECT_IDS_LOCK = threading.Lock()


class AomProtocol:
    """The auth and request rules of one connection (no I/O)."""

    def __init__(self, config: AomConnectionConfig, token_cache: TokenCache = TOKEN_CACHE) -> None:
        self.config = config
        self.token_cache = token_cache
        self._token_key = cache_key(config) if config.auth_type == "password" else ""

    # ------------------------------------------------------------------ flows

    def call(self, request: ApiRequest, project_id: str | None) -> Flow:
        """Send ``request`` authenticated; with password auth, a 401 renews the token and resends once.

        Resending after a 401 is safe even for the execute POST: the gateway
        rejected the token before the request reached AOM.
        """
        for attempt in (1, 2):
            token = None
            if self.config.auth_type == "password":
                token = yield FetchToken(self._token_key, self._token_request())
            response: ApiResponse = yield self.prepare(request, project_id, token)
            if response.status == 401 and token is not None and attempt == 1:
                self.token_cache.invalidate(self._token_key, token.value)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def known_project_id(self, override: str | None = None) -> str | None:
        """The project id when it needs no request (argument, connection, resolved before); else None.

        Lets the hooks skip the retry machinery (a tenacity ``Retrying`` per call) for the common case.
        """
        if override:
            return api.check_project_id(override)
        if self.config.project_id:
            return self.config.project_id
        return _PROJECT_IDS.get(self._project_key()) or None

    def project_id(self, override: str | None = None) -> Flow:
        """The project id: the argument, the connection's, or resolved once from IAM."""
        known = self.known_project_id(override)
        if known:
            return known
        key = self._project_key()
        if self.config.auth_type == "password":
            token: IamToken = yield FetchToken(self._token_key, self._token_request())
            if not token.project_id:
                raise AomConfigurationError(
                    f"Connection {self.config.conn_id!r} (auth_type password): the IAM token names no "
                    "project; set extra.project_id."
                )
            project = api.check_project_id(token.project_id)
        else:
            region = self.config.region
            if not region:
                raise AomConfigurationError(
                    f"Connection {self.config.conn_id!r} (auth_type {self.config.auth_type}): set "
                    "extra.project_id, or extra.region to look it up."
                )
            request = api.list_projects(region)
            response = yield from self.call(request, None)
            project = api.parse_project_id(response, request, region)
        with _PROJECT_IDS_LOCK:
            _PROJECT_IDS[key] = project
        return project

    # ------------------------------------------------------------------ preparation

    def prepare(self, request: ApiRequest, project_id: str | None, token: IamToken | None = None) -> HttpRequest:
        """Build the URL and the final headers (signed for AK/SK)."""
        base = self.config.endpoint if request.service == "aom" else self.config.iam_endpoint
        if not base:
            raise AomConfigurationError(
                f"Connection {self.config.conn_id!r}: set extra.iam_endpoint or extra.region to reach IAM."
            )
        parts = urlsplit(base)
        path = parts.path + request.path
        url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{request.query}" if request.query else "")
        headers = {"Content-Type": JSON}
        config = self.config
        if config.auth_type == "aksk":
            if project_id and request.service == "aom":
                headers["X-Project-Id"] = project_id
            if config.security_token:
                headers["X-Security-Token"] = config.security_token
            headers = sign_headers(
                access_key=config.access_key or "",
                secret_key=config.secret_key or "",
                method=request.method,
                host=parts.netloc,
                path=path,
                query=request.query,
                headers=headers,
                body=request.body,
            )
        elif config.auth_type == "password":
            assert token is not None
            headers["X-Auth-Token"] = token.value
        else:
            headers["X-Auth-Token"] = config.token or ""
        return HttpRequest(request.method, url, headers, request.body, request)

    def _token_request(self) -> HttpRequest:
        config = self.config
        request = api.password_token(
            username=config.username or "",
            password=config.password or "",
            domain_name=config.domain_name or "",
            project_id=config.project_id,
            region=config.region,
        )
        parts = urlsplit(config.iam_endpoint)
        url = f"{config.iam_endpoint}{request.path}?{request.query}"
        headers = {"Content-Type": "application/json;charset=utf8", "Host": parts.netloc}
        return HttpRequest(request.method, url, headers, request.body, request)

    def _project_key(self) -> str:
        config = self.config
        identity = config.access_key or self._token_key or hashlib.sha256((config.token or "").encode()).hexdigest()
        return "\x00".join([config.iam_endpoint, config.region or "", config.auth_type, identity])
