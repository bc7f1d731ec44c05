"""How one API call is made, written once for the sync hook and the async trigger.

The flows here are generators that *yield* what must go over the wire and are
*sent* what came back; they never do I/O themselves. A driver (the sync
:class:`~airflow_provider_aom.hooks.aom.AomHook`, or the async hook a trigger
uses) runs them over :mod:`~airflow_provider_aom.transport`. So authentication
(AK/SK signing, IAM tokens with renewal on 401), project-id discovery, the
identity lookup and header rules exist in one place.

A flow yields three kinds of step, and these are all a hook ever performs (the calls and plans
above them are expanded into the same steps by :mod:`~airflow_provider_aom.call_flow`):

* :class:`Send`: send ``request`` by ``deadline`` and ``send()`` back an
  :class:`~airflow_provider_aom.wire.ApiResponse` (or ``throw()`` the failure).
* :class:`FetchToken`: return a valid :class:`IamToken` for ``key``. The driver
  checks the shared cache under its own lock type (a thread lock or an asyncio
  lock) and only sends ``http`` when no fresh token is cached, so concurrent
  callers make a single IAM call. A failure is thrown back, and the flow raises it
  as :meth:`~airflow_provider_aom.exceptions.AomError.not_sent`: the request the
  token was for never left.
* :class:`~airflow_provider_aom.api.Pause`: wait that many seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_aom import api
from airflow_provider_aom.api import ApiRequest, Pause
from airflow_provider_aom.auth.signer import sign_headers
from airflow_provider_aom.auth.tokens import TOKEN_CACHE, IamToken, TokenCache, cache_key
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import AomApiError, AomConfigurationError, AomError
from airflow_provider_aom.vocabulary import check_project_id
from airflow_provider_aom.wire import ApiResponse, HttpRequest

log = logging.getLogger(__name__)

JSON = "application/json"
T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send ``request``; the exchange ends by ``deadline`` (``time.monotonic()``) at the latest."""

    request: HttpRequest[ApiRequest]
    deadline: float


@dataclass(frozen=True)
class FetchToken:
    """A valid IAM token for ``key`` (from the cache, or by sending ``http`` by ``deadline``)."""

    key: str
    http: HttpRequest[ApiRequest]
    deadline: float


Step = Send | FetchToken | Pause
#: A flow that ends by returning a ``T``: the only thing a hook interprets.
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Identity:
    """Who the connection acts as, in the forms AOM may report as an execution's ``created_by``."""

    names: frozenset[str]

    def created(self, created_by: str) -> bool:
        return created_by in self.names


class _ProcessCache:
    """What a connection's identity resolves to once per process: its project id and its IAM user."""

    def __init__(self) -> None:
        self.project_ids: dict[str, str] = {}
        self.identities: dict[str, Identity | None] = {}
        self.lock = threading.Lock()

    def clear(self) -> None:
        """Forget every resolved project id and identity (tests; a connection whose user changed)."""
        with self.lock:
            self.project_ids.clear()
            self.identities.clear()


#: Per identity and region, for the life of the process.
RESOLVED = _ProcessCache()


