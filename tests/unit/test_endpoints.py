"""The endpoint table (airflow_provider_aom/endpoints.py): paths filled one percent-encoded segment per value.

Every request the client builds and every route the emulator serves comes from these entries, so
a value can never add a path segment, the calls that must not be sent twice say so, and the
emulator routes exactly the endpoints the client calls.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from airflow_provider_aom import endpoints
from airflow_provider_aom.endpoints import Endpoint

ALL = {name: value for name, value in vars(endpoints).items() if isinstance(value, Endpoint)}
PROJECT = "0123456789abcdef0123456789abcdef"
#: A slash, a space, a percent sign, a query and a fragment, a dot segment, non-ASCII and RFC 3986 unreserved.
AWKWARD = "a/b c%2F?x=1#f..é~-_.Z9"


def placeholders(endpoint: Endpoint) -> list[str]:
    return [part[1:-1] for part in endpoint.segments if part.startswith("{")]


def test_the_table_holds_every_endpoint_the_client_calls() -> None:
    assert ALL
    assert len({(e.method, e.path) for e in ALL.values()}) == len(ALL), "no endpoint twice"
    for name, endpoint in ALL.items():
        assert endpoint.path.startswith("/") and endpoint.doc, name
        assert endpoint.service == ("aom" if endpoint.path.startswith("/v1/") else "iam"), name


@pytest.mark.parametrize("name", sorted(ALL))
def test_each_value_becomes_exactly_one_encoded_segment(name: str) -> None:
    endpoint = ALL[name]
    values = {key: f"{key}:{AWKWARD}" for key in placeholders(endpoint)}
    path = endpoint.format(**values)
    segments = path.split("/")
    assert len(segments) == len(endpoint.segments), "a value added or removed a segment"
    for template, segment in zip(endpoint.segments, segments, strict=True):
        if template.startswith("{"):
            value = values[template[1:-1]]
            assert unquote(segment) == value
            assert "/" not in segment and "?" not in segment and "#" not in segment and " " not in segment
        else:
            assert segment == template, "fixed parts are left as written"


def test_slashes_are_encoded_never_followed() -> None:
    path = endpoints.GET_EXECUTION.format(project_id=PROJECT, workflow_id="../other", execution_id="e/1")
    assert path == f"/v1/{PROJECT}/cms/workflow/..%2Fother/executions/e%2F1/status"
    assert endpoints.IAM_GET_CREDENTIAL.format(access_key="AK/../x") == "/v3.0/OS-CREDENTIAL/credentials/AK%2F..%2Fx"


def test_unreserved_characters_stay_as_they_are_and_percent_is_encoded() -> None:
    assert endpoints.IAM_GET_USER.format(user_id="Az09-._~") == "/v3/users/Az09-._~"
    assert endpoints.IAM_GET_USER.format(user_id="100%") == "/v3/users/100%25", "never read as an escape"


def test_a_missing_value_is_refused() -> None:
    with pytest.raises(KeyError):
        endpoints.EXECUTE_WORKFLOW.format(project_id=PROJECT)


def test_only_the_submit_and_the_node_operation_may_not_be_sent_twice() -> None:
    not_idempotent = {name for name, endpoint in ALL.items() if not endpoint.idempotent}
    assert not_idempotent == {"EXECUTE_WORKFLOW", "OPERATE_EXECUTION"}
    assert (endpoints.EXECUTE_WORKFLOW.method, endpoints.OPERATE_EXECUTION.method) == ("POST", "POST")


def test_the_emulator_routes_every_endpoint_and_nothing_else() -> None:
    from airflow_provider_aom.emulator.server import ROUTES

    routed = sorted((route.method, route.template, route.aom) for route in ROUTES)
    assert routed == sorted((e.method, e.segments, e.service == "aom") for e in ALL.values())
