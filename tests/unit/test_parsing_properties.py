"""Properties of response parsing and URL building (``airflow_provider_aom.api``), on arbitrary input.

* Parsing: whatever the status, headers and body (random bytes, random JSON, JSON shaped
  like the documented answers and error bodies), ``parse_*``, ``json_body``,
  ``check_success`` and ``error_from_response`` return the documented type or raise one of
  the provider's typed errors, and never lose the request id.
* URL building: an id is refused with ``AomConfigurationError`` exactly when the reference
  forbids it, and otherwise becomes one percent-encoded path segment that decodes back to
  the id; the URL a connection prepares keeps that path through ``requests`` and ``httpx``
  unchanged, with no CR/LF in any header.

Examples are derandomized and no example database is used, so every run is the same.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import requests
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from airflow_provider_aom import api, vocabulary
from airflow_provider_aom.auth.tokens import parse_token_response
from airflow_provider_aom.auth_flow import AomProtocol
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import (
    AomApiError,
    AomConfigurationError,
    AomError,
    AomInvalidResponseError,
    error_for_status,
)
from airflow_provider_aom.execution_list import ExecutionBrief, ExecutionList
from airflow_provider_aom.wire import ApiResponse

PROJECT = "0123456789abcdef0123456789abcdef"
PROPERTY = settings(max_examples=250, deadline=None, database=None, derandomize=True)

# --------------------------------------------------------------------------- strategies

KEYS = st.sampled_from(
    [
        "execution_id",
        "status",
        "elements",
        "error_code",
        "error_msg",
        "errorCode",
        "errorMsg",
        "code",
        "message",
        "request_id",
        "error",
        "projects",
        "id",
        "name",
        "token",
        "expires_at",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=10)), children, max_size=5),
    ),
    max_leaves=25,
)
BODIES = st.one_of(
    st.binary(max_size=400),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    # Truncated JSON, the shape a cut connection leaves.
    JSON_VALUES.map(lambda value: json.dumps(value).encode()).map(lambda raw: raw[: len(raw) // 2]),
    st.text(max_size=200).map(lambda text: text.encode("utf-16")),
)
REQUEST_IDS = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "X-Request-Id": REQUEST_IDS,
        "Retry-After": st.one_of(st.text(max_size=12), st.floats().map(str), st.integers().map(str)),
        "Content-Type": st.sampled_from(["application/json", "text/html", ""]),
    },
)
STATUSES = st.integers(min_value=100, max_value=599)

REQUEST = api.get_execution("wf-1", "e-1").request(PROJECT)
PARSERS: dict[str, Any] = {
    "parse_execution_id": api.parse_execution_id,
    "parse_execution": api.parse_execution,
    "parse_execution_list": api.parse_execution_list,
    "parse_workflow_list": api.parse_workflow_list,
    "json_body": api.json_body,
    "check_success": api.check_success,
    "parse_project_id": lambda response, request: api.parse_project_id(response, request, "cn-north-4"),
    "parse_token_response": parse_token_response,
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_request_id(headers: dict[str, str]) -> str | None:
    return headers.get("X-Request-Id")


def check_kept_request_id(error: AomError, rid: str | None) -> None:
    """An error built from an answer keeps the answer's request id ``rid`` (if it had one), and says it."""
    if rid is not None and isinstance(error, (AomApiError, AomInvalidResponseError)):
        assert error.request_id == rid
        assert f"request_id={rid}" in str(error)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("name", list(PARSERS))
