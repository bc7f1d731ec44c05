"""Calls and plans as the steps a hook performs (airflow_provider_aom/call_flow.py), driven by a scripted driver.

Both hooks interpret the same flow; what is decided in it (retries and their pauses, which failures
re-send a submit, token failures counting as "never sent", 401 renewal, plans' steps) is tested
here once, without sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_aom import api, call_flow
from airflow_provider_aom.api import Identify, Pause, Plan, Settings
from airflow_provider_aom.auth.tokens import IamToken, TokenCache
from airflow_provider_aom.auth_flow import AomProtocol, FetchToken, Flow, Send
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import AomAmbiguousSubmitError, AomServerError, AomTransportError
from airflow_provider_aom.wire import ApiResponse
from tests.flows import run_steps, scripted

PROJECT = "0" * 32


def protocol(auth: str = "aksk", **extra: Any) -> AomProtocol:
    fields: dict[str, Any] = {"project_id": PROJECT, "region": "cn-north-4", "retry_max_wait": 0.01, **extra}
    if auth == "password":
        config = AomConnectionConfig.from_parts(
            conn_id="c", host="http://127.0.0.1:9", login="bot", password="pw", extra={"domain_name": "d", **fields}
        )
    else:
        config = AomConnectionConfig.from_parts(
            conn_id="c", host="http://127.0.0.1:9", login="AK", password="SK", extra=fields
        )
    return AomProtocol(config, TokenCache())


def token(value: str = "tok") -> IamToken:
    return IamToken(value, datetime.now(timezone.utc) + timedelta(hours=1), PROJECT)


def ok(body: bytes = b'{"execution_id": "e-1"}') -> ApiResponse:
    return ApiResponse(200, body, {})


def error(status: int) -> ApiResponse:
    return ApiResponse(status, b'{"error_code": "X", "error_msg": "no"}', {})


Answer = Callable[[Any], Any]


def drive(flow: Flow[Any], answer: Answer) -> tuple[Any, list[str]]:
    """Interpret a flow as the hooks do; returns its value and the kinds of step it made."""
    value, steps = run_steps(flow, answer)
    return value, [type(step).__name__ for step in steps]


def test_a_call_is_one_signed_send_and_its_parsed_answer() -> None:
    sent: list[Send] = []

    def answer(step: Any) -> Any:
        sent.append(step)
        return ok()

    value, steps = drive(call_flow.perform(protocol(), api.execute_workflow("wf")), answer)
    assert value == "e-1" and steps == ["Send"]
    assert "Authorization" in sent[0].request.headers and sent[0].request.url.endswith("/executions")


def test_a_read_is_retried_after_a_pause_on_a_transient_failure() -> None:
    flaky = scripted(AomTransportError("refused", sent=True), ok(b'{"status": "executing"}'))
    value, steps = drive(call_flow.perform(protocol(), api.get_execution("wf", "e-1")), flaky)
    assert value["status"] == "executing" and steps == ["Send", "Pause", "Send"]


def test_a_submit_is_resent_only_when_it_provably_was_not_sent() -> None:
    unsent = scripted(AomTransportError("refused", sent=False), ok())
    value, steps = drive(call_flow.perform(protocol(), api.execute_workflow("wf")), unsent)
    assert value == "e-1" and steps == ["Send", "Pause", "Send"]
    maybe = scripted(AomTransportError("dropped", sent=True), ok())
    with pytest.raises(AomTransportError):
        drive(call_flow.perform(protocol(), api.execute_workflow("wf")), maybe)


def test_a_token_that_cannot_be_had_fails_as_never_sent_and_leaves_the_original_error_alone() -> None:
    original = AomServerError(status=503, error_code="", error_msg="IAM down", request_id=None, action="token")
    answer = scripted(original, original, original, original, original)
    with pytest.raises(AomServerError) as raised:
        drive(call_flow.perform(protocol("password", retry_attempts=2), api.execute_workflow("wf")), answer)
    assert raised.value.before_send and raised.value is not original and not original.before_send
    assert str(raised.value) == str(original)


def test_a_submit_whose_token_failed_is_retried_though_submits_are_never_resent_blindly() -> None:
    down = AomServerError(status=503, error_code="", error_msg="IAM down", request_id=None, action="token")
    answer = scripted(down, token(), ok())
    value, steps = drive(call_flow.perform(protocol("password"), api.execute_workflow("wf")), answer)
    assert value == "e-1" and steps == ["FetchToken", "Pause", "FetchToken", "Send"]


def test_a_401_renews_the_token_and_resends_once() -> None:
    the_protocol = protocol("password")
    the_protocol.token_cache.store(the_protocol._token_key, token("old"))
    answer = scripted(token("old"), error(401), token("new"), ok())
    value, steps = drive(call_flow.perform(the_protocol, api.execute_workflow("wf")), answer)
    assert value == "e-1" and steps == ["FetchToken", "Send", "FetchToken", "Send"]
    assert the_protocol.token_cache.get(the_protocol._token_key) is None  # the refused one was dropped


def test_a_plan_gets_its_settings_pauses_and_failures() -> None:
    def plan() -> Plan[list[Any]]:
        seen: list[Any] = []
        settings = yield Settings()
        seen.append(settings.conn_id)
        yield Pause(1.5)
        try:
            yield api.execute_workflow("wf")
        except AomTransportError as exc:
            seen.append(f"thrown: {exc}")
        identity = yield Identify()
        seen.append(identity)
        return seen

    the_protocol = protocol(user_name="etl-bot")
    answer = scripted(AomTransportError("dropped", sent=True))
    value, steps = drive(call_flow.run(the_protocol, plan()), answer)
    assert value[0] == "c" and value[1].startswith("thrown: ") and value[2].names == frozenset({"etl-bot"})
    assert steps == ["Pause", "Send"]


def test_the_submit_plan_runs_on_the_same_steps() -> None:
    """An unclear submit answer makes the plan read the list instead of re-sending: one POST in all."""
    from airflow_provider_aom.submit import start_execution

    methods: list[str] = []
    answers = scripted(error(500), *[AomTransportError("list down", sent=True)] * 20)

    def answer(step: Any) -> Any:
        methods.append(step.request.method)
        return answers(step)

    with pytest.raises(AomAmbiguousSubmitError):
        drive(call_flow.run(protocol(retry_attempts=1), start_execution("wf")), answer)
    assert methods.count("POST") == 1 and methods.count("GET") >= 1


def test_the_project_id_needs_no_step_when_the_connection_names_it() -> None:
    value, steps = drive(call_flow.project_id(protocol()), scripted())
    assert value == PROJECT and steps == []


def test_a_fetch_token_step_carries_its_deadline() -> None:
    the_protocol = protocol("password")
    flow = the_protocol.token(123.0)
    step = next(flow)
    assert isinstance(step, FetchToken) and step.deadline == 123.0
