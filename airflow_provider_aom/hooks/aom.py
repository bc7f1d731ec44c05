"""``AomHook``: authenticated, synchronous calls to the Huawei Cloud AOM workflow API."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_aom import api
from airflow_provider_aom.api import ApiResponse
from airflow_provider_aom.config import CONN_TYPE, AomConnectionConfig
from airflow_provider_aom.exceptions import AomError, AomTransportError
from airflow_provider_aom.protocol import AomProtocol, FetchToken, Flow, HttpRequest

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)


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


def _host(request: HttpRequest) -> str:
    from urllib.parse import urlsplit

    return urlsplit(request.url).netloc


class AomHook(BaseHook):
    """
    Calls the Huawei Cloud AOM Automation (workflow) API.

    Authentication comes from the ``huaweicloud_aom`` connection: AK/SK request
    signing (optionally temporary keys), an IAM user password (token fetched
    from IAM, cached per process, renewed before expiry and on 401), or a
    static IAM token. See ``docs/connection.md``.

    :param aom_conn_id: Airflow connection id of type ``huaweicloud_aom``.
    """

    conn_name_attr = "aom_conn_id"
    default_conn_name = "aom_default"
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud AOM"

    def __init__(self, aom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aom_conn_id = aom_conn_id

    # ------------------------------------------------------------------ connection

    @cached_property
    def config(self) -> AomConnectionConfig:
        """The connection, validated (raises ``AomConfigurationError`` naming the bad field)."""
        return AomConnectionConfig.from_connection(self.get_connection(self.aom_conn_id))

    @cached_property
    def protocol(self) -> AomProtocol:
        return AomProtocol(self.config)

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
        result: str = self._run(self.protocol.project_id(project_id))
        return result

    def execute_workflow(self, workflow_id: str, project_id: str | None = None) -> str:
        """Start an execution of ``workflow_id``; returns its ``execution_id``."""
        project = self.get_project_id(project_id)
        request = api.execute_workflow(project, workflow_id)
        response = self._call(request, project)
        return api.parse_execution_id(response, request)

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
        api.check_success(self._call(request, project), request)

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
        response: ApiResponse = self._run(self.protocol.call(request, project_id))
        return response

    def _run(self, flow: Flow) -> Any:
        """Drive a protocol flow with ``requests``."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, FetchToken):
                    step = flow.send(self._token(step))
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
                cache.store(step.key, token)
        return token

    def _send(self, request: HttpRequest) -> ApiResponse:
        log.debug("%s %s", request.method, request.url)
        try:
            response = self.session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except Exception as exc:
            import requests

            if isinstance(exc, requests.exceptions.RequestException):
                raise _transport_error(exc, request) from None
            raise
        return ApiResponse.build(response.status_code, response.content, response.headers)