@PROPERTY
@given(status=STATUSES, body=BODIES, headers=HEADERS)
@example(status=200, body=b"", headers={"X-Request-Id": "r-1"})
@example(status=200, body=b"\xff\xfe\x00", headers={"X-Request-Id": "r-2"})
@example(status=200, body=b'{"execution_id": "a\\nb"}', headers={})
@example(status=200, body=b'{"execution_id": "' + b"x" * 65 + b'"}', headers={})
@example(status=200, body=b"[" + b"1" * 5000 + b"]", headers={})
@example(status=429, body=b'{"error_code": "APIG.0308"}', headers={"Retry-After": "nan"})
def test_parsers_raise_only_typed_errors(name: str, status: int, body: bytes, headers: dict[str, str]) -> None:
    response = ApiResponse.build(status, body, headers)
    try:
        result = PARSERS[name](response, REQUEST)
    except AomError as error:
        check_kept_request_id(error, header_request_id(headers))
        if not 200 <= status < 300 and not isinstance(error, AomConfigurationError):
            # An error status is always reported as the error class of that status.
            assert type(error) is error_for_status(status), (status, type(error))
        return
    assert 200 <= status < 300, "an error status never parses as a success"
    if name == "parse_execution_id":
        assert isinstance(result, str) and 1 <= len(result) <= 64 and not CONTROL.search(result)
    elif name == "parse_execution":
        assert isinstance(result, dict) and isinstance(result["status"], str)
    elif name == "parse_execution_list":
        assert isinstance(result, ExecutionList) and all(isinstance(e, ExecutionBrief) for e in result)
    elif name == "parse_workflow_list":
        assert isinstance(result, list) and all(isinstance(item, dict) for item in result)
    elif name == "parse_project_id":
        assert re.fullmatch(r"[A-Za-z0-9]{32}", result)


@PROPERTY
@given(status=STATUSES.filter(lambda s: not 200 <= s < 300), body=BODIES, headers=HEADERS)
@example(status=500, body=b'{"request_id": "body-rid", "error_code": "APIG.0201"}', headers={})
@example(status=401, body=b'{"error": {"code": 401, "message": "wrong"}}', headers={"X-Request-Id": "h"})
@example(status=503, body=b"x" * 5000, headers={"Retry-After": "-3"})
def test_error_from_response_never_raises(status: int, body: bytes, headers: dict[str, str]) -> None:
    error = api.error_from_response(ApiResponse.build(status, body, headers), REQUEST)
    assert type(error) is error_for_status(status)  # an AomApiError: check_kept_request_id checks it
    assert error.status == status
    assert len(error.error_code) <= 64 and len(error.error_msg) <= 1024
    assert REQUEST.action in str(error)
    if error.retry_after is not None:
        assert error.retry_after >= 0 and not math.isnan(error.retry_after)
    rid = header_request_id(headers)
    if rid is None:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict) and payload.get("request_id"):
            rid = str(payload["request_id"])
    check_kept_request_id(error, rid)


DEEP_BODIES = {
    "deep-array": b"[" * 100_000,
    "deep-object": b'{"a":' * 100_000,
}


@pytest.mark.parametrize("status", [200, 502])
@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
@pytest.mark.parametrize("name", ["parse_execution_id", "parse_execution_list", "json_body"])
def test_deeply_nested_json_is_a_typed_error(name: str, body: bytes, status: int) -> None:
    response = ApiResponse.build(status, body, {"X-Request-Id": "deep-1"})
    with pytest.raises((AomApiError, AomInvalidResponseError)) as info:
        PARSERS[name](response, REQUEST)
    assert isinstance(info.value, (AomApiError, AomInvalidResponseError))
    assert info.value.request_id == "deep-1"


# --------------------------------------------------------------------------- URL building

IDS = st.one_of(
    st.text(max_size=70),
    st.text(alphabet="./%?#&=;:@+ \\\r\n\t\x00\x7fabc\u2028\u00e9\U0001f680", max_size=70),
    st.sampled_from([".", "..", "...", "%2e%2e", "..%2F", "a" * 64, "a" * 65, " a", "a "]),
)
ALLOWED_PATH = re.compile(r"[A-Za-z0-9\-._~%/]*")


def id_is_acceptable(value: str) -> bool:
    """The rule of reference §0 plus the provider's own: 1-64 chars, no control chars, no dot segment."""
    return 1 <= len(value) <= 64 and not CONTROL.search(value) and value.strip() == value and value not in (".", "..")