class AomProtocol:
    """The auth and request rules of one connection (no I/O)."""

    def __init__(self, config: AomConnectionConfig, token_cache: TokenCache = TOKEN_CACHE) -> None:
        self.config = config
        self.token_cache = token_cache
        self._token_key = cache_key(config) if config.auth_type == "password" else ""
        self._iam_request: HttpRequest[ApiRequest] | None = None

    # ------------------------------------------------------------------ flows

    def call(self, request: ApiRequest, project_id: str | None, deadline: float) -> Flow[ApiResponse]:
        """Send ``request`` authenticated by ``deadline``; with password auth, a 401 renews the token and resends once.

        Resending after a 401 is safe even for the execute POST: the gateway
        rejected the token before the request reached AOM.
        """
        for attempt in (1, 2):
            token = None
            if self.config.auth_type == "password":
                token = yield from self.token(deadline)
            response: ApiResponse = yield Send(self.prepare(request, project_id, token), deadline)
            if response.status == 401 and token is not None and attempt == 1:
                self.token_cache.invalidate(self._token_key, token.value)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def known_project_id(self, override: str | None = None) -> str | None:
        """The project id when it needs no request (argument, connection, resolved before); else None."""
        if override:
            return check_project_id(override)
        if self.config.project_id:
            return self.config.project_id
        return RESOLVED.project_ids.get(self._identity_key()) or None

    def token(self, deadline: float) -> Flow[IamToken]:
        """The connection's IAM token (password auth); a failure is that of a request never sent."""
        try:
            token: IamToken = yield FetchToken(self._token_key, self._token_request(), deadline)
        except AomError as exc:
            raise exc.not_sent() from None
        return token

    def project_id(self, override: str | None, deadline: float) -> Flow[str]:
        """The project id: the argument, the connection's, or resolved once from IAM."""
        known = self.known_project_id(override)
        if known:
            return known
        if self.config.auth_type == "password":
            token = yield from self.token(deadline)
            if not token.project_id:
                raise AomConfigurationError(
                    f"Connection {self.config.conn_id!r} (auth_type password): the IAM token names no "
                    "project; set extra.project_id."
                )
            project = check_project_id(token.project_id)
        else:
            region = self.config.region
            if not region:
                raise AomConfigurationError(
                    f"Connection {self.config.conn_id!r} (auth_type {self.config.auth_type}): set "
                    "extra.project_id, or extra.region to look it up."
                )
            request = api.list_projects(region)
            response = yield from self.call(request, None, deadline)
            project = api.parse_project_id(response, request, region)
        with RESOLVED.lock:
            RESOLVED.project_ids[self._identity_key()] = project
        return project

    def identity(self, deadline: float) -> Flow[Identity | None]:
        """The IAM user the connection acts as, or None when it cannot be known.

        ``extra.user_name`` when set; else from IAM, with calls any user may make about itself:
        the password token names its user; a static token is verified (``GET /v3/auth/tokens``);
        a permanent AK is looked up (``GET /v3.0/OS-CREDENTIAL/credentials/{ak}``, then
        ``GET /v3/users/{id}``). A temporary AK cannot be looked up. An answer from IAM (even a
        refusal) is kept for the process; a transport failure is not.
        """
        config = self.config
        if config.user_name:
            return Identity(frozenset({config.user_name}))
        key = self._identity_key()
        if key in RESOLVED.identities:
            return RESOLVED.identities[key]
        names: set[str | None] = set()
        if config.auth_type == "password":
            # Outside the try: a token that cannot be had fails the step (as any call would), it is not
            # an unknown user.
            token = yield from self.token(deadline)
            names.update((token.user_name, token.user_id))
        try:
            if config.auth_type == "token":
                request = api.verify_token(config.token or "")
                response = yield from self.call(request, None, deadline)
                names.update(api.parse_token_user(response, request))
            elif config.auth_type == "aksk" and not config.security_token:
                request = api.get_credential(config.access_key or "")
                response = yield from self.call(request, None, deadline)
                user_id = api.parse_credential_user_id(response, request)
                names.add(user_id)
                request = api.get_user(user_id)
                response = yield from self.call(request, None, deadline)
                names.update(api.parse_user(response, request))
        except AomError as exc:
            log.warning("Could not look up the IAM user of connection %r (%s).", config.conn_id, exc)
            if not isinstance(exc, AomApiError):
                # A transport failure says nothing about the user: look again next time.
                return Identity(frozenset(n for n in names if n)) if any(names) else None
        identity = Identity(frozenset(n for n in names if n)) if any(names) else None
        with RESOLVED.lock:
            RESOLVED.identities[key] = identity
        return identity

    # ------------------------------------------------------------------ preparation

    def prepare(
        self, request: ApiRequest, project_id: str | None, token: IamToken | None = None
    ) -> HttpRequest[ApiRequest]:
        """Build the URL and the final headers (signed for AK/SK)."""
        base = self.config.endpoint if request.service == "aom" else self.config.iam_endpoint
        if not base:
            raise AomConfigurationError(
                f"Connection {self.config.conn_id!r}: set extra.iam_endpoint or extra.region to reach IAM."
            )
        parts = urlsplit(base)
        path = parts.path + request.path
        url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{request.query}" if request.query else "")
        headers = {"Content-Type": JSON, "Host": parts.netloc, **request.headers}
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

    def _token_request(self) -> HttpRequest[ApiRequest]:
        # Built once per connection and reused: every call asks the token cache with it, and building it
        # (a JSON body, a URL) on each poll cost a triggerer a few percent of its CPU.
        if self._iam_request is None:
            self._iam_request = self._build_token_request()
        return self._iam_request

    def _build_token_request(self) -> HttpRequest[ApiRequest]:
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

    def _identity_key(self) -> str:
        config = self.config
        identity = config.access_key or self._token_key or hashlib.sha256((config.token or "").encode()).hexdigest()
        return "\x00".join([config.iam_endpoint, config.region or "", config.auth_type, identity])
