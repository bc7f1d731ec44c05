"""``AomHook`` and ``AomAsyncHook``: authenticated calls to the Huawei Cloud AOM workflow API.

Both hooks offer the same calls, declared once as :class:`verb` entries on their shared base:
``AomHook().get_execution(...)`` returns the detail, ``await AomAsyncHook().get_execution(...)``
too. Underneath, a call or a plan becomes one flow of three kinds of step (send, fetch a token,
pause: :mod:`~airflow_provider_aom.call_flow` over :mod:`~airflow_provider_aom.auth_flow`), and each
hook has one interpreter of those steps (``_drive``) over the same transport rules
(:mod:`~airflow_provider_aom.transport`); only the way they wait differs.

Every call takes an optional ``deadline`` (epoch seconds, ``time.time()`` scale): the call,
retries included, ends by then. Without one it ends within ``retry_total`` seconds; each HTTP
exchange within ``timeout`` seconds (connect, send and the whole answer).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_aom import CONN_TYPE, DEFAULT_CONN_ID, api, call_flow, node_ops, submit
from airflow_provider_aom.api import ApiRequest, Call, Plan
from airflow_provider_aom.auth.tokens import parse_token_response
from airflow_provider_aom.auth_flow import AomProtocol, FetchToken, Flow, Send
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomError
from airflow_provider_aom.wire import ApiResponse, HttpRequest

if TYPE_CHECKING:
    from airflow_provider_aom.auth.tokens import IamToken
    from airflow_provider_aom.transport import AsyncTransport, SyncTransport, TransportSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


def _host(request: HttpRequest[ApiRequest]) -> str:
    return escape(urlsplit(request.url).netloc, 300)


class verb(Generic[P, T]):
    """An AOM call offered by both hooks: ``AomHook`` returns its result, ``AomAsyncHook`` a coroutine of it.

    ``build`` turns the method's arguments into a :class:`~airflow_provider_aom.api.Call` (one
    request) or a :data:`~airflow_provider_aom.api.Plan` (several, and the decisions between them);
    its signature and docstring are the method's.
    """

    def __init__(self, build: Callable[P, Call[T] | Plan[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, hook: None, owner: type[Any]) -> verb[P, T]: ...

    @overload
    def __get__(self, hook: AomHook, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(self, hook: AomAsyncHook, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, hook: Any, owner: type[Any]) -> Any:
        if hook is None:
            return self
        build = self.build

        @functools.wraps(build)
        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            work = build(*args, **kwargs)
            return hook.perform(work) if isinstance(work, Call) else hook.run(work)

        return bound


class _AomBaseHook(BaseHook):
    """What the sync and async hooks share: the connection attributes Airflow registers, and the calls."""

    conn_name_attr = "aom_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud AOM"

    start_execution = verb(submit.start_execution)
    get_execution = verb(api.get_execution)
    list_executions = verb(api.list_executions)
    terminate_execution = verb(api.terminate_execution)
    terminate_when_reachable = verb(node_ops.terminate_when_reachable)
    operate_execution = verb(node_ops.operate_execution)
    list_workflows = verb(api.list_workflows)
    find_workflow = verb(api.find_workflow)
    set_workflow_trigger = verb(api.set_workflow_trigger)

    def __init__(self, aom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aom_conn_id = aom_conn_id

    @staticmethod
    def _transport_settings(config: AomConnectionConfig) -> TransportSettings:
        from airflow_provider_aom.transport import TransportSettings

        return TransportSettings(
            verify=config.verify,
            proxies=config.proxies,
            timeout=config.timeout,
            max_body_bytes=config.max_response_bytes,
            max_streamed_body_bytes=config.max_list_bytes,
        )


class AomHook(_AomBaseHook):
    """
    Calls the Huawei Cloud AOM Automation (workflow) API.

    Authentication comes from the ``huaweicloud_aom`` connection: AK/SK request
    signing (optionally temporary keys), an IAM user password (token fetched
    from IAM, cached per process, renewed before expiry and on 401), or a
    static IAM token. See ``docs/connection.md``. ``close()`` (or ``with AomHook() as hook``)
    closes its sockets.

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
        import copy

        from airflow_provider_aom.connection_form import BEHAVIOUR

        # A copy: Airflow 2.11 prefixes the placeholders' keys with extra__huaweicloud_aom__ in place.
        return copy.deepcopy(BEHAVIOUR)

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

    def close(self) -> None:
        """Close this hook's sockets; a later call opens new ones."""
        transport: SyncTransport | None = self.__dict__.pop("transport", None)
        if transport is not None:
            transport.close()

    def __enter__(self) -> AomHook:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def get_project_id(self, project_id: str | None = None, *, deadline: float | None = None) -> str:
        """The project id to use: ``project_id``, the connection's, or resolved from IAM once."""
        return self._drive(call_flow.project_id(self.protocol, project_id, deadline))

    def execute_workflow(self, workflow_id: str, project_id: str | None = None) -> str:
        """Start an execution of ``workflow_id``; returns its ``execution_id`` (see :meth:`start_execution`)."""
        return self.start_execution(workflow_id, project_id).execution_id

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

    # ------------------------------------------------------------------ calls and plans

    def perform(self, call: Call[T]) -> T:
        """Make one call: resolve the project, send with retries as the call allows, parse the answer."""
        return self._drive(call_flow.perform(self.protocol, call))

    def run(self, plan: Plan[T]) -> T:
        """Run a plan: each call it yields is performed, each pause slept, and the outcome sent back."""
        return self._drive(call_flow.run(self.protocol, plan))

    def _drive(self, flow: Flow[T]) -> T:
        """The sync interpreter: perform each step of ``flow`` (blocking) and hand back its result or failure."""
        try:
            step = next(flow)
            while True:
                try:
                    result: Any
                    if isinstance(step, Send):
                        result = self._send(step.request, step.deadline)
                    elif isinstance(step, FetchToken):
                        result = self._token(step, step.deadline)
                    else:
                        time.sleep(step.seconds)
                        result = None
                except AomError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(result)
        except StopIteration as stop:
            outcome: T = stop.value
            return outcome

    def _token(self, step: FetchToken, deadline: float) -> IamToken:
        cache = self.protocol.token_cache
        token = cache.get(step.key)
        if token is not None:
            return token
        with cache.fetch_lock(step.key):
            token = cache.get(step.key)
            if token is None:
                log.info("Getting an IAM token for connection %r from %s", self.aom_conn_id, _host(step.http))
                token = parse_token_response(self._send(step.http, deadline), step.http.api)
                mask_secret(token.value)
                cache.store(step.key, token)
        return token

    def _send(self, request: HttpRequest[ApiRequest], deadline: float) -> ApiResponse:
        log.debug("%s %s", request.method, request.url)
        return self.transport.send(request, min(deadline, time.monotonic() + self.config.timeout))


