"""``AomHook``: authenticated, synchronous calls to the Huawei Cloud AOM workflow API."""

from __future__ import annotations

import logging
import re
import time
import weakref
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_aom import api
from airflow_provider_aom.api import ApiResponse
from airflow_provider_aom.config import CONN_TYPE, AomConnectionConfig
from airflow_provider_aom.exceptions import (
    AomAmbiguousSubmitError,
    AomError,
    AomInvalidResponseError,
    AomServerError,
    AomTransportError,
)
from airflow_provider_aom.protocol import AomProtocol, FetchToken, Flow, HttpRequest
from airflow_provider_aom.retry import retrying

if TYPE_CHECKING:
    import asyncio

    import httpx
    import requests
    from tenacity import Retrying

log = logging.getLogger(__name__)

_SUBJECT_TOKEN = re.compile(r"((?:b)?'x-subject-token', (?:b)?')[^']*(')", re.IGNORECASE)


class _HideSubjectToken(logging.Filter):
    """httpcore logs response headers at DEBUG, before the provider can mask a new IAM token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "subject-token" in record.msg.lower():
            record.msg = _SUBJECT_TOKEN.sub(r"\1***\2", record.msg)
        return True


logging.getLogger("httpcore.http11").addFilter(_HideSubjectToken())


def _transport_error(exc: Exception, request: HttpRequest) -> AomTransportError:
    """Classify a ``requests`` failure: could the request have reached the server?"""
    import requests
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    action = request.api.action
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return AomTransportError(f"{action}: timed out connecting to {_host(request)}.", sent=False)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return AomTransportError(f"{action}: no answer from {_host(request)} within the timeout.", sent=True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, (NewConnectionError, NameResolutionError)):
            return AomTransportError(
                f"{action}: could not connect to {_host(request)} ({type(reason).__name__}); check the "
                "connection's host/region and the network.",
                sent=False,
            )
        return AomTransportError(f"{action}: the connection to {_host(request)} broke before an answer.", sent=True)
    return AomTransportError(f"{action}: {type(exc).__name__} talking to {_host(request)}.", sent=True)


def _ambiguous(exc: AomError) -> bool:
    """A submit failure after which an execution may exist (sent, then no clear answer)."""
    if exc.before_send:
        return False
    return (isinstance(exc, AomTransportError) and exc.sent) or isinstance(
        exc, (AomServerError, AomInvalidResponseError)
    )


def _host(request: HttpRequest) -> str:
    from urllib.parse import urlsplit

    return urlsplit(request.url).netloc


class _AomBaseHook(BaseHook):
    """What the sync and async hooks share: the connection attributes Airflow registers."""

    conn_name_attr = "aom_conn_id"
    default_conn_name = "aom_default"
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud AOM"

    def __init__(self, aom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aom_conn_id = aom_conn_id


class AomHook(_AomBaseHook):
    """
    Calls the Huawei Cloud AOM Automation (workflow) API.

    Authentication comes from the ``huaweicloud_aom`` connection: AK/SK request
    signing (optionally temporary keys), an IAM user password (token fetched
    from IAM, cached per process, renewed before expiry and on 401), or a
    static IAM token. See ``docs/connection.md``.

    :param aom_conn_id: Airflow connection id of type ``huaweicloud_aom``.
    """

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (Airflow 2.11 to 3.1; 3.2+ reads ``conn-fields``)."""
        from airflow_provider_aom.connection_form import form_widgets

        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields (Airflow 2.11 to 3.1; 3.2+ reads ``ui-field-behaviour``)."""
        from airflow_provider_aom.connection_form import BEHAVIOUR

        return BEHAVIOUR

    # ------------------------------------------------------------------ connection

    @cached_property
    def config(self) -> AomConnectionConfig:
        """The connection, validated (raises ``AomConfigurationError`` naming the bad field)."""
        return AomConnectionConfig.from_connection(self.get_connection(self.aom_conn_id))

    @cached_property
    def protocol(self) -> AomProtocol:
        return AomProtocol(self.config)

    @cached_property
    def _read_retrying(self) -> Retrying:
        """The read retry policy, built once per hook (tenacity keeps each call's state thread-locally)."""
        return retrying(self.config.retry)

    @cached_property
    def session(self) -> requests.Session:
        """One ``requests.Session`` per hook, so calls reuse the TCP/TLS connection."""
        import requests

        session = requests.Session()
        session.verify = self.config.verify
        session.trust_env = self.config.proxies is None
        if self.config.proxies:
            session.proxies.update(self.config.proxies)
        return session

    # ------------------------------------------------------------------ public API

    def get_project_id(self, project_id: str | None = None) -> str:
        """The project id to use: ``project_id``, the connection's, or resolved from IAM once."""
        known = self.protocol.known_project_id(project_id)
        if known:
            return known
        for attempt in self._read_retrying:
            with attempt:
                result: str = self._run(self.protocol.project_id(project_id))
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def execute_workflow(self, workflow_id: str, project_id: str | None = None) -> str:
        """Start an execution of ``workflow_id``; returns its ``execution_id``.

        Never starts two executions by accident: the POST is re-sent only when it
        provably started nothing (connection never established, 429, expired
        token). After an ambiguous failure (read timeout, connection dropped after
        sending, 5xx) the workflow's executions are listed instead: exactly one
        that began since the submit is adopted; otherwise
        :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError` names
        the candidates and the task is not retried.
        """
        project = self.get_project_id(project_id)
        request = api.execute_workflow(project, workflow_id)
        submitted_at = time.time()
        try:
            for attempt in retrying(self.config.retry, submit=True):
                with attempt:
                    response = self._run(self.protocol.call(request, project))
                    return api.parse_execution_id(response, request)
        except AomError as exc:
            if not _ambiguous(exc):
                raise
            return self._reconcile_submit(workflow_id, project, submitted_at, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reconcile_submit(self, workflow_id: str, project: str, submitted_at: float, cause: AomError) -> str:
        """After an ambiguous submit, adopt the one execution that began since, or fail without re-sending."""
        since_ms = int((submitted_at - self.config.submit_clock_skew) * 1000)
        log.warning(
            "Submitting workflow %s failed ambiguously (%s); listing its executions to find out whether it started.",
            workflow_id,
            cause,
        )
        # A timeout or a broken connection may leave AOM still working on the POST: look again for a while.
        settle_until = time.monotonic() + (2 * self.config.timeout if isinstance(cause, AomTransportError) else 0)
        while True:
            try:
                executions = self.list_executions(workflow_id, project)
            except AomError as exc:
                raise AomAmbiguousSubmitError(
                    f"Submitting workflow {workflow_id!r} failed ({cause}) and the execution list could not be "
                    f"read ({exc}). An execution may have started: check the workflow's executions in the AOM "
                    "console before running the task again."
                ) from None
            candidates = [
                str(e.get("execution_id"))
                for e in executions
                if isinstance(e.get("begin_time"), (int, float))
                and e["begin_time"] >= since_ms
                and e.get("execution_id")
            ]
            if candidates or time.monotonic() >= settle_until:
                break
            time.sleep(min(1.0, self.config.timeout / 4))
        if len(candidates) == 1:
            log.warning(
                "Adopting execution %s of workflow %s: it is the only one that began since the ambiguous submit.",
                candidates[0],
                workflow_id,
            )
            return candidates[0]
        found = (
            f"executions that began since then: {', '.join(candidates)}"
            if candidates
            else "no execution began since then"
        )
        raise AomAmbiguousSubmitError(
            f"Submitting workflow {workflow_id!r} failed ambiguously ({cause}); {found}. An execution may have "
            "started (or may still appear): check the workflow's executions in the AOM console and run the task "
            "again only if none belongs to this submit. Nothing was re-sent."
        )

    def get_execution(self, workflow_id: str, execution_id: str, project_id: str | None = None) -> dict[str, Any]:
        """The execution detail (``status``, times, per-node ``execution_result_list`` …)."""
        project = self.get_project_id(project_id)
        request = api.get_execution(project, workflow_id, execution_id)
        return api.parse_execution(self._call(request, project), request)

    def list_executions(self, workflow_id: str, project_id: str | None = None) -> list[dict[str, Any]]:
        """The workflow's execution history (briefs)."""
        project = self.get_project_id(project_id)
        request = api.list_executions(project, workflow_id)
        return api.parse_execution_list(self._call(request, project), request)

    def terminate_execution(self, workflow_id: str, execution_id: str, project_id: str | None = None) -> None:
        """Ask AOM to stop a running execution."""
        project = self.get_project_id(project_id)
        request = api.terminate_execution(project, workflow_id, execution_id)
        self._call(request, project)

    def list_workflows(self, project_id: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Workflows of the project; ``filters`` are ``WorkflowQueryParam`` fields (search, type, page, size …)."""
        project = self.get_project_id(project_id)
        request = api.list_workflows(project, filters)
        return api.parse_workflow_list(self._call(request, project), request)

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check (lists one workflow); never starts anything."""
        try:
            project = self.get_project_id()
            workflows = self.list_workflows(page=1, size=1)
        except AomError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows the text; keep it from crashing the form
            return False, f"{type(exc).__name__}: {exc}"
        return True, (
            f"Connected to AOM at {self.config.endpoint} with {self.config.auth_type} auth, project "
            f"{project}; workflow list readable ({len(workflows)} shown)."
        )

    # ------------------------------------------------------------------ transport

    def _call(self, request: api.ApiRequest, project_id: str) -> ApiResponse:
        """An idempotent call answered with a 2xx; transient failures are retried per the connection's retry policy."""
        assert request.idempotent
        for attempt in self._read_retrying:
            with attempt:
                # Raised inside the attempt, so that the retry policy sees 429 and 5xx.
                return api.check_success(self._run(self.protocol.call(request, project_id)), request)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run(self, flow: Flow) -> Any:
        """Drive a protocol flow with ``requests``."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, FetchToken):
                    try:
                        token = self._token(step)
                    except AomError as exc:
                        # A token is fetched before each send: the request it was for never left.
                        exc.before_send = True
                        raise
                    step = flow.send(token)
                    continue
                try:
                    response = self._send(step)
                except AomTransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    def _token(self, step: FetchToken) -> Any:
        cache = self.protocol.token_cache
        token = cache.get(step.key)
        if token is not None:
            return token
        with cache.fetch_lock(step.key):
            token = cache.get(step.key)
            if token is None:
                from airflow_provider_aom.auth.tokens import parse_token_response

                log.info("Getting an IAM token for connection %r from %s", self.aom_conn_id, _host(step.http))
                token = parse_token_response(self._send(step.http), step.http.api)
                from airflow.providers.common.compat.sdk import mask_secret

                mask_secret(token.value)
                cache.store(step.key, token)
        return token

    def _send(self, request: HttpRequest) -> ApiResponse:
        log.debug("%s %s", request.method, request.url)
        try:
            response = self.session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except Exception as exc:
            import requests

            if isinstance(exc, requests.exceptions.RequestException):
                raise _transport_error(exc, request) from None
            raise
        return ApiResponse.build(response.status_code, response.content, response.headers)


# ---------------------------------------------------------------------------- async


class _AsyncShared:
    """Per event loop: one HTTP connection pool per transport setting, one token-fetch lock per identity.

    A triggerer runs all its triggers on one loop, so 1,000 waits share one pool
    (bounded sockets) and one token (one IAM call).
    """

    #: Upper bound of sockets one pool opens; waits beyond it queue for a connection.
    MAX_CONNECTIONS = 64

    def __init__(self) -> None:
        #: Per transport setting: the client, and MAX_CONNECTIONS request slots. Requests beyond the pool's
        #: size wait on the semaphore (an O(1) queue), not in httpcore's pool queue, which is rescanned on
        #: every connection event (CPU per request grows with the number of queued requests).
        self.clients: dict[tuple[Any, ...], tuple[httpx.AsyncClient, asyncio.Semaphore]] = {}
        self.locks: dict[str, Any] = {}


# Keyed weakly by event loop: a loop that is gone (``asyncio.run`` in tests) takes its pool with it.
_ASYNC_REGISTRY: weakref.WeakKeyDictionary[Any, _AsyncShared] = weakref.WeakKeyDictionary()


def _shared_for_loop() -> _AsyncShared:
    import asyncio

    loop = asyncio.get_running_loop()
    shared = _ASYNC_REGISTRY.get(loop)
    if shared is None:
        shared = _ASYNC_REGISTRY[loop] = _AsyncShared()
    return shared


def _async_transport_error(exc: Exception, request: HttpRequest) -> AomTransportError:
    """Classify an ``httpx`` failure like :func:`_transport_error` does for ``requests``."""
    import httpx

    action = request.api.action
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return AomTransportError(f"{action}: could not connect to {_host(request)} ({type(exc).__name__}).", sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return AomTransportError(f"{action}: no answer from {_host(request)} within the timeout.", sent=True)
    return AomTransportError(f"{action}: the connection to {_host(request)} broke before an answer.", sent=True)


class AomAsyncHook(_AomBaseHook):
    """
    Async counterpart of :class:`AomHook` for triggers: same auth, requests and
    parsing (the shared protocol), driven with ``httpx``. The connection is
    fetched asynchronously, never with a sync ``get_connection`` on the loop.

    :param aom_conn_id: Airflow connection id of type ``huaweicloud_aom``.
    """

    def __init__(self, aom_conn_id: str = _AomBaseHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(aom_conn_id, **kwargs)
        self._protocol: AomProtocol | None = None

    async def get_config(self) -> AomConnectionConfig:
        if self._protocol is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
            from asgiref.sync import sync_to_async

            conn = await get_async_connection(self.aom_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            # Parsing registers secrets with the masker, a sync call: keep it off the loop.
            config = await sync_to_async(AomConnectionConfig.from_parts)(
                conn_id=self.aom_conn_id, host=conn.host, login=conn.login, password=conn.password, extra=extra
            )
            self._protocol = AomProtocol(config)
        return self._protocol.config

    async def _get_protocol(self) -> AomProtocol:
        await self.get_config()
        assert self._protocol is not None
        return self._protocol

    # ------------------------------------------------------------------ public API

    async def get_project_id(self, project_id: str | None = None) -> str:
        protocol = await self._get_protocol()
        known = protocol.known_project_id(project_id)
        if known:
            return known
        result: str = await self._retry_read(lambda: self._arun(protocol.project_id(project_id)))
        return result

    async def get_execution(self, workflow_id: str, execution_id: str, project_id: str | None = None) -> dict[str, Any]:
        project = await self.get_project_id(project_id)
        request = api.get_execution(project, workflow_id, execution_id)
        return api.parse_execution(await self._call(request, project), request)

    async def list_executions(self, workflow_id: str, project_id: str | None = None) -> list[dict[str, Any]]:
        project = await self.get_project_id(project_id)
        request = api.list_executions(project, workflow_id)
        return api.parse_execution_list(await self._call(request, project), request)

    async def terminate_execution(self, workflow_id: str, execution_id: str, project_id: str | None = None) -> None:
        project = await self.get_project_id(project_id)
        request = api.terminate_execution(project, workflow_id, execution_id)
        await self._call(request, project)

    # ------------------------------------------------------------------ transport

    async def _call(self, request: api.ApiRequest, project_id: str) -> ApiResponse:
        assert request.idempotent
        protocol = await self._get_protocol()

        async def once() -> ApiResponse:
            return api.check_success(await self._arun(protocol.call(request, project_id)), request)

        result: ApiResponse = await self._retry_read(once)
        return result

    async def _retry_read(self, func: Any) -> Any:
        from airflow_provider_aom.retry import async_retrying

        config = await self.get_config()
        async for attempt in async_retrying(config.retry):
            with attempt:
                return await func()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arun(self, flow: Flow) -> Any:
        """Drive a protocol flow with ``httpx`` (same flows as the sync hook)."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, FetchToken):
                    step = flow.send(await self._token(step))
                    continue
                try:
                    response = await self._send(step)
                except AomTransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    async def _token(self, step: FetchToken) -> Any:
        import asyncio

        from airflow.providers.common.compat.sdk import mask_secret
        from asgiref.sync import sync_to_async

        from airflow_provider_aom.auth.tokens import parse_token_response

        protocol = await self._get_protocol()
        cache = protocol.token_cache
        token = cache.get(step.key)
        if token is not None:
            return token
        shared = _shared_for_loop()
        lock = shared.locks.setdefault(step.key, asyncio.Lock())
        async with lock:
            token = cache.get(step.key)
            if token is None:
                log.info("Getting an IAM token for connection %r from %s", self.aom_conn_id, _host(step.http))
                token = parse_token_response(await self._send(step.http), step.http.api)
                await sync_to_async(mask_secret)(token.value)
                cache.store(step.key, token)
        return token

    async def _pool(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The loop's shared client for this connection's transport settings, and its request slots."""
        import asyncio
        import ssl

        import httpx

        config = await self.get_config()
        key = (config.verify, tuple(sorted((config.proxies or {}).items())), config.timeout)
        shared = _shared_for_loop()
        pool = shared.clients.get(key)
        if pool is None:
            verify: Any = (
                ssl.create_default_context(cafile=config.verify) if isinstance(config.verify, str) else config.verify
            )
            mounts = (
                {
                    f"{scheme}://": httpx.AsyncHTTPTransport(proxy=url, verify=verify)
                    for scheme, url in config.proxies.items()
                }
                if config.proxies
                else None
            )
            client = httpx.AsyncClient(
                verify=verify,
                mounts=mounts,
                trust_env=config.proxies is None,
                timeout=httpx.Timeout(config.timeout),
                limits=httpx.Limits(
                    max_connections=_AsyncShared.MAX_CONNECTIONS,
                    max_keepalive_connections=_AsyncShared.MAX_CONNECTIONS,
                ),
                follow_redirects=False,
            )
            pool = shared.clients[key] = (client, asyncio.Semaphore(_AsyncShared.MAX_CONNECTIONS))
        return pool

    async def _send(self, request: HttpRequest) -> ApiResponse:
        import httpx

        client, slots = await self._pool()
        log.debug("%s %s", request.method, request.url)
        try:
            async with slots:
                response = await client.request(
                    request.method, request.url, headers=request.headers, content=request.body or None
                )
        except httpx.HTTPError as exc:
            raise _async_transport_error(exc, request) from None
        return ApiResponse.build(response.status_code, response.content, response.headers)
