"""``AomHook`` and ``AomAsyncHook``: authenticated calls to the Huawei Cloud AOM workflow API.

Both hooks drive the same protocol flows (:mod:`~airflow_provider_aom.protocol`) over the same
transport rules (:mod:`~airflow_provider_aom.transport`) with the same retry schedule
(:mod:`~airflow_provider_aom.retry`); only the way they wait differs.

Every public call takes an optional ``deadline`` (epoch seconds, ``time.time()`` scale): the
call, retries included, ends by then. Without one it ends within ``retry_total`` seconds;
each HTTP exchange within ``timeout`` seconds (connect, send and the whole answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_aom import api, reconcile
from airflow_provider_aom.api import ApiRequest, ApiResponse
from airflow_provider_aom.config import CONN_TYPE, AomConnectionConfig
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import (
    AomAmbiguousSubmitError,
    AomError,
    AomInvalidResponseError,
    AomServerError,
    AomTransportError,
)
from airflow_provider_aom.protocol import AomProtocol, FetchToken, Flow, HttpRequest
from airflow_provider_aom.reconcile import StartedExecution, SubmitWindow
from airflow_provider_aom.retry import RetrySchedule, is_safe_to_resend_submit, is_transient

if TYPE_CHECKING:
    from airflow_provider_aom.auth.tokens import IamToken
    from airflow_provider_aom.transport import AsyncTransport, SyncTransport

log = logging.getLogger(__name__)

T = TypeVar("T")


def _monotonic(deadline: float | None) -> float | None:
    """An epoch-seconds deadline on the monotonic clock (what the transport and retries count with)."""
    return None if deadline is None else time.monotonic() + (deadline - time.time())


def _ambiguous(exc: AomError) -> bool:
    """A submit failure after which an execution may exist (sent, then no clear answer)."""
    if exc.before_send:
        return False
    return (isinstance(exc, AomTransportError) and exc.sent) or isinstance(
        exc, (AomServerError, AomInvalidResponseError)
    )


def _parse_listing(response: ApiResponse, request: ApiRequest) -> tuple[list[dict[str, Any]], float | None]:
    """The execution list and AOM's clock offset, measured as the answer arrived."""
    return api.parse_execution_list(response, request), reconcile.server_clock_offset(response, time.time())


def _settle_seconds(cause: AomError, config: AomConnectionConfig) -> float:
    # A timeout or a broken connection may leave AOM still working on the POST: look again for a while.
    return 2 * config.timeout if isinstance(cause, AomTransportError) else 0.0