# ---------------------------------------------------------------------------- async

# Per event loop, one token-fetch lock per identity, so concurrent triggers make one IAM call.
_TOKEN_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


class AomAsyncHook(_AomBaseHook):
    """
    Async counterpart of :class:`AomHook` for triggers: the same calls as coroutines, with the
    same auth, requests, parsing, transport rules and retries. The connection is fetched
    asynchronously, never with a sync ``get_connection`` on the loop. Every hook on a loop
    shares the loop's connection pools (bounded per endpoint host) and tokens; ``aclose()`` (or
    ``async with AomAsyncHook() as hook``) lets go of them.

    :param aom_conn_id: Airflow connection id of type ``huaweicloud_aom``.
    """

    def __init__(self, aom_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
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

    async def aclose(self) -> None:
        """Let go of the loop's shared pools: the last hook on the loop to do so closes their sockets.

        Other hooks on the loop keep theirs (see :mod:`~airflow_provider_aom.transport`); this hook
        may still be used, and takes the pools up again.
        """
        if self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> AomAsyncHook:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ public API

    async def get_project_id(self, project_id: str | None = None, *, deadline: float | None = None) -> str:
        """The project id to use, as :meth:`AomHook.get_project_id` says."""
        return await self._drive(call_flow.project_id(await self._get_protocol(), project_id, deadline))

    # ------------------------------------------------------------------ calls and plans

    async def perform(self, call: Call[T]) -> T:
        """Make one call, as :meth:`AomHook.perform` does."""
        return await self._drive(call_flow.perform(await self._get_protocol(), call))

    async def run(self, plan: Plan[T]) -> T:
        """Run a plan, as :meth:`AomHook.run` does."""
        return await self._drive(call_flow.run(await self._get_protocol(), plan))

    async def _drive(self, flow: Flow[T]) -> T:
        """The async interpreter: the same steps as :meth:`AomHook._drive`, awaited on the loop."""
        try:
            step = next(flow)
            while True:
                try:
                    result: Any
                    if isinstance(step, Send):
                        result = await self._send(step.request, step.deadline)
                    elif isinstance(step, FetchToken):
                        result = await self._token(step, step.deadline)
                    else:
                        await asyncio.sleep(step.seconds)
                        result = None
                except AomError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(result)
        except StopIteration as stop:
            outcome: T = stop.value
            return outcome

    async def _token(self, step: FetchToken, deadline: float) -> IamToken:
        from asgiref.sync import sync_to_async

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

    async def _send(self, request: HttpRequest[ApiRequest], deadline: float) -> ApiResponse:
        protocol = await self._get_protocol()
        assert self._transport is not None
        log.debug("%s %s", request.method, request.url)
        return await self._transport.send(request, min(deadline, time.monotonic() + protocol.config.timeout))