@PROPERTY
@given(workflow_id=IDS, execution_id=IDS)
def test_ids_are_refused_or_become_one_segment(workflow_id: str, execution_id: str) -> None:
    base = f"/v1/{PROJECT}/cms/workflow/"
    builders: dict[str, tuple[Callable[[], api.ApiRequest], list[str | None]]] = {
        "execute": (lambda: api.execute_workflow(workflow_id).request(PROJECT), ["executions"]),
        "list": (lambda: api.list_executions(workflow_id).request(PROJECT), ["executions"]),
        "status": (
            lambda: api.get_execution(workflow_id, execution_id).request(PROJECT),
            ["executions", None, "status"],
        ),
        "terminate": (
            lambda: api.terminate_execution(workflow_id, execution_id).request(PROJECT),
            ["executions", None, "terminate"],
        ),
    }
    for build, tail in builders.values():
        uses_execution = None in tail
        acceptable = id_is_acceptable(workflow_id) and (not uses_execution or id_is_acceptable(execution_id))
        try:
            path = build().path
        except AomConfigurationError:
            assert not acceptable
            continue
        assert acceptable
        assert path.startswith(base) and ALLOWED_PATH.fullmatch(path), path
        segments = path[len(base) :].split("/")
        assert len(segments) == 1 + len(tail)
        assert unquote(segments[0]) == workflow_id
        for expected, got in zip(tail, segments[1:], strict=True):
            assert got == expected if expected is not None else unquote(got) == execution_id


@PROPERTY
@given(value=st.one_of(st.text(max_size=40), st.from_regex(r"[A-Za-z0-9]{32}", fullmatch=True)))
@example(value=PROJECT + "\n")  # "$" would match before a trailing newline; the check must not
def test_project_id_is_accepted_only_when_it_is_32_letters_or_digits(value: str) -> None:
    try:
        accepted = vocabulary.check_project_id(value)
    except AomConfigurationError:
        assert not re.fullmatch(r"[A-Za-z0-9]{32}", value)
    else:
        assert accepted == value and re.fullmatch(r"[A-Za-z0-9]{32}", value)


def aksk_protocol() -> AomProtocol:
    config = AomConnectionConfig.from_parts(
        conn_id="props",
        host="http://127.0.0.1:8089",
        login="AKPROPS",
        password="SKPROPS-0000000000000000000000000000000",
        extra={"auth_type": "aksk", "project_id": PROJECT, "security_token": "sts-props-token"},
    )
    return AomProtocol(config)


@PROPERTY
@given(workflow_id=IDS, execution_id=IDS)
def test_prepared_url_keeps_the_built_path_on_the_wire(workflow_id: str, execution_id: str) -> None:
    assume(id_is_acceptable(workflow_id) and id_is_acceptable(execution_id))
    protocol = aksk_protocol()
    for request in (
        api.execute_workflow(workflow_id).request(PROJECT),
        api.get_execution(workflow_id, execution_id).request(PROJECT),
        api.terminate_execution(workflow_id, execution_id).request(PROJECT),
    ):
        prepared = protocol.prepare(request, PROJECT)
        parts = urlsplit(prepared.url)
        assert (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment) == (
            "http",
            "127.0.0.1:8089",
            request.path,
            "",
            "",
        )
        for name, value in prepared.headers.items():
            assert not re.search(r"[\r\n\x00]", name + value), name
        # What the two transports would put on the request line.
        assert requests.Request(request.method, prepared.url).prepare().path_url == request.path
        assert httpx.URL(prepared.url).raw_path == request.path.encode()


@PROPERTY
@given(region=st.text(max_size=30))
def test_project_lookup_query_is_one_parameter(region: str) -> None:
    query = api.list_projects(region).query
    name, sep, value = query.partition("=")
    assert (name, sep) == ("name", "=")
    assert "&" not in value and "#" not in value and unquote(value) == region


@PROPERTY
@given(filters=st.dictionaries(st.sampled_from(sorted(api.WORKFLOW_FILTERS)), JSON_VALUES, max_size=4))
def test_workflow_list_body_is_exactly_the_filters(filters: dict[str, Any]) -> None:
    request = api.list_workflows(**filters).request(PROJECT)
    assert request.path == f"/v1/{PROJECT}/cms/workflow-list"
    decoded = json.loads(request.body)
    assert json.dumps(decoded, sort_keys=True) == json.dumps(filters, sort_keys=True)


@PROPERTY
@given(extra_key=st.text(min_size=1, max_size=20))
def test_unknown_workflow_filters_are_refused(extra_key: str) -> None:
    assume(extra_key not in api.WORKFLOW_FILTERS)
    with pytest.raises(AomConfigurationError):
        unknown: dict[str, Any] = {extra_key: 1}
        api.list_workflows(**unknown).request(PROJECT)