class _AomBaseHook(BaseHook):
    """What the sync and async hooks share: the connection attributes Airflow registers."""

    conn_name_attr = "aom_conn_id"
    default_conn_name = "aom_default"
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud AOM"

    def __init__(self, aom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aom_conn_id = aom_conn_id

    @staticmethod
    def _transport_settings(config: AomConnectionConfig) -> Any:
        from airflow_provider_aom.transport import TransportSettings

        return TransportSettings(
            verify=config.verify,
            proxies=config.proxies,
            timeout=config.timeout,
            max_body_bytes=config.max_response_bytes,
        )


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
    def transport(self) -> SyncTransport:
        """This hook's HTTP pools (one per endpoint host), so calls reuse TCP/TLS connections."""
        from airflow_provider_aom.transport import SyncTransport

        return SyncTransport(self._transport_settings(self.config))

    # ------------------------------------------------------------------ public API

    def get_project_id(self, project_id: str | None = None, *, deadline: float | None = None) -> str:
        """The project id to use: ``project_id``, the connection's, or resolved from IAM once."""
        known = self.protocol.known_project_id(project_id)
        if known:
            return known
        return self._retry(lambda until: self._run(self.protocol.project_id(project_id), until), deadline)

    def execute_workflow(self, workflow_id: str, project_id: str | None = None) -> str:
        """Start an execution of ``workflow_id``; returns its ``execution_id`` (see :meth:`start_execution`)."""
        return self.start_execution(workflow_id, project_id).execution_id

    def start_execution(self, workflow_id: str, project_id: str | None = None) -> StartedExecution:
        """Start an execution of ``workflow_id``; returns its id and whether this call can show it started it.

        Never starts two executions by accident: the POST is re-sent only when it
        provably started nothing (no byte of it sent, 429, expired token). After an
        ambiguous failure (no answer, connection dropped after sending, 5xx, a garbled
        200) the workflow's executions are listed instead (:mod:`~airflow_provider_aom.reconcile`):
        exactly one that began since the submit, on AOM's clock, and was not created by
        another user, is adopted; otherwise
        :class:`~airflow_provider_aom.exceptions.AomAmbiguousSubmitError` names the
        candidates and the task is not retried.
        """
        project = self.get_project_id(project_id)
        request = api.execute_workflow(project, workflow_id)
        window = SubmitWindow(time.time(), self.config.submit_clock_skew)
        try:
            execution_id = self._retry(
                lambda until: api.parse_execution_id(self._run(self.protocol.call(request, project), until), request),
                None,
                retryable=is_safe_to_resend_submit,
            )
        except AomError as exc:
            if not _ambiguous(exc):
                raise
            return self._reconcile_submit(workflow_id, project, window, exc)
        return StartedExecution(execution_id)

    def _reconcile_submit(
        self, workflow_id: str, project: str, window: SubmitWindow, cause: AomError
    ) -> StartedExecution:
        """After an ambiguous submit, adopt the one execution it can have started, or fail without re-sending."""
        log.warning(
            "Submitting workflow %s failed ambiguously (%s); listing its executions to find out whether it started.",
            escape(workflow_id, 64),
            cause,
        )
        request = api.list_executions(project, workflow_id)
        settle_until = time.monotonic() + _settle_seconds(cause, self.config)
        while True:
            try:
                executions, offset = self._read(request, project, _parse_listing)
            except AomError as exc:
                raise AomAmbiguousSubmitError(reconcile.unreadable_message(workflow_id, cause, exc)) from None
            candidates = reconcile.in_window(executions, window.bounds(offset, time.time()))
            if candidates or time.monotonic() >= settle_until:
                break
            time.sleep(min(1.0, self.config.timeout / 4))
        identity = None
        if reconcile.needs_identity(candidates):
            identity = self._run(self.protocol.identity(), time.monotonic() + self.config.retry.total)
        verdict = reconcile.decide(candidates, identity)
        if verdict.adopted is None:
            raise AomAmbiguousSubmitError(reconcile.ambiguous_message(workflow_id, cause, verdict))
        log.warning("%s", reconcile.adoption_note(workflow_id, verdict))
        return StartedExecution(verdict.adopted.execution_id, owned=verdict.owned, adopted=True)

    def get_execution(
        self, workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """The execution detail (``status``, times, per-node ``execution_result_list`` …), validated."""
        project = self.get_project_id(project_id, deadline=deadline)
        return self._read(api.get_execution(project, workflow_id, execution_id), project, api.parse_execution, deadline)

    def list_executions(
        self, workflow_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        """The workflow's execution history (briefs)."""
        project = self.get_project_id(project_id, deadline=deadline)
        return self._read(api.list_executions(project, workflow_id), project, api.parse_execution_list, deadline)

    def terminate_execution(
        self, workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> None:
        """Ask AOM to stop a running execution."""
        project = self.get_project_id(project_id, deadline=deadline)
        self._read(api.terminate_execution(project, workflow_id, execution_id), project, api.check_success, deadline)

    def list_workflows(self, project_id: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Workflows of the project; ``filters`` are ``WorkflowQueryParam`` fields (search, type, page, size …)."""
        project = self.get_project_id(project_id)
        return self._read(api.list_workflows(project, filters), project, api.parse_workflow_list)

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check (lists one workflow); never starts anything."""
        try:
            project = self.get_project_id()
            workflows = self.list_workflows(page=1, size=1)
        except AomError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows the text; keep it from crashing the form
            return False, f"{type(exc).__name__}: {escape(exc)}"
        return True, (
            f"Connected to AOM at {self.config.endpoint} with {self.config.auth_type} auth, project "
            f"{project}; workflow list readable ({len(workflows)} shown)."
        )

    # ------------------------------------------------------------------ transport

    def _read(
        self,
        request: ApiRequest,
        project_id: str,
        parse: Callable[[ApiResponse, ApiRequest], T],
        deadline: float | None = None,
    ) -> T:
        """An idempotent call, answered with a 2xx and parsed; transient failures retried per the connection."""
        assert request.idempotent
        return self._retry(
            lambda until: parse(
                api.check_success(self._run(self.protocol.call(request, project_id), until), request), request
            ),
            deadline,
        )

    def _retry(
        self,
        attempt: Callable[[float], T],
        deadline: float | None,
        retryable: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """Run ``attempt(call_deadline)`` until it succeeds or the schedule gives up."""
        schedule = RetrySchedule(self.config.retry, retryable=retryable or is_transient, deadline=_monotonic(deadline))
        while True:
            try:
                return attempt(schedule.deadline)
            except AomError as exc:
                pause = schedule.pause_after(exc)
                if pause is None:
                    raise
                time.sleep(pause)

    def _run(self, flow: Flow[T], deadline: float) -> T:
        """Drive a protocol flow; every exchange ends by ``deadline`` (monotonic)."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, FetchToken):
                    try:
                        token = self._token(step, deadline)
                    except AomError as exc:
                        # A token is fetched before each send: the request it was for never left.
                        exc.before_send = True
                        raise
                    step = flow.send(token)
                    continue
                try:
                    response = self._send(step, deadline)
                except AomTransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _token(self, step: FetchToken, deadline: float) -> IamToken:
        cache = self.protocol.token_cache
        token = cache.get(step.key)
        if token is not None:
            return token
        with cache.fetch_lock(step.key):
            token = cache.get(step.key)
            if token is None:
                from airflow.providers.common.compat.sdk import mask_secret

                from airflow_provider_aom.auth.tokens import parse_token_response

                log.info("Getting an IAM token for connection %r from %s", self.aom_conn_id, _host(step.http))
                token = parse_token_response(self._send(step.http, deadline), step.http.api)
                mask_secret(token.value)
                cache.store(step.key, token)
        return token

    def _send(self, request: HttpRequest, deadline: float) -> ApiResponse:
        log.debug("%s %s", request.method, request.url)
        return self.transport.send(request, min(deadline, time.monotonic() + self.config.timeout))


def _host(request: HttpRequest) -> str:
    from urllib.parse import urlsplit

    return escape(urlsplit(request.url).netloc, 300)


# ---------------------------------------------------------------------------- async

# Per event loop, one token-fetch lock per identity, so concurrent triggers make one IAM call.
_TOKEN_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


class AomAsyncHook(_AomBaseHook):
    """
    Async counterpart of :class:`AomHook` for triggers: same auth, requests, parsing,
    transport rules and retries (the shared protocol), on the event loop. The connection
    is fetched asynchronously, never with a sync ``get_connection`` on the loop. Every hook
    on a loop shares the loop's connection pools (bounded per endpoint host) and tokens.

    :param aom_conn_id: Airflow connection id of type ``huaweicloud_aom``.
    """

    def __init__(self, aom_conn_id: str = _AomBaseHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(aom_conn_id, **kwargs)
        self._protocol: AomProtocol | None = None
        self._transport: AsyncTransport | None = None

    async def get_config(self) -> AomConnectionConfig:
        return (await self._get_protocol()).config

    async def _get_protocol(self) -> AomProtocol:
        if self._protocol is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
            from asgiref.sync import sync_to_async

            from airflow_provider_aom.transport import AsyncTransport

            conn = await get_async_connection(self.aom_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            # Parsing registers secrets with the masker, a sync call: keep it off the loop.
            config = await sync_to_async(AomConnectionConfig.from_parts)(
                conn_id=self.aom_conn_id, host=conn.host, login=conn.login, password=conn.password, extra=extra
            )
            self._transport = AsyncTransport(self._transport_settings(config))
            self._protocol = AomProtocol(config)
        return self._protocol

    # ------------------------------------------------------------------ public API

    async def get_project_id(self, project_id: str | None = None, *, deadline: float | None = None) -> str:
        protocol = await self._get_protocol()
        known = protocol.known_project_id(project_id)
        if known:
            return known
        return await self._retry(lambda until: self._run(protocol.project_id(project_id), until), deadline)

    async def get_execution(
        self, workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        project = await self.get_project_id(project_id, deadline=deadline)
        request = api.get_execution(project, workflow_id, execution_id)
        return await self._read(request, project, api.parse_execution, deadline)

    async def list_executions(
        self, workflow_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        project = await self.get_project_id(project_id, deadline=deadline)
        return await self._read(api.list_executions(project, workflow_id), project, api.parse_execution_list, deadline)

    async def terminate_execution(
        self, workflow_id: str, execution_id: str, project_id: str | None = None, *, deadline: float | None = None
    ) -> None:
        project = await self.get_project_id(project_id, deadline=deadline)
        request = api.terminate_execution(project, workflow_id, execution_id)
        await self._read(request, project, api.check_success, deadline)

    # ------------------------------------------------------------------ transport

    async def _read(
        self,
        request: ApiRequest,
        project_id: str,
        parse: Callable[[ApiResponse, ApiRequest], T],
        deadline: float | None = None,
    ) -> T:
        assert request.idempotent
        protocol = await self._get_protocol()

        async def once(until: float) -> T:
            return parse(
                api.check_success(await self._run(protocol.call(request, project_id), until), request), request
            )

        return await self._retry(once, deadline)

    async def _retry(self, attempt: Callable[[float], Awaitable[T]], deadline: float | None) -> T:
        config = await self.get_config()
        schedule = RetrySchedule(config.retry, deadline=_monotonic(deadline))
        while True:
            try:
                return await attempt(schedule.deadline)
            except AomError as exc:
                pause = schedule.pause_after(exc)
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    async def _run(self, flow: Flow[T], deadline: float) -> T:
        """Drive a protocol flow on the loop (the same flows as the sync hook)."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, FetchToken):
                    try:
                        token = await self._token(step, deadline)
                    except AomError as exc:
                        exc.before_send = True
                        raise
                    step = flow.send(token)
                    continue
                try:
                    response = await self._send(step, deadline)
                except AomTransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _token(self, step: FetchToken, deadline: float) -> IamToken:
        from airflow.providers.common.compat.sdk import mask_secret
        from asgiref.sync import sync_to_async

        from airflow_provider_aom.auth.tokens import parse_token_response

        protocol = await self._get_protocol()
        cache = protocol.token_cache
        token = cache.get(step.key)
        if token is not None:
            return token
        locks = _TOKEN_LOCKS.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(step.key, asyncio.Lock()):
            token = cache.get(step.key)
            if token is None:
                log.info("Getting an IAM token for connection %r from %s", self.aom_conn_id, _host(step.http))
                token = parse_token_response(await self._send(step.http, deadline), step.http.api)
                await sync_to_async(mask_secret)(token.value)
                cache.store(step.key, token)
        return token

    async def _send(self, request: HttpRequest, deadline: float) -> ApiResponse:
        protocol = await self._get_protocol()
        assert self._transport is not None
        log.debug("%s %s", request.method, request.url)
        return await self._transport.send(request, min(deadline, time.monotonic() + protocol.config.timeout))
