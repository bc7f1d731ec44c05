"""The auth flows of one connection (airflow_provider_aom/auth_flow.py), driven by a scripted driver.

``AomProtocol.prepare`` (the final headers per auth type), ``call`` (a 401 renews the token once),
``token`` (a failure is that of a request never sent), ``project_id`` (argument, connection, or
resolved once from IAM) and ``identity`` (who the connection acts as, and what is remembered of it).
No sockets: each step the flows yield is answered from a script.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_aom import api
from airflow_provider_aom.api import ApiRequest
from airflow_provider_aom.auth.signer import canonical_request, compute_signature, parse_authorization, string_to_sign
from airflow_provider_aom.auth.tokens import IamToken, TokenCache
from airflow_provider_aom.auth_flow import RESOLVED, AomProtocol, FetchToken, Flow, Identity, Send
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import (
    AomConfigurationError,
    AomServerError,
    AomTransportError,
)
from airflow_provider_aom.wire import ApiResponse
from tests.flows import run_steps, scripted

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "f" * 32
AOM = "http://127.0.0.1:9"
IAM = "http://127.0.0.1:8"
ME, MY_ID = "etl-bot", "user-id-1"


@pytest.fixture(autouse=True)
def resolved() -> Iterator[None]:
    """Project ids and identities are resolved once per process: every test starts with none."""
    RESOLVED.clear()
    yield
    RESOLVED.clear()


def config(auth: str = "aksk", *, project: str | None = PROJECT, **extra: Any) -> AomConnectionConfig:
    fields: dict[str, Any] = {"auth_type": auth, "region": "cn-north-4", "iam_endpoint": IAM, **extra}
    if project:
        fields["project_id"] = project
    login, password = {"aksk": ("AK", "SK"), "password": ("bot", "pw"), "token": (None, "MIItoken")}[auth]
    if auth == "password":
        fields.setdefault("domain_name", "acme")
    return AomConnectionConfig.from_parts(conn_id="c", host=AOM, login=login, password=password, extra=fields)


def protocol(auth: str = "aksk", **kwargs: Any) -> AomProtocol:
    return AomProtocol(config(auth, **kwargs), TokenCache())


def token(value: str = "tok", project: str | None = PROJECT, **kwargs: Any) -> IamToken:
    return IamToken(value, datetime.now(timezone.utc) + timedelta(hours=1), project, **kwargs)


def answer_json(body: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, json.dumps(body).encode(), {})


def error(status: int) -> ApiResponse:
    return answer_json({"error_code": "X", "error_msg": "no"}, status)


def aom_request() -> ApiRequest:
    return api.get_execution("wf", "e-1").request(PROJECT)


# --------------------------------------------------------------------------- a scripted driver

Answer = Callable[[Any], Any]


def drive(flow: Flow[Any], answer: Answer) -> tuple[Any, list[Any]]:
    """Interpret a flow as the hooks do; returns its value and the steps it made."""
    return run_steps(flow, answer)


def kinds(steps: list[Any]) -> list[str]:
    return [type(step).__name__ for step in steps]


def targets(steps: list[Any]) -> list[str]:
    """``METHOD url`` of every Send step."""
    return [f"{s.request.method} {s.request.url}" for s in steps if isinstance(s, Send)]


# --------------------------------------------------------------------------- prepare(): the final headers


def assert_signed(headers: dict[str, str], method: str, path: str, query: str, body: bytes = b"") -> list[str]:
    """The Authorization header is a valid signature, by SK, of the headers it names; returns their names."""
    parsed = parse_authorization(headers["Authorization"])
    assert parsed is not None and parsed.access_key == "AK"
    canonical = canonical_request(method, path, query, headers, parsed.signed_headers, body)
    assert parsed.signature == compute_signature("SK", string_to_sign(canonical, headers["X-Sdk-Date"]))
    return parsed.signed_headers


def test_aksk_signs_and_sends_the_project_header_only_to_aom() -> None:
    the_protocol = protocol("aksk")
    request = aom_request()
    prepared = the_protocol.prepare(request, PROJECT)
    assert prepared.url == f"{AOM}{request.path}"
    assert prepared.headers["X-Project-Id"] == PROJECT and prepared.headers["Host"] == "127.0.0.1:9"
    assert "x-project-id" in assert_signed(dict(prepared.headers), "GET", request.path, "")
    assert "X-Auth-Token" not in prepared.headers and "X-Security-Token" not in prepared.headers

    iam = api.list_projects("cn-north-4")
    prepared = the_protocol.prepare(iam, PROJECT)
    assert prepared.url == f"{IAM}/v3/projects?name=cn-north-4"
    assert "X-Project-Id" not in prepared.headers, "IAM calls are not scoped by the AOM project header"
    assert_signed(dict(prepared.headers), "GET", "/v3/projects", "name=cn-north-4")


def test_temporary_aksk_sends_its_security_token_signed() -> None:
    prepared = protocol("aksk", security_token="STS-token").prepare(aom_request(), PROJECT)
    assert prepared.headers["X-Security-Token"] == "STS-token"
    assert "x-security-token" in assert_signed(dict(prepared.headers), "GET", aom_request().path, "")


def test_password_auth_sends_the_iam_token_and_no_signature() -> None:
    prepared = protocol("password").prepare(aom_request(), PROJECT, token("MIIfresh"))
    assert prepared.headers["X-Auth-Token"] == "MIIfresh"
    assert "Authorization" not in prepared.headers and "X-Project-Id" not in prepared.headers


def test_token_auth_sends_the_connections_token() -> None:
    prepared = protocol("token").prepare(aom_request(), PROJECT)
    assert prepared.headers["X-Auth-Token"] == "MIItoken"
    assert "Authorization" not in prepared.headers


def test_a_calls_own_headers_and_query_are_kept() -> None:
    request = api.verify_token("MIIsubject")
    prepared = protocol("token").prepare(request, None)
    assert prepared.url == f"{IAM}/v3/auth/tokens?nocatalog=true"
    assert prepared.headers["X-Subject-Token"] == "MIIsubject" and prepared.headers["X-Auth-Token"] == "MIItoken"


def test_an_iam_call_without_an_iam_endpoint_names_the_settings() -> None:
    no_iam = AomConnectionConfig.from_parts(
        conn_id="c", host=AOM, login="AK", password="SK", extra={"auth_type": "aksk", "project_id": PROJECT}
    )
    assert no_iam.iam_endpoint == ""
    with pytest.raises(AomConfigurationError, match=r"extra\.iam_endpoint or extra\.region"):
        AomProtocol(no_iam, TokenCache()).prepare(api.list_projects("cn-north-4"), None)


# --------------------------------------------------------------------------- call(): 401 renewal


def test_a_401_renews_the_token_once_then_returns_the_second_answer() -> None:
    the_protocol = protocol("password")
    the_protocol.token_cache.store(the_protocol._token_key, token("old"))
    value, steps = drive(
        the_protocol.call(aom_request(), PROJECT, 1e9), scripted(token("old"), error(401), token("new"), error(401))
    )
    assert isinstance(value, ApiResponse) and value.status == 401, "a second 401 is the answer, not a third try"
    assert kinds(steps) == ["FetchToken", "Send", "FetchToken", "Send"]
    assert [s.request.headers["X-Auth-Token"] for s in steps if isinstance(s, Send)] == ["old", "new"]
    assert the_protocol.token_cache.get(the_protocol._token_key) is None, "the refused token was dropped"


def test_a_401_without_a_token_to_renew_is_the_answer() -> None:
    value, steps = drive(protocol("aksk").call(aom_request(), PROJECT, 1e9), scripted(error(401)))
    assert value.status == 401 and kinds(steps) == ["Send"]
    value, steps = drive(protocol("password").call(aom_request(), PROJECT, 1e9), scripted(token(), error(403)))
    assert value.status == 403 and kinds(steps) == ["FetchToken", "Send"], "only a 401 renews"


# --------------------------------------------------------------------------- token()


def test_the_token_step_asks_the_cache_with_one_iam_request_built_once() -> None:
    the_protocol = protocol("password")
    first = next(the_protocol.token(10.0))
    second = next(the_protocol.token(20.0))
    assert isinstance(first, FetchToken) and isinstance(second, FetchToken)
    assert first.key == the_protocol._token_key and first.deadline == 10.0 and second.deadline == 20.0
    assert first.http is second.http
    assert (first.http.method, first.http.url) == ("POST", f"{IAM}/v3/auth/tokens?nocatalog=true")
    body = json.loads(first.http.body)
    assert body["auth"]["identity"]["password"]["user"] == {"name": "bot", "password": "pw", "domain": {"name": "acme"}}
    assert body["auth"]["scope"] == {"project": {"id": PROJECT}}


def test_a_token_failure_comes_back_as_a_not_sent_copy() -> None:
    original = AomServerError(status=503, error_code="", error_msg="IAM down", request_id="r-1", action="Get a token")
    with pytest.raises(AomServerError) as raised:
        drive(protocol("password").token(1e9), scripted(original))
    assert raised.value is not original and raised.value.before_send and not original.before_send
    assert (str(raised.value), raised.value.status, raised.value.request_id) == (str(original), 503, "r-1")


# --------------------------------------------------------------------------- project_id()


def test_the_argument_then_the_connections_project_id_need_no_step() -> None:
    value, steps = drive(protocol("aksk").project_id(OTHER_PROJECT, 1e9), scripted())
    assert (value, steps) == (OTHER_PROJECT, [])
    value, steps = drive(protocol("aksk").project_id(None, 1e9), scripted())
    assert (value, steps) == (PROJECT, [])
    with pytest.raises(AomConfigurationError, match="32-character project id"):
        drive(protocol("aksk").project_id("not-a-project", 1e9), scripted())


def test_password_auth_takes_the_tokens_project_once() -> None:
    value, steps = drive(protocol("password", project=None).project_id(None, 1e9), scripted(token(project=PROJECT)))
    assert value == PROJECT and kinds(steps) == ["FetchToken"]
    again = protocol("password", project=None)
    assert again.known_project_id() == PROJECT
    assert drive(again.project_id(None, 1e9), scripted()) == (PROJECT, []), "resolved once per process"


def test_a_token_naming_no_project_names_the_setting() -> None:
    with pytest.raises(AomConfigurationError, match=r"names no project; set extra\.project_id"):
        drive(protocol("password", project=None).project_id(None, 1e9), scripted(token(project=None)))


def test_aksk_looks_the_project_up_in_iam_by_region_once() -> None:
    projects = {"projects": [{"id": OTHER_PROJECT, "name": "cn-north-1"}, {"id": PROJECT, "name": "cn-north-4"}]}
    value, steps = drive(protocol("aksk", project=None).project_id(None, 1e9), scripted(answer_json(projects)))
    assert value == PROJECT and targets(steps) == [f"GET {IAM}/v3/projects?name=cn-north-4"]
    assert "X-Project-Id" not in steps[0].request.headers
    assert drive(protocol("aksk", project=None).project_id(None, 1e9), scripted()) == (PROJECT, [])
    # Another identity is another entry.
    other = AomConnectionConfig.from_parts(
        conn_id="c", host=AOM, login="AK2", password="SK", extra={"region": "cn-north-4", "iam_endpoint": IAM}
    )
    assert AomProtocol(other, TokenCache()).known_project_id() is None


def test_without_a_region_to_look_it_up_the_error_names_the_settings() -> None:
    # from_parts refuses such a connection already; the flow still says what to set.
    bare = AomConnectionConfig(
        conn_id="c", auth_type="aksk", endpoint=AOM, iam_endpoint=IAM, access_key="AK", secret_key="SK"
    )
    with pytest.raises(AomConfigurationError, match=r"set extra\.project_id, or extra\.region to look it up"):
        drive(AomProtocol(bare, TokenCache()).project_id(None, 1e9), scripted())


# --------------------------------------------------------------------------- identity()


def user_body() -> dict[str, Any]:
    return {"user": {"name": ME, "id": MY_ID}}


def test_extra_user_name_is_the_identity_without_asking_iam() -> None:
    value, steps = drive(protocol("token", user_name=ME).identity(1e9), scripted())
    assert value == Identity(frozenset({ME})) and steps == []


def test_a_static_token_is_verified_to_learn_its_user_once() -> None:
    value, steps = drive(protocol("token").identity(1e9), scripted(answer_json({"token": user_body()})))
    assert value == Identity(frozenset({ME, MY_ID}))
    assert targets(steps) == [f"GET {IAM}/v3/auth/tokens?nocatalog=true"]
    assert steps[0].request.headers["X-Subject-Token"] == "MIItoken"
    assert drive(protocol("token").identity(1e9), scripted()) == (value, []), "remembered for the process"


def test_a_password_token_names_its_user() -> None:
    value, steps = drive(protocol("password").identity(1e9), scripted(token(user_name=ME, user_id=MY_ID)))
    assert value == Identity(frozenset({ME, MY_ID})) and kinds(steps) == ["FetchToken"]


def test_a_password_token_that_cannot_be_had_fails_the_step() -> None:
    down = AomTransportError("IAM unreachable", sent=False)
    with pytest.raises(AomTransportError) as raised:
        drive(protocol("password").identity(1e9), scripted(down))
    assert raised.value.before_send


def test_a_permanent_access_key_is_looked_up_credential_then_user() -> None:
    answers = scripted(answer_json({"credential": {"user_id": MY_ID}}), answer_json(user_body()))
    value, steps = drive(protocol("aksk").identity(1e9), answers)
    assert value == Identity(frozenset({ME, MY_ID}))
    assert targets(steps) == [f"GET {IAM}/v3.0/OS-CREDENTIAL/credentials/AK", f"GET {IAM}/v3/users/{MY_ID}"]


def test_a_temporary_access_key_cannot_be_looked_up() -> None:
    value, steps = drive(protocol("aksk", security_token="STS-token").identity(1e9), scripted())
    assert (value, steps) == (None, [])


def test_an_iam_refusal_is_remembered() -> None:
    value, steps = drive(protocol("token").identity(1e9), scripted(error(403)))
    assert value is None and kinds(steps) == ["Send"]
    assert drive(protocol("token").identity(1e9), scripted()) == (None, []), "IAM answered: not asked again"


def test_a_refusal_of_the_user_lookup_keeps_what_the_credential_said() -> None:
    answers = scripted(answer_json({"credential": {"user_id": MY_ID}}), error(403))
    value, _ = drive(protocol("aksk").identity(1e9), answers)
    assert value == Identity(frozenset({MY_ID}))
    assert drive(protocol("aksk").identity(1e9), scripted()) == (value, [])


def test_a_transport_failure_is_not_remembered() -> None:
    value, steps = drive(protocol("token").identity(1e9), scripted(AomTransportError("dropped", sent=True)))
    assert value is None and kinds(steps) == ["Send"]
    value, steps = drive(protocol("token").identity(1e9), scripted(answer_json({"token": user_body()})))
    assert value == Identity(frozenset({ME, MY_ID})) and kinds(steps) == ["Send"], "asked again, and answered"


def test_an_identity_matches_any_of_its_names() -> None:
    identity = Identity(frozenset({ME, MY_ID}))
    assert identity.created(ME) and identity.created(MY_ID) and not identity.created("alice")
