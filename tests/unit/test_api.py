"""Request building (paths, one segment per id) and response parsing (both error formats)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_aom import api, vocabulary
from airflow_provider_aom.exceptions import (
    AomAuthenticationError,
    AomConfigurationError,
    AomInvalidResponseError,
    AomNotFoundError,
    AomServerError,
    AomThrottledError,
)
from airflow_provider_aom.wire import ApiResponse

PROJECT = "0123456789abcdef0123456789abcdef"


def test_paths_match_the_reference() -> None:
    assert api.execute_workflow("wf-1").request(PROJECT).path == f"/v1/{PROJECT}/cms/workflow/wf-1/executions"
    assert api.execute_workflow("wf-1").request(PROJECT).method == "POST"
    assert api.execute_workflow("wf-1").request(PROJECT).idempotent is False
    assert api.get_execution("wf", "e1").request(PROJECT).path == f"/v1/{PROJECT}/cms/workflow/wf/executions/e1/status"
    assert api.list_executions("wf").request(PROJECT).path == f"/v1/{PROJECT}/cms/workflow/wf/executions"
    assert api.terminate_execution("wf", "e1").request(PROJECT).path == (
        f"/v1/{PROJECT}/cms/workflow/wf/executions/e1/terminate"
    )
    listing = api.list_workflows(page=1, size=10).request(PROJECT)
    assert (listing.method, listing.path) == ("POST", f"/v1/{PROJECT}/cms/workflow-list")
    assert json.loads(listing.body) == {"page": 1, "size": 10}
    projects = api.list_projects("cn-north-4")
    assert (projects.service, projects.path, projects.query) == ("iam", "/v3/projects", "name=cn-north-4")


def test_hostile_ids_stay_one_segment() -> None:
    path = api.get_execution("../../v3/auth?x=1#", "a/b%2F").request(PROJECT).path
    assert path == f"/v1/{PROJECT}/cms/workflow/..%2F..%2Fv3%2Fauth%3Fx%3D1%23/executions/a%2Fb%252F/status"


@pytest.mark.parametrize("bad", ["", ".", "..", "a" * 65, "line\nbreak", "tab\t", " padded", "nul\x00"])
def test_bad_ids_are_rejected(bad: str) -> None:
    with pytest.raises(AomConfigurationError, match="workflow_id"):
        api.execute_workflow(bad).request(PROJECT)


@pytest.mark.parametrize("bad", ["", "x" * 31, "x" * 33, "../" + "x" * 29, "0123456789abcdef0123456789abcde/"])
def test_bad_project_ids_are_rejected(bad: str) -> None:
    with pytest.raises(AomConfigurationError, match="project_id"):
        api.execute_workflow("wf").request(bad)


def test_unknown_workflow_filter_is_rejected() -> None:
    with pytest.raises(AomConfigurationError, match="colour"):
        api.list_workflows(colour="red").request(PROJECT)


def documented_valid(value: str) -> bool:
    """The id rule, stated independently of the code: 1-64 characters, no C0/DEL, no outer white space, not . or .."""
    return (
        1 <= len(value) <= 64
        and not any(ord(c) < 32 or ord(c) == 127 for c in value)
        and value.strip() == value
        and value not in (".", "..")
    )


@given(st.text(max_size=70))
def test_ids_are_accepted_exactly_when_the_rule_says(value: str) -> None:
    assert vocabulary.is_valid_id(value) == documented_valid(value)


@given(st.text(min_size=1, max_size=64).filter(documented_valid))
def test_any_valid_id_is_exactly_one_segment(workflow_id: str) -> None:
    path = api.execute_workflow(workflow_id).request(PROJECT).path
    segments = path.split("/")
    assert len(segments) == 7
    assert segments[:5] == ["", "v1", PROJECT, "cms", "workflow"] and segments[6] == "executions"
    assert "?" not in path and "#" not in path and "\n" not in path


REQ = api.execute_workflow("wf-1").request(PROJECT)


def response(status: int, body: object, **headers: str) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse.build(status, raw, headers)


def test_execution_id_is_parsed() -> None:
    assert api.parse_execution_id(response(200, {"execution_id": "abc"}), REQ) == "abc"


@pytest.mark.parametrize("body", [{}, {"execution_id": None}, {"execution_id": 5}, {"execution_id": ""}, [], b"<html>"])
def test_missing_execution_id_is_an_error(body: object) -> None:
    with pytest.raises(AomInvalidResponseError, match="HTTP 200"):
        api.parse_execution_id(response(200, body, **{"X-Request-Id": "r1"}), REQ)


def test_truncated_json_is_a_clear_error() -> None:
    with pytest.raises(AomInvalidResponseError, match=r"not valid JSON.*request_id=r9"):
        api.parse_execution_id(response(200, b'{"execution_id": "ab', **{"X-Request-Id": "r9"}), REQ)


def test_aom_error_body() -> None:
    body = {"error_code": "AOM.31001306", "error_msg": "workflow not exist.", "http_code": 404}
    with pytest.raises(AomNotFoundError) as info:
        api.parse_execution_id(response(404, body, **{"X-Request-Id": "req-1"}), REQ)
    error = info.value
    assert (error.status, error.error_code, error.error_msg, error.request_id) == (
        404,
        "AOM.31001306",
        "workflow not exist.",
        "req-1",
    )
    assert "Execute workflow 'wf-1'" in str(error) and "AOM.31001306" in str(error)


def test_gateway_error_body_with_request_id() -> None:
    body = {
        "error_code": "APIG.0301",
        "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
        "request_id": "g-7",
    }
    with pytest.raises(AomAuthenticationError) as info:
        api.parse_execution_id(response(401, body), REQ)
    assert info.value.request_id == "g-7"
    assert "APIG.0301" in str(info.value)


def test_throttle_keeps_retry_after() -> None:
    body = {"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached", "request_id": "x"}
    with pytest.raises(AomThrottledError) as info:
        api.parse_execution_id(response(429, body, **{"Retry-After": "2"}), REQ)
    assert info.value.retry_after == 2.0


def test_non_json_error_body() -> None:
    with pytest.raises(AomServerError, match="Bad gateway page"):
        api.parse_execution_id(response(502, b"<h1>Bad gateway page</h1>"), REQ)


def test_iam_keystone_error_body() -> None:
    body = {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}
    with pytest.raises(AomAuthenticationError, match="username or password is wrong"):
        api.json_body(response(401, body), REQ)


def test_wrong_typed_bodies() -> None:
    with pytest.raises(AomInvalidResponseError):
        api.parse_execution_list(response(200, {"executions": []}), REQ)
    with pytest.raises(AomInvalidResponseError):
        api.parse_execution(response(200, {"status": 3}), REQ)
    with pytest.raises(AomInvalidResponseError):
        api.parse_workflow_list(response(200, []), REQ)
    assert api.parse_workflow_list(response(200, {"elements": [{"id": "w"}], "total_elements": 1}), REQ) == [
        {"id": "w"}
    ]
