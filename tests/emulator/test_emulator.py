"""The emulator over real HTTP on 127.0.0.1: IAM, gateway auth, AOM endpoints, faults, admin, CLI."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_aom.auth import signer
from airflow_provider_aom.emulator import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SECURITY_TOKEN,
    DEFAULT_SK,
    DEFAULT_TEMP_AK,
    DEFAULT_TEMP_SK,
    AomEmulator,
    EmulatorConfig,
    WorkflowSpec,
    default_workflows,
    payloads,
)
from airflow_provider_aom.emulator.state import WorkflowQuery, epoch_ms
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Subprocesses import the provider from the checkout.
PYTHONPATH_ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
PID = DEFAULT_PROJECT_ID
STATIC = "MIIemulator-static-token"
FAST = 0.2
TERMINAL = {"success", "fail", "cancel"}
MIB = 1024 * 1024


#: The default workflows these tests list exactly (the ones the example DAGs need are left out).
CORE_WORKFLOW_IDS = ("wf-success", "wf-fail", "wf-approval", "wf-long")


def core_workflows() -> list[WorkflowSpec]:
    return [spec for spec in default_workflows() if spec.id in CORE_WORKFLOW_IDS]


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args``, the checkout first on its path; output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=PYTHONPATH_ENV, cwd=ROOT, timeout=30, check=False
    )


def fast_workflows() -> list[WorkflowSpec]:
    return [
        *core_workflows(),
        WorkflowSpec(id="fast-success", name="fast success", outcome="success", duration=FAST),
        WorkflowSpec(id="fast-fail", name="fast fail", outcome="fail", duration=FAST),
        WorkflowSpec(
            id="fast-approval",
            name="fast approval",
            outcome="approval",
            duration=FAST,
            approvers=["alice", "bob"],
            type="cron",
        ),
    ]


def password_body(
    user: str = DEFAULT_IAM_USER,
    password: str = DEFAULT_IAM_PASSWORD,
    domain: str = DEFAULT_IAM_DOMAIN,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": scope or {"name": DEFAULT_REGION}},
        }
    }


def get_token(emu: AomEmulator, http: requests.Session) -> str:
    response = http.post(f"{emu.base_url}/v3/auth/tokens?nocatalog=true", json=password_body())
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def signed_headers(
    emu: AomEmulator,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    *,
    ak: str = DEFAULT_AK,
    sk: str = DEFAULT_SK,
    extra: dict[str, str] | None = None,
    sdk_date: str | None = None,
) -> dict[str, str]:
    """Headers signed with the shared signer, as the provider's client sends them."""
    headers = {"Content-Type": "application/json", "X-Project-Id": PID, **(extra or {})}
    return signer.sign_headers(
        access_key=ak,
        secret_key=sk,
        method=method,
        host=emu.base_url.removeprefix("http://"),
        path=path,
        query=query,
        headers=headers,
        body=body,
        sdk_date=sdk_date,
    )


def aom(path: str) -> str:
    return f"/v1/{PID}/cms{path}"


def execute(emu: AomEmulator, http: requests.Session, workflow_id: str, token: str = STATIC) -> str:
    response = http.post(emu.base_url + aom(f"/workflow/{workflow_id}/executions"), headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return str(response.json()["execution_id"])


def status_of(emu: AomEmulator, http: requests.Session, workflow_id: str, execution_id: str) -> dict[str, Any]:
    response = http.get(
        emu.base_url + aom(f"/workflow/{workflow_id}/executions/{execution_id}/status"),
        headers={"X-Auth-Token": STATIC},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_gateway_401(response: requests.Response, detail: str) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "request_id"}
    assert body["error_code"] == "APIG.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information: " + detail), body
    assert body["request_id"] == response.headers["X-Request-Id"]


def raw_request(emu: AomEmulator, method: str, path: str) -> socket.socket:
    """A socket that has sent one bodiless request (static token) and not read anything yet."""
    sock = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{emu.port}\r\nX-Auth-Token: {STATIC}\r\nContent-Length: 0\r\n"
    sock.sendall(head.encode("ascii") + b"\r\n")
    return sock


def read_raw_response(sock: socket.socket, limit: float = 20.0) -> bytes:
    """One whole ``Content-Length`` response exactly as received (status line, headers, body)."""
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        head, separator, body = data.partition(b"\r\n\r\n")
        if separator:
            length = re.search(rb"(?im)^content-length: *(\d+)\r$", head + b"\r")
            assert length is not None, head
            if len(body) >= int(length.group(1)):
                return data
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"incomplete response: {data!r}")


def raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """The header lines of a raw response, in order, as (name, value)."""
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    return [(name, value.strip()) for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])]


def open_connection(emu: AomEmulator) -> HTTPConnection:
    return HTTPConnection("127.0.0.1", emu.port, timeout=10)


def user_id_of(emu: AomEmulator, http: requests.Session) -> str:
    response = http.post(f"{emu.base_url}/v3/auth/tokens?nocatalog=true", json=password_body())
    return str(response.json()["token"]["user"]["id"])


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


# -- IAM ----------------------------------------------------------------------


def test_iam_issues_project_scoped_token(emu: AomEmulator, http: requests.Session) -> None:
    before = datetime.now(timezone.utc)
    response = http.post(f"{emu.base_url}/v3/auth/tokens", json=password_body())
    assert response.status_code == 201
    token = response.headers["X-Subject-Token"]
    assert token.startswith("MII") and len(token) > 200
    assert re.fullmatch(r"MII[A-Za-z0-9_-]+", token)
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["project"]["id"] == PID and body["project"]["name"] == DEFAULT_REGION
    assert body["project"]["domain"]["name"] == DEFAULT_IAM_DOMAIN
    assert body["user"]["name"] == DEFAULT_IAM_USER
    assert body["user"]["domain"]["name"] == DEFAULT_IAM_DOMAIN
    assert body["roles"] and isinstance(body["catalog"], list) and body["catalog"]
    assert {entry["type"] for entry in body["catalog"]} == {"aom", "identity"}
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["issued_at"])
    assert timedelta(hours=23, minutes=59) < expires - before < timedelta(hours=24, minutes=1)

    # Scoping by project id works too, and nocatalog drops the catalog.
    by_id = http.post(f"{emu.base_url}/v3/auth/tokens?nocatalog=true", json=password_body(scope={"id": PID}))
    assert by_id.status_code == 201
    assert "catalog" not in by_id.json()["token"]
    assert by_id.headers["X-Subject-Token"] != token
    assert emu.state.iam_token_requests() == 2


@pytest.mark.parametrize(
    ("user", "password", "domain"),
    [
        ("someone-else", DEFAULT_IAM_PASSWORD, DEFAULT_IAM_DOMAIN),
        (DEFAULT_IAM_USER, "wrong", DEFAULT_IAM_DOMAIN),
        (DEFAULT_IAM_USER, DEFAULT_IAM_PASSWORD, "other-domain"),
    ],
)
def test_iam_rejects_wrong_credentials(
    emu: AomEmulator, http: requests.Session, user: str, password: str, domain: str
) -> None:
    response = http.post(f"{emu.base_url}/v3/auth/tokens", json=password_body(user, password, domain))
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert "X-Subject-Token" not in response.headers
    assert emu.state.iam_token_requests() == 1


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", json.dumps({"auth": {"identity": {"methods": ["password"]}}}).encode()],
)
def test_iam_malformed_body_is_400(emu: AomEmulator, http: requests.Session, payload: bytes) -> None:
    response = http.post(f"{emu.base_url}/v3/auth/tokens", data=payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["title"] == "Bad Request" and error["message"]


def test_iam_unknown_scope_project_is_400(emu: AomEmulator, http: requests.Session) -> None:
    response = http.post(f"{emu.base_url}/v3/auth/tokens", json=password_body(scope={"name": "eu-west-101"}))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_iam_projects_by_name(emu: AomEmulator, http: requests.Session) -> None:
    query = f"name={DEFAULT_REGION}"
    headers = signed_headers(emu, "GET", "/v3/projects", query)
    response = http.get(f"{emu.base_url}/v3/projects?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    [project] = body["projects"]
    assert project["id"] == PID and project["name"] == DEFAULT_REGION
    assert project["enabled"] is True and project["is_domain"] is False
    assert {"domain_id", "parent_id", "description", "links"} <= set(project)
    assert "self" in body["links"]

    other = http.get(f"{emu.base_url}/v3/projects?name=eu-west-101", headers={"X-Auth-Token": STATIC})
    assert other.status_code == 200 and other.json()["projects"] == []
    unauthenticated = http.get(f"{emu.base_url}/v3/projects?{query}")
    assert_gateway_401(unauthenticated, "x-auth-token not found")


def test_iam_verify_token_describes_the_subject_token(emu: AomEmulator, http: requests.Session) -> None:
    issued = http.post(f"{emu.base_url}/v3/auth/tokens", json=password_body())
    token = issued.headers["X-Subject-Token"]
    issued_body = issued.json()["token"]

    response = http.get(f"{emu.base_url}/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert response.status_code == 200, response.text
    assert response.headers["X-Subject-Token"] == token
    assert response.headers["X-IAM-Trace-Id"] == response.headers["X-Request-Id"]
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"] == issued_body["user"]
    assert body["user"]["id"] == issued_body["user"]["id"] and re.fullmatch(r"[0-9a-f]{32}", body["user"]["id"])
    assert body["user"]["name"] == DEFAULT_IAM_USER and body["user"]["domain"]["name"] == DEFAULT_IAM_DOMAIN
    assert body["project"] == issued_body["project"]
    assert (body["issued_at"], body["expires_at"]) == (issued_body["issued_at"], issued_body["expires_at"])
    assert body["catalog"] == issued_body["catalog"] and body["roles"] == issued_body["roles"]

    # AK/SK may ask too; a static token reports the "token" method; nocatalog is honoured.
    query = "nocatalog=true"
    headers = signed_headers(emu, "GET", "/v3/auth/tokens", query, extra={"X-Subject-Token": STATIC})
    static = http.get(f"{emu.base_url}/v3/auth/tokens?{query}", headers=headers)
    assert static.status_code == 200, static.text
    assert static.headers["X-Subject-Token"] == STATIC
    static_body = static.json()["token"]
    assert static_body["methods"] == ["token"] and "catalog" not in static_body
    assert static_body["user"]["id"] == body["user"]["id"]


def test_iam_verify_token_errors(emu: AomEmulator, http: requests.Session) -> None:
    url = f"{emu.base_url}/v3/auth/tokens"
    missing = http.get(url, headers={"X-Auth-Token": STATIC})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == 400 and missing.json()["error"]["title"] == "Bad Request"

    not_found = {"error": {"code": 404, "message": "The token could not be found.", "title": "Not Found"}}
    unknown = http.get(url, headers={"X-Auth-Token": STATIC, "X-Subject-Token": "MIInot-a-real-token"})
    assert unknown.status_code == 404 and unknown.json() == not_found
    token = get_token(emu, http)
    emu.state.expire_tokens()
    expired = http.get(url, headers={"X-Auth-Token": STATIC, "X-Subject-Token": token})
    assert expired.status_code == 404 and expired.json() == not_found
    # The caller itself must be authenticated (the gateway's 401 comes first).
    assert_gateway_401(http.get(url, headers={"X-Subject-Token": STATIC}), "x-auth-token not found")


def test_iam_show_own_permanent_credential_only(emu: AomEmulator, http: requests.Session) -> None:
    path = f"/v3.0/OS-CREDENTIAL/credentials/{DEFAULT_AK}"
    response = http.get(emu.base_url + path, headers=signed_headers(emu, "GET", path))
    assert response.status_code == 200, response.text
    credential = response.json()["credential"]
    assert set(credential) == {"user_id", "access", "status", "create_time", "description"}
    assert credential["user_id"] == user_id_of(emu, http)
    assert credential["access"] == DEFAULT_AK and credential["status"] == "active"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", credential["create_time"])
    assert credential["description"] == ""

    not_found = {"error": {"code": 404, "message": "Could not find credential.", "title": "Not Found"}}
    for access_key in (DEFAULT_TEMP_AK, "SOMEONEELSESAK000000"):
        other = http.get(
            f"{emu.base_url}/v3.0/OS-CREDENTIAL/credentials/{access_key}", headers={"X-Auth-Token": STATIC}
        )
        assert other.status_code == 404 and other.json() == not_found
    assert_gateway_401(http.get(emu.base_url + path), "x-auth-token not found")


def test_iam_show_user_self_only(emu: AomEmulator, http: requests.Session) -> None:
    user_id = user_id_of(emu, http)
    response = http.get(f"{emu.base_url}/v3/users/{user_id}", headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user": {
            "id": user_id,
            "name": DEFAULT_IAM_USER,
            "domain_id": response.json()["user"]["domain_id"],
            "enabled": True,
            "links": {"self": f"{emu.base_url}/v3/users/{user_id}"},
            "password_expires_at": None,
            "description": "",
        }
    }
    token_domain = http.post(f"{emu.base_url}/v3/auth/tokens?nocatalog=1", json=password_body()).json()["token"]
    assert response.json()["user"]["domain_id"] == token_domain["user"]["domain"]["id"]

    other = http.get(f"{emu.base_url}/v3/users/{'0' * 32}", headers={"X-Auth-Token": STATIC})
    assert other.status_code == 403
    error = other.json()["error"]
    assert error["code"] == 403 and error["title"] == "Forbidden" and error["message"]
    assert_gateway_401(http.get(f"{emu.base_url}/v3/users/{user_id}"), "x-auth-token not found")


# -- token auth ---------------------------------------------------------------


def test_token_accepted_then_expired(emu: AomEmulator, http: requests.Session) -> None:
    token = get_token(emu, http)
    execute(emu, http, "wf-success", token=token)
    execute(emu, http, "wf-success", token=STATIC)
    emu.state.expire_tokens()
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": token})
    assert_gateway_401(response, "token expires, expires_at: ")
    assert re.search(r"expires_at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", response.json()["error_msg"])
    # Static tokens never expire; a fresh IAM token works again.
    execute(emu, http, "wf-success", token=STATIC)
    execute(emu, http, "wf-success", token=get_token(emu, http))
    assert len(emu.state.executions()) == 4


def test_token_expires_after_ttl(http: requests.Session) -> None:
    with AomEmulator(EmulatorConfig(token_ttl=0.3)) as emu:
        token = get_token(emu, http)
        url = emu.base_url + aom("/workflow/wf-success/executions")
        assert http.get(url, headers={"X-Auth-Token": token}).status_code == 200
        time.sleep(0.4)
        assert_gateway_401(http.get(url, headers={"X-Auth-Token": token}), "token expires, expires_at: ")


def test_unknown_and_missing_token(emu: AomEmulator, http: requests.Session) -> None:
    url = emu.base_url + aom("/workflow/wf-success/executions")
    assert_gateway_401(http.post(url, headers={"X-Auth-Token": "MIInot-a-real-token"}), "decrypt token fail")
    assert_gateway_401(http.post(url), "x-auth-token not found")
    assert emu.state.executions() == []


# -- AK/SK auth ---------------------------------------------------------------


def test_aksk_accepted_with_query_and_body(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path))
    assert response.status_code == 200, response.text

    query = "x_enterprise_project_id=0"
    response = http.get(f"{emu.base_url}{path}?{query}", headers=signed_headers(emu, "GET", path, query))
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1

    list_path = aom("/workflow-list")
    body = json.dumps({"search": "fast", "page": 1, "size": 10}).encode()
    response = http.post(emu.base_url + list_path, data=body, headers=signed_headers(emu, "POST", list_path, body=body))
    assert response.status_code == 200, response.text
    assert response.json()["total_elements"] == 3
    assert {r["auth"] for r in emu.state.requests()} == {"aksk"}


def test_aksk_percent_encoded_path_segment(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_workflow(WorkflowSpec(id="wf 1/x", name="spaced", outcome="success", duration=0))
    path = aom("/workflow/wf%201%2Fx/executions")
    response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path))
    assert response.status_code == 200, response.text
    [execution] = emu.state.executions()
    assert execution["workflow_id"] == "wf 1/x"


def test_aksk_wrong_secret_unknown_key_and_tampering(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    url = emu.base_url + path
    wrong_sk = signed_headers(emu, "POST", path, sk=DEFAULT_SK[:-1] + "X")
    assert_gateway_401(http.post(url, headers=wrong_sk), "verify aksk signature fail")
    unknown_ak = signed_headers(emu, "POST", path, ak="UNKNOWNAK00000000000")
    assert_gateway_401(http.post(url, headers=unknown_ak), "verify aksk signature fail")
    tampered = signed_headers(emu, "POST", path, body=b'{"a": 1}')
    assert_gateway_401(http.post(url, headers=tampered, data=b'{"a": 2}'), "verify aksk signature fail")
    other_path = signed_headers(emu, "POST", aom("/workflow/wf-fail/executions"))
    assert_gateway_401(http.post(url, headers=other_path), "verify aksk signature fail")
    garbage = {"Authorization": "SDK-HMAC-SHA256 nonsense"}
    assert_gateway_401(http.post(url, headers=garbage), "verify aksk signature fail")
    assert emu.state.executions() == []


def test_aksk_signed_headers_must_cover_host_and_date(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    headers = signed_headers(emu, "POST", path)
    date = headers["X-Sdk-Date"]
    to_sign = signer.string_to_sign(
        signer.canonical_request("POST", path, "", headers, ["x-sdk-date"], b""),
        date,
    )
    signature = signer.compute_signature(DEFAULT_SK, to_sign)
    headers["Authorization"] = f"SDK-HMAC-SHA256 Access={DEFAULT_AK}, SignedHeaders=x-sdk-date, Signature={signature}"
    assert_gateway_401(http.post(emu.base_url + path, headers=headers), "verify aksk signature fail")


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_aksk_skewed_date_is_rejected(emu: AomEmulator, http: requests.Session, skew: timedelta) -> None:
    path = aom("/workflow/wf-success/executions")
    sdk_date = (datetime.now(timezone.utc) + skew).strftime(signer.DATE_FORMAT)
    response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path, sdk_date=sdk_date))
    assert_gateway_401(response, f"signature expired, signature time:{sdk_date}, server time:")
    assert re.search(r"server time:\d{8}T\d{6}Z$", response.json()["error_msg"])


def test_aksk_small_skew_is_accepted(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    sdk_date = (datetime.now(timezone.utc) - timedelta(minutes=14)).strftime(signer.DATE_FORMAT)
    response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path, sdk_date=sdk_date))
    assert response.status_code == 200, response.text


def test_temporary_aksk_needs_signed_security_token(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    url = emu.base_url + path

    def temp_signed(extra: dict[str, str] | None = None) -> dict[str, str]:
        return signed_headers(emu, "POST", path, ak=DEFAULT_TEMP_AK, sk=DEFAULT_TEMP_SK, extra=extra)

    assert_gateway_401(http.post(url, headers=temp_signed()), "verify aksk signature fail")
    wrong = temp_signed({"X-Security-Token": "not-it"})
    assert_gateway_401(http.post(url, headers=wrong), "verify aksk signature fail")
    unsigned = temp_signed()
    unsigned["X-Security-Token"] = DEFAULT_SECURITY_TOKEN
    assert_gateway_401(http.post(url, headers=unsigned), "verify aksk signature fail")

    good = temp_signed({"X-Security-Token": DEFAULT_SECURITY_TOKEN})
    assert http.post(url, headers=good).status_code == 200


def test_aksk_project_header_must_match_path(emu: AomEmulator, http: requests.Session) -> None:
    path = aom("/workflow/wf-success/executions")
    headers = signed_headers(emu, "POST", path, extra={"X-Project-Id": "f" * 32})
    response = http.post(emu.base_url + path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error_code": "AOM.31009004", "error_msg": "auth failed.", "http_code": 401}


# -- AOM endpoints ------------------------------------------------------------


def test_execute_returns_execution_id(emu: AomEmulator, http: requests.Session) -> None:
    url = emu.base_url + aom("/workflow/wf-success/executions")
    # Any body is ignored.
    response = http.post(url, headers={"X-Auth-Token": STATIC}, json={"input": {"x": 1}})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    body = response.json()
    assert set(body) == {"execution_id"}
    assert str(uuid.UUID(body["execution_id"])) == body["execution_id"]
    [execution] = emu.state.executions()
    assert execution["execution_id"] == body["execution_id"]
    assert execution["created_by"] == DEFAULT_IAM_USER


def test_unknown_workflow_is_404(emu: AomEmulator, http: requests.Session) -> None:
    headers = {"X-Auth-Token": STATIC}
    for method, path in [
        ("POST", "/workflow/nope/executions"),
        ("GET", "/workflow/nope/executions"),
        ("GET", "/workflow/nope/executions/abc/status"),
        ("POST", "/workflow/nope/executions/abc/terminate"),
    ]:
        response = http.request(method, emu.base_url + aom(path), headers=headers)
        assert response.status_code == 404, path
        assert response.json() == {"error_code": "AOM.31001306", "error_msg": "workflow not exist.", "http_code": 404}


def test_unknown_execution_is_404(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "wf-success")
    headers = {"X-Auth-Token": STATIC}
    for path in [
        "/workflow/wf-success/executions/not-there/status",
        f"/workflow/wf-fail/executions/{execution_id}/status",  # exists, but under another workflow
    ]:
        response = http.get(emu.base_url + aom(path), headers=headers)
        assert response.status_code == 404
        assert response.json() == {"error_code": "AOM.31001307", "error_msg": "execution not exist.", "http_code": 404}


def test_success_progression(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "fast-success")
    first = status_of(emu, http, "fast-success", execution_id)
    assert set(first) == {
        "workflow_id",
        "execution_id",
        "status",
        "begin_time",
        "end_time",
        "last_update_time",
        "execution_result_list",
        "approve_user_name_list",
        "project_id",
        "workflow_edit_time",
        "last_record_id_with_snapshot",
    }
    assert first["status"] == "executing"
    assert first["end_time"] == 0 and first["project_id"] == PID
    assert isinstance(first["begin_time"], int) and abs(first["begin_time"] / 1000 - time.time()) < 5
    assert first["execution_result_list"][0]["status"] == "executing"

    time.sleep(FAST + 0.05)
    done = status_of(emu, http, "fast-success", execution_id)
    assert done["status"] == "success"
    assert done["end_time"] >= done["begin_time"] + int(FAST * 1000) - 1
    assert done["last_update_time"] == done["end_time"]
    nodes = done["execution_result_list"]
    assert [node["node_id"] for node in nodes] == ["node_1", "node_2"]
    for node in nodes:
        assert set(node) == {"node_id", "begin_time", "end_time", "function_execution_id", "output", "status"}
        assert node["status"] == "success" and isinstance(node["output"], dict)
        assert node["end_time"] >= node["begin_time"] > 0
    assert done["approve_user_name_list"] == []


def test_fail_progression(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "fast-fail")
    assert status_of(emu, http, "fast-fail", execution_id)["status"] == "executing"
    time.sleep(FAST + 0.05)
    done = status_of(emu, http, "fast-fail", execution_id)
    assert done["status"] == "fail" and done["end_time"] > 0
    first, second = done["execution_result_list"]
    assert first["status"] == "success"
    assert second["status"] == "fail"
    assert "failed" in second["output"]["message"]


def test_approval_progression(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "fast-approval")
    assert status_of(emu, http, "fast-approval", execution_id)["status"] == "executing"
    time.sleep(FAST + 0.05)
    waiting = status_of(emu, http, "fast-approval", execution_id)
    assert waiting["status"] == "waitApproval"
    assert waiting["approve_user_name_list"] == ["alice", "bob"]
    assert waiting["end_time"] == 0
    assert waiting["execution_result_list"][-1]["status"] == "waitApproval"


def test_list_executions_bare_array_newest_first(emu: AomEmulator, http: requests.Session) -> None:
    first = execute(emu, http, "fast-success")
    second = execute(emu, http, "fast-success")
    execute(emu, http, "wf-fail")
    url = emu.base_url + aom("/workflow/fast-success/executions")
    response = http.get(url, params={"x_enterprise_project_id": "0"}, headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [item["execution_id"] for item in body] == [second, first]
    for item in body:
        assert item["created_by"] == DEFAULT_IAM_USER
        assert item["workflow_id"] == "fast-success" and item["project_id"] == PID
        assert {"status", "begin_time", "end_time", "last_update_time", "approve_user_name_list"} <= set(item)
        assert 1 <= len(item["execution_result_list"]) <= 200
        assert {"workflow_edit_time", "last_record_id_with_snapshot"} <= set(item)
    empty = http.get(emu.base_url + aom("/workflow/wf-long/executions"), headers={"X-Auth-Token": STATIC})
    assert empty.json() == []
    invalid = http.get(url, params={"x_enterprise_project_id": ""}, headers={"X-Auth-Token": STATIC})
    assert invalid.status_code == 400


def test_terminate_cancels_once(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "wf-long")
    url = emu.base_url + aom(f"/workflow/wf-long/executions/{execution_id}/terminate")
    response = http.post(url, headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    assert response.json() == {"result": "success"}
    cancelled = status_of(emu, http, "wf-long", execution_id)
    assert cancelled["status"] == "cancel"
    assert cancelled["end_time"] >= cancelled["begin_time"]
    assert cancelled["execution_result_list"][0]["status"] == "cancel"

    again = http.post(url, headers={"X-Auth-Token": STATIC})
    assert again.status_code == 400
    assert again.json() == {"error_code": "AOM.31001302", "error_msg": "execution already finished.", "http_code": 400}
    missing = http.post(
        emu.base_url + aom("/workflow/wf-long/executions/nope/terminate"), headers={"X-Auth-Token": STATIC}
    )
    assert missing.status_code == 404 and missing.json()["error_code"] == "AOM.31001307"


def test_terminate_waiting_approval_and_finished(emu: AomEmulator, http: requests.Session) -> None:
    waiting = execute(emu, http, "fast-approval")
    finished = execute(emu, http, "fast-success")
    time.sleep(FAST + 0.05)
    headers = {"X-Auth-Token": STATIC}
    ok = http.post(emu.base_url + aom(f"/workflow/fast-approval/executions/{waiting}/terminate"), headers=headers)
    assert ok.status_code == 200
    assert status_of(emu, http, "fast-approval", waiting)["status"] == "cancel"
    late = http.post(emu.base_url + aom(f"/workflow/fast-success/executions/{finished}/terminate"), headers=headers)
    assert late.status_code == 400


def test_workflow_list_filters_and_pages(emu: AomEmulator, http: requests.Session) -> None:
    url = emu.base_url + aom("/workflow-list")
    headers = {"X-Auth-Token": STATIC}

    def listing(query: dict[str, Any] | None) -> dict[str, Any]:
        response = http.post(url, headers=headers, json=query) if query is not None else http.post(url, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"elements", "total_elements"}
        return body

    everything = listing(None)
    assert everything["total_elements"] == 7
    assert [w["id"] for w in everything["elements"]] == [
        "wf-success",
        "wf-fail",
        "wf-approval",
        "wf-long",
        "fast-success",
        "fast-fail",
        "fast-approval",
    ]
    element = everything["elements"][0]
    assert element["workflow_id"] == element["id"] == "wf-success"
    assert element["status"] == "" and element["last_execution_id"] == ""
    assert element["project_id"] == PID and element["enterprise_project_id"] == "0"
    assert element["input"] == {} and element["tags"] == {}
    assert isinstance(element["create_time"], int) and isinstance(element["update_time"], int)

    assert [w["id"] for w in listing({"search": "FAST"})["elements"]] == ["fast-success", "fast-fail", "fast-approval"]
    assert [w["id"] for w in listing({"type": "cron"})["elements"]] == ["fast-approval"]
    page = listing({"page": 2, "size": 3})
    assert page["total_elements"] == 7
    assert [w["id"] for w in page["elements"]] == ["wf-long", "fast-success", "fast-fail"]
    assert listing({"page": 4, "size": 3})["elements"] == []

    execution_id = execute(emu, http, "fast-fail")
    time.sleep(FAST + 0.05)
    failed = listing({"status": "fail"})
    assert failed["total_elements"] == 1
    [workflow] = failed["elements"]
    assert workflow["id"] == "fast-fail" and workflow["last_execution_id"] == execution_id
    assert workflow["last_execution_end_time"] >= workflow["last_execution_start_time"] > 0

    ordered = listing({"sort_field": "last_execution_start_time", "sort_type": "DESC", "size": 1})
    assert ordered["elements"][0]["id"] == "fast-fail"

    bad_queries: list[Any] = [
        {"page": 0},
        {"size": 101},
        {"type": "weekly"},
        {"status": "done"},
        {"sort_field": "name"},
        {"search": 5},
        [1],
    ]
    for bad in bad_queries:
        response = http.post(url, headers=headers, json=bad)
        assert response.status_code == 400, bad
        assert response.json() == {"error_code": "AOM.31001302", "error_msg": "Invalid param", "http_code": 400}


# -- node operations (§1.5) ---------------------------------------------------

#: Each task of these workflows takes OPS_HALF seconds: long enough to read a
#: restarted node while it runs, short enough to wait for its end.
OPS_DURATION = 2.0
OPS_HALF = OPS_DURATION / 2
#: Backdating an execution this far puts it past its first waiting point.
LONG_AGO = 30.0


def ops_workflows() -> list[WorkflowSpec]:
    return [
        WorkflowSpec(id="op-success", name="op success", outcome="success", duration=OPS_DURATION),
        WorkflowSpec(id="op-fail", name="op fail", outcome="fail", duration=OPS_DURATION),
        WorkflowSpec(id="op-pause-on-fail", name="op pause on fail", outcome="pause_on_fail", duration=OPS_DURATION),
        WorkflowSpec(id="op-pause", name="op pause", outcome="pause", duration=OPS_DURATION),
        WorkflowSpec(
            id="op-approval", name="op approval", outcome="approval", duration=OPS_DURATION, approvers=["ops-lead"]
        ),
    ]


@pytest.fixture
def ops_emu() -> Iterator[AomEmulator]:
    config = EmulatorConfig(static_tokens=[STATIC], workflows=[*core_workflows(), *ops_workflows()])
    with AomEmulator(config) as emulator:
        yield emulator


def backdated(emu: AomEmulator, workflow_id: str, ago: float = LONG_AGO) -> str:
    """An execution of ``workflow_id`` that started ``ago`` seconds ago."""
    execution_id = emu.state.create_execution(workflow_id, DEFAULT_IAM_USER, started_ago=ago)
    assert execution_id is not None
    return execution_id


def operate(
    emu: AomEmulator,
    http: requests.Session,
    workflow_id: str,
    execution_id: str,
    query: Any,
) -> requests.Response:
    url = emu.base_url + aom(f"/workflow/{workflow_id}/executions/{execution_id}/operation")
    return http.post(url, params=query, headers={"X-Auth-Token": STATIC})


def accept(
    emu: AomEmulator, http: requests.Session, workflow_id: str, execution_id: str, action: str, node: str
) -> None:
    response = operate(emu, http, workflow_id, execution_id, {"action": action, "node_id": node})
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "success"}


def assert_refused(response: requests.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"error_code": "AOM.31001302", "error_msg": message, "http_code": 400}


def nodes_by_id(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["node_id"]: node for node in detail["execution_result_list"]}


def wait_status(
    emu: AomEmulator, http: requests.Session, workflow_id: str, execution_id: str, wanted: str
) -> dict[str, Any]:
    """The execution detail once its status is ``wanted``."""

    def reached() -> dict[str, Any] | None:
        detail = status_of(emu, http, workflow_id, execution_id)
        return detail if detail["status"] == wanted else None

    return wait_for(reached, timeout=10, what=f"{workflow_id} {execution_id} to be {wanted}")


def last_operation_ms(emu: AomEmulator, execution_id: str) -> int:
    return epoch_ms(emu.state.operations(execution_id)[-1]["time"])


def test_fail_outcome_restart_after_the_end_reruns_the_node_then_succeeds(
    ops_emu: AomEmulator, http: requests.Session
) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-fail")
    failed = status_of(emu, http, "op-fail", execution_id)
    assert failed["status"] == "fail" and failed["end_time"] > 0
    first_node, failed_node = failed["execution_result_list"]
    assert (first_node["status"], failed_node["status"]) == ("success", "fail")
    assert failed_node["output"] == {
        "code": 1,
        "message": "node_2 failed: script exited with code 1",
        "error_msg": "script exited with code 1",
    }

    accept(emu, http, "op-fail", execution_id, "restart", "node_2")
    restart_ms = last_operation_ms(emu, execution_id)
    running = status_of(emu, http, "op-fail", execution_id)
    assert running["status"] == "executing" and running["end_time"] == 0
    rerun = nodes_by_id(running)["node_2"]
    assert rerun["status"] == "executing" and rerun["output"] == {}
    assert rerun["begin_time"] == restart_ms and rerun["end_time"] == 0
    assert rerun["function_execution_id"] != failed_node["function_execution_id"]
    assert nodes_by_id(running)["node_1"] == first_node
    assert running["last_update_time"] == restart_ms

    done = wait_status(emu, http, "op-fail", execution_id, "success")
    second_run = nodes_by_id(done)["node_2"]
    assert second_run["status"] == "success"
    assert second_run["output"] == {"code": 0, "message": "node_2 finished successfully on run 2"}
    assert second_run["begin_time"] == restart_ms
    assert second_run["end_time"] == pytest.approx(restart_ms + OPS_HALF * 1000, abs=1)
    assert done["end_time"] == done["last_update_time"] == second_run["end_time"]
    assert [(op["action"], op["node_id"]) for op in emu.state.operations(execution_id)] == [("restart", "node_2")]

    assert_refused(
        operate(emu, http, "op-fail", execution_id, {"action": "restart", "node_id": "node_2"}),
        "action restart refused: node node_2 is success, execution is success",
    )


def test_pause_on_fail_waits_pausing_then_restart_reruns_the_node(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause-on-fail")
    paused = status_of(emu, http, "op-pause-on-fail", execution_id)
    assert paused["status"] == "pausing" and paused["end_time"] == 0
    failed_node = nodes_by_id(paused)["node_2"]
    assert failed_node["status"] == "fail" and failed_node["end_time"] > 0
    assert "failed" in failed_node["output"]["message"]
    # Paused for good until someone acts: still the same later on.
    assert status_of(emu, http, "op-pause-on-fail", execution_id) == paused

    accept(emu, http, "op-pause-on-fail", execution_id, "restart", "node_2")
    restart_ms = last_operation_ms(emu, execution_id)
    running = status_of(emu, http, "op-pause-on-fail", execution_id)
    assert running["status"] == "executing" and running["end_time"] == 0
    assert nodes_by_id(running)["node_2"]["status"] == "executing"
    assert nodes_by_id(running)["node_2"]["begin_time"] == restart_ms

    done = wait_status(emu, http, "op-pause-on-fail", execution_id, "success")
    node = nodes_by_id(done)["node_2"]
    assert node["output"] == {"code": 0, "message": "node_2 finished successfully on run 2"}
    assert node["begin_time"] == restart_ms and done["end_time"] == node["end_time"] > restart_ms


def test_pause_on_fail_skip_marks_the_node_skipped_and_ends_success(
    ops_emu: AomEmulator, http: requests.Session
) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause-on-fail")
    before = nodes_by_id(status_of(emu, http, "op-pause-on-fail", execution_id))["node_2"]

    accept(emu, http, "op-pause-on-fail", execution_id, "skip", "node_2")
    skip_ms = last_operation_ms(emu, execution_id)
    done = status_of(emu, http, "op-pause-on-fail", execution_id)
    assert done["status"] == "success"
    assert [node["node_id"] for node in done["execution_result_list"]] == ["node_1", "node_2"]
    skipped = nodes_by_id(done)["node_2"]
    assert skipped["status"] == "skip" and skipped["output"] == {"message": "skipped by user"}
    assert skipped["begin_time"] == before["begin_time"] and skipped["end_time"] == skip_ms
    assert done["end_time"] == done["last_update_time"] == skip_ms
    assert [(op["action"], op["node_id"]) for op in emu.state.operations(execution_id)] == [("skip", "node_2")]

    assert_refused(
        operate(emu, http, "op-pause-on-fail", execution_id, {"action": "skip", "node_id": "node_2"}),
        "action skip refused: node node_2 is skip, execution is success",
    )


def test_pause_continue_passes_the_pause_node_then_runs_node_2(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause")
    paused = status_of(emu, http, "op-pause", execution_id)
    assert paused["status"] == "pausing" and paused["end_time"] == 0
    assert [(node["node_id"], node["status"]) for node in paused["execution_result_list"]] == [
        ("node_1", "success"),
        ("pause_1", "pausing"),
    ]
    pause_node = nodes_by_id(paused)["pause_1"]
    assert pause_node["end_time"] == 0 and pause_node["begin_time"] == nodes_by_id(paused)["node_1"]["end_time"]

    accept(emu, http, "op-pause", execution_id, "continue", "pause_1")
    continue_ms = last_operation_ms(emu, execution_id)
    running = status_of(emu, http, "op-pause", execution_id)
    assert running["status"] == "executing" and running["end_time"] == 0
    passed, node_2 = nodes_by_id(running)["pause_1"], nodes_by_id(running)["node_2"]
    assert passed["status"] == "success" and passed["end_time"] == continue_ms
    assert node_2["status"] == "executing" and node_2["begin_time"] == continue_ms and node_2["end_time"] == 0

    done = wait_status(emu, http, "op-pause", execution_id, "success")
    assert [node["status"] for node in done["execution_result_list"]] == ["success", "success", "success"]
    finished = nodes_by_id(done)["node_2"]
    assert finished["output"] == {"code": 0, "message": "node_2 finished successfully"}
    assert finished["end_time"] == pytest.approx(continue_ms + OPS_HALF * 1000, abs=1)
    assert done["end_time"] == done["last_update_time"] == finished["end_time"]


@pytest.mark.parametrize(
    ("workflow_id", "ago", "cancelled", "action", "node_id", "node_state", "execution_status"),
    [
        # Still executing: nothing waits for an operation.
        ("op-fail", 0, False, "restart", "node_1", "is executing", "executing"),
        ("op-fail", 0, False, "skip", "node_2", "has not started", "executing"),
        ("op-pause", 0, False, "continue", "pause_1", "has not started", "executing"),
        # Ended success.
        ("op-success", LONG_AGO, False, "restart", "node_2", "is success", "success"),
        ("op-success", LONG_AGO, False, "skip", "node_1", "is success", "success"),
        # Ended fail: only a restart of the failed node fits.
        ("op-fail", LONG_AGO, False, "skip", "node_2", "is fail", "fail"),
        ("op-fail", LONG_AGO, False, "continue", "node_2", "is fail", "fail"),
        ("op-fail", LONG_AGO, False, "restart", "node_1", "is success", "fail"),
        # Paused on a failed node: continue does not fit, nor another node.
        ("op-pause-on-fail", LONG_AGO, False, "continue", "node_2", "is fail", "pausing"),
        ("op-pause-on-fail", LONG_AGO, False, "skip", "node_1", "is success", "pausing"),
        # Paused on a pause node: restart and skip do not fit it, nor a node after it.
        ("op-pause", LONG_AGO, False, "restart", "pause_1", "is pausing", "pausing"),
        ("op-pause", LONG_AGO, False, "skip", "pause_1", "is pausing", "pausing"),
        ("op-pause", LONG_AGO, False, "continue", "node_2", "has not started", "pausing"),
        # Unknown node ids.
        ("op-pause", LONG_AGO, False, "continue", "pause_9", "does not exist", "pausing"),
        ("op-pause-on-fail", LONG_AGO, False, "restart", "node_3", "does not exist", "pausing"),
        # Waiting for approval: no operation moves it.
        ("op-approval", LONG_AGO, False, "continue", "approval_1", "is waitApproval", "waitApproval"),
        ("op-approval", LONG_AGO, False, "skip", "approval_1", "is waitApproval", "waitApproval"),
        # Cancelled executions take no operation, even where they waited for one.
        ("op-pause-on-fail", LONG_AGO, True, "restart", "node_2", "is fail", "cancel"),
        ("op-pause", LONG_AGO, True, "continue", "pause_1", "is cancel", "cancel"),
        ("op-success", 0, True, "restart", "node_1", "is cancel", "cancel"),
    ],
)
def test_operation_that_does_not_fit_the_state_is_refused(
    ops_emu: AomEmulator,
    http: requests.Session,
    workflow_id: str,
    ago: float,
    cancelled: bool,
    action: str,
    node_id: str,
    node_state: str,
    execution_status: str,
) -> None:
    emu = ops_emu
    execution_id = backdated(emu, workflow_id, ago)
    if cancelled:
        assert emu.state.terminate(workflow_id, execution_id) == "cancelled"
    before = status_of(emu, http, workflow_id, execution_id)
    assert before["status"] == execution_status
    response = operate(emu, http, workflow_id, execution_id, {"action": action, "node_id": node_id})
    assert_refused(response, f"action {action} refused: node {node_id} {node_state}, execution is {execution_status}")
    assert emu.state.operations(execution_id) == []
    assert status_of(emu, http, workflow_id, execution_id)["status"] == execution_status


def test_operation_parameter_errors_and_unknown_ids(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause")
    invalid = {"error_code": "AOM.31001302", "error_msg": "Invalid param", "http_code": 400}
    bad_queries: list[Any] = [
        {"node_id": "pause_1"},
        {"action": "continue"},
        {"action": "pause", "node_id": "pause_1"},
        {"action": "CONTINUE", "node_id": "pause_1"},
        {"action": "", "node_id": "pause_1"},
        {"action": "continue", "node_id": ""},
        {"action": "continue", "node_id": "n" * 65},
        [("action", "continue"), ("action", "continue"), ("node_id", "pause_1")],
        "",
    ]
    for query in bad_queries:
        response = operate(emu, http, "op-pause", execution_id, query)
        assert response.status_code == 400, query
        assert response.json() == invalid, query
    query = {"action": "continue", "node_id": "pause_1"}
    missing_execution = operate(emu, http, "op-pause", "nope", query)
    assert missing_execution.status_code == 404
    assert missing_execution.json() == {
        "error_code": "AOM.31001307",
        "error_msg": "execution not exist.",
        "http_code": 404,
    }
    # An execution of another workflow is unknown under this one.
    assert operate(emu, http, "op-fail", execution_id, query).status_code == 404
    missing_workflow = operate(emu, http, "nope", execution_id, query)
    assert missing_workflow.status_code == 404 and missing_workflow.json()["error_code"] == "AOM.31001306"
    assert emu.state.operations(execution_id) == []
    assert status_of(emu, http, "op-pause", execution_id)["status"] == "pausing"
    with pytest.raises(KeyError):
        emu.state.operations("nope")
    with pytest.raises(ValueError):
        emu.state.operate("op-pause", execution_id, "pause", "pause_1")


def test_operation_with_aksk_signature(ops_emu: AomEmulator, http: requests.Session) -> None:
    execution_id = backdated(ops_emu, "op-pause")
    path = aom(f"/workflow/op-pause/executions/{execution_id}/operation")
    query = "action=continue&node_id=pause_1"
    headers = signed_headers(ops_emu, "POST", path, query)
    response = http.post(f"{ops_emu.base_url}{path}?{query}", headers=headers)
    assert response.status_code == 200 and response.json() == {"result": "success"}
    assert [(op["action"], op["node_id"]) for op in ops_emu.state.operations(execution_id)] == [("continue", "pause_1")]


def test_terminate_paused_and_restarted_executions(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    headers = {"X-Auth-Token": STATIC}

    def terminate(workflow_id: str, execution_id: str) -> requests.Response:
        return http.post(
            emu.base_url + aom(f"/workflow/{workflow_id}/executions/{execution_id}/terminate"), headers=headers
        )

    paused = backdated(emu, "op-pause")
    assert terminate("op-pause", paused).json() == {"result": "success"}
    cancelled = status_of(emu, http, "op-pause", paused)
    cancel_ms = cancelled["end_time"]
    assert cancelled["status"] == "cancel" and abs(cancel_ms / 1000 - time.time()) < 5
    pause_node = nodes_by_id(cancelled)["pause_1"]
    assert pause_node["status"] == "cancel" and pause_node["end_time"] == cancel_ms
    assert pause_node["output"] == {"message": "execution terminated by user"}
    assert nodes_by_id(cancelled)["node_1"]["status"] == "success"
    assert cancelled["last_update_time"] == cancel_ms
    assert terminate("op-pause", paused).status_code == 400

    # A failed node that waits for restart/skip stays failed once the execution is cancelled.
    failed = backdated(emu, "op-pause-on-fail")
    assert terminate("op-pause-on-fail", failed).status_code == 200
    detail = status_of(emu, http, "op-pause-on-fail", failed)
    assert detail["status"] == "cancel" and detail["end_time"] > 0
    assert nodes_by_id(detail)["node_2"]["status"] == "fail"
    assert detail["last_update_time"] == detail["end_time"]

    # A fail outcome is terminal, but once restarted it runs again and can be cancelled.
    ended = backdated(emu, "op-fail")
    assert terminate("op-fail", ended).status_code == 400
    accept(emu, http, "op-fail", ended, "restart", "node_2")
    assert terminate("op-fail", ended).status_code == 200
    detail = status_of(emu, http, "op-fail", ended)
    assert detail["status"] == "cancel"
    rerun = nodes_by_id(detail)["node_2"]
    assert rerun["status"] == "cancel" and rerun["end_time"] == detail["end_time"]
    assert rerun["begin_time"] == last_operation_ms(emu, ended)


def test_execution_list_briefs_show_node_operations(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause-on-fail")
    accept(emu, http, "op-pause-on-fail", execution_id, "skip", "node_2")
    response = http.get(emu.base_url + aom("/workflow/op-pause-on-fail/executions"), headers={"X-Auth-Token": STATIC})
    [brief] = response.json()
    assert brief["status"] == "success"
    assert [(node["node_id"], node["status"]) for node in brief["execution_result_list"]] == [
        ("node_1", "success"),
        ("node_2", "skip"),
    ]
    assert brief["end_time"] == last_operation_ms(emu, execution_id)


def test_admin_executions_include_operations(ops_emu: AomEmulator, http: requests.Session) -> None:
    emu = ops_emu
    execution_id = backdated(emu, "op-pause")
    accept(emu, http, "op-pause", execution_id, "continue", "pause_1")
    [listed] = http.get(emu.base_url + "/_emulator/executions").json()
    assert listed["execution_id"] == execution_id
    [operation] = listed["operations"]
    assert set(operation) == {"time", "action", "node_id"}
    assert (operation["action"], operation["node_id"]) == ("continue", "pause_1")
    assert abs(operation["time"] - time.time()) < 5
    assert listed["operations"] == emu.state.operations(execution_id)
    # The state's own list stays the plain briefs.
    assert "operations" not in emu.state.executions()[0]


def test_admin_workflows_take_type_and_the_new_outcomes(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/workflows"
    for outcome in ("pause", "pause_on_fail"):
        spec = {"id": f"wf-{outcome}", "outcome": outcome, "duration": 0, "type": "cron"}
        assert http.post(admin, json=spec).json() == {"result": "ok"}
    stored = {w["id"]: w for w in http.get(admin).json()}
    assert stored["wf-pause"]["type"] == "cron" and stored["wf-pause_on_fail"]["outcome"] == "pause_on_fail"
    paused = execute(emu, http, "wf-pause")
    assert nodes_by_id(status_of(emu, http, "wf-pause", paused))["pause_1"]["status"] == "pausing"
    failed = execute(emu, http, "wf-pause_on_fail")
    assert status_of(emu, http, "wf-pause_on_fail", failed)["status"] == "pausing"
    listed = http.post(emu.base_url + aom("/workflow-list"), headers={"X-Auth-Token": STATIC}, json={"type": "cron"})
    assert {w["id"]: w["trigger_status"] for w in listed.json()["elements"]} == {
        "fast-approval": "enable",
        "wf-pause": "enable",
        "wf-pause_on_fail": "enable",
    }


# -- trigger switch (§1.8) ----------------------------------------------------


def set_trigger(emu: AomEmulator, http: requests.Session, workflow_id: str, query: Any) -> requests.Response:
    url = emu.base_url + aom(f"/workflow/{workflow_id}/trigger/action")
    return http.put(url, params=query, headers={"X-Auth-Token": STATIC})


def triggers(emu: AomEmulator, http: requests.Session) -> dict[str, tuple[str, str]]:
    """``(trigger_status, trigger_id)`` of every workflow in the list."""
    response = http.post(emu.base_url + aom("/workflow-list"), headers={"X-Auth-Token": STATIC}, json={"size": 100})
    return {w["id"]: (w["trigger_status"], w["trigger_id"]) for w in response.json()["elements"]}


def test_trigger_switch_enable_and_disable_a_cron_workflow(emu: AomEmulator, http: requests.Session) -> None:
    initial = triggers(emu, http)
    status, trigger_id = initial["fast-approval"]
    assert status == "enable" and re.fullmatch(r"[0-9a-f]{32}", trigger_id)
    assert {initial[w] for w in initial if w != "fast-approval"} == {("", "")}

    response = set_trigger(emu, http, "fast-approval", {"action": "disable"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == b'"success"' and response.json() == "success"
    assert triggers(emu, http)["fast-approval"] == ("disable", trigger_id)
    # Idempotent: disabling again is fine.
    assert set_trigger(emu, http, "fast-approval", {"action": "disable"}).status_code == 200
    assert set_trigger(emu, http, "fast-approval", {"action": "enable"}).status_code == 200
    assert triggers(emu, http)["fast-approval"] == ("enable", trigger_id)


def test_trigger_switch_refuses_manual_unknown_and_invalid(emu: AomEmulator, http: requests.Session) -> None:
    manual = set_trigger(emu, http, "wf-success", {"action": "enable"})
    assert manual.status_code == 400
    assert manual.json() == {
        "error_code": "AOM.31001302",
        "error_msg": "workflow wf-success has no trigger: it is not a cron workflow.",
        "http_code": 400,
    }
    unknown = set_trigger(emu, http, "nope", {"action": "enable"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error_code": "AOM.31001306", "error_msg": "workflow not exist.", "http_code": 404}
    invalid = {"error_code": "AOM.31001302", "error_msg": "Invalid param", "http_code": 400}
    for query in [{}, {"action": "pause"}, {"action": ""}, {"action": "Enable"}, [("action", "enable")] * 2]:
        response = set_trigger(emu, http, "fast-approval", query)
        assert response.status_code == 400, query
        assert response.json() == invalid, query
    assert triggers(emu, http)["fast-approval"][0] == "enable"
    assert triggers(emu, http)["wf-success"] == ("", "")


def test_trigger_switch_survives_a_cron_replacement_only(emu: AomEmulator, http: requests.Session) -> None:
    assert set_trigger(emu, http, "fast-approval", {"action": "disable"}).status_code == 200
    emu.state.add_workflow(
        WorkflowSpec(id="fast-approval", name="still cron", outcome="success", duration=0, type="cron")
    )
    assert triggers(emu, http)["fast-approval"][0] == "disable"
    emu.state.add_workflow(WorkflowSpec(id="fast-approval", name="now manual", outcome="success", duration=0))
    assert triggers(emu, http)["fast-approval"] == ("", "")
    assert set_trigger(emu, http, "fast-approval", {"action": "enable"}).status_code == 400
    emu.state.add_workflow(
        WorkflowSpec(id="fast-approval", name="cron again", outcome="success", duration=0, type="cron")
    )
    assert triggers(emu, http)["fast-approval"][0] == "enable"


# -- workflow list: same names, search, paging ---------------------------------


def test_workflow_list_same_names_search_and_pages(emu: AomEmulator, http: requests.Session) -> None:
    for index in range(5):
        emu.state.add_workflow(
            WorkflowSpec(id=f"backup-{index}", name="Nightly Backup", outcome="success", duration=1, type="cron")
        )
    emu.state.add_workflow(WorkflowSpec(id="other", name="other", outcome="pause_on_fail", duration=1))
    url = emu.base_url + aom("/workflow-list")

    def listing(query: dict[str, Any]) -> dict[str, Any]:
        response = http.post(url, headers={"X-Auth-Token": STATIC}, json=query)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    same = listing({"search": "nightly BACKUP"})
    assert same["total_elements"] == 5
    assert [w["id"] for w in same["elements"]] == [f"backup-{index}" for index in range(5)]
    assert {w["name"] for w in same["elements"]} == {"Nightly Backup"}
    pages = [listing({"search": "nightly", "page": page, "size": 2}) for page in (1, 2, 3, 4)]
    assert [page["total_elements"] for page in pages] == [5, 5, 5, 5]
    assert [[w["id"] for w in page["elements"]] for page in pages] == [
        ["backup-0", "backup-1"],
        ["backup-2", "backup-3"],
        ["backup-4"],
        [],
    ]
    # The description names the outcome, and search matches it too.
    by_description = listing({"search": "PAUSE_ON_FAIL after"})
    assert [w["id"] for w in by_description["elements"]] == ["other"]
    assert listing({"search": "nightly", "size": 100})["total_elements"] == 5
    assert len(listing({"size": 100})["elements"]) == 7 + 6
    assert listing({"search": "nightly", "type": "manual"})["total_elements"] == 0
    assert http.post(url, headers={"X-Auth-Token": STATIC}, json={"size": 0}).status_code == 400


# -- pattern workflows -----------------------------------------------------------


def test_pattern_workflows_exist_implicitly_when_enabled(http: requests.Session) -> None:
    config = EmulatorConfig(static_tokens=[STATIC], pattern_workflows=True)
    with AomEmulator(config) as emu:
        quick = execute(emu, http, "wf-ok-trial-1")
        detail = status_of(emu, http, "wf-ok-trial-1", quick)
        assert detail["status"] == "executing" and detail["workflow_id"] == "wf-ok-trial-1"
        # Three seconds: a run backdated by 3 s is over, one by 2.5 s is not.
        assert status_of(emu, http, "wf-ok-x", backdated(emu, "wf-ok-x", 3.0))["status"] == "success"
        assert status_of(emu, http, "wf-ok-x", backdated(emu, "wf-ok-x", 2.5))["status"] == "executing"
        done = status_of(emu, http, "wf-ok-x", backdated(emu, "wf-ok-x", 3.0))
        assert done["end_time"] - done["begin_time"] == pytest.approx(3000, abs=2)

        slow = execute(emu, http, "wf-slow-trial-1")
        # A year later it still runs.
        assert status_of(emu, http, "wf-slow-y", backdated(emu, "wf-slow-y", 365 * 86400.0))["status"] == "executing"
        listed = http.get(emu.base_url + aom("/workflow/wf-slow-trial-1/executions"), headers={"X-Auth-Token": STATIC})
        assert [item["execution_id"] for item in listed.json()] == [slow]
        terminate = http.post(
            emu.base_url + aom(f"/workflow/wf-slow-trial-1/executions/{slow}/terminate"),
            headers={"X-Auth-Token": STATIC},
        )
        assert terminate.status_code == 200
        assert status_of(emu, http, "wf-slow-trial-1", slow)["status"] == "cancel"

        # Only registered workflows are listed; the prefix alone names none.
        names = http.post(emu.base_url + aom("/workflow-list"), headers={"X-Auth-Token": STATIC}, json={"size": 100})
        assert [w["id"] for w in names.json()["elements"]] == [spec.id for spec in default_workflows()]
        for workflow_id in ("wf-ok-", "wf-slow-", "wf-okay"):
            response = http.post(
                emu.base_url + aom(f"/workflow/{workflow_id}/executions"), headers={"X-Auth-Token": STATIC}
            )
            assert response.status_code == 404, workflow_id
        assert set_trigger(emu, http, "wf-ok-trial-1", {"action": "enable"}).status_code == 400
        assert emu.state.has_workflow("wf-ok-" + "x" * 58) and not emu.state.has_workflow("wf-ok-" + "x" * 59)


def test_pattern_workflows_are_off_by_default(emu: AomEmulator, http: requests.Session) -> None:
    assert EmulatorConfig().pattern_workflows is False
    for workflow_id in ("wf-ok-1", "wf-slow-1"):
        response = http.post(
            emu.base_url + aom(f"/workflow/{workflow_id}/executions"), headers={"X-Auth-Token": STATIC}
        )
        assert response.status_code == 404
        assert response.json()["error_code"] == "AOM.31001306"


def test_registered_workflow_wins_over_a_pattern(http: requests.Session) -> None:
    registered = WorkflowSpec(id="wf-ok-special", name="special", outcome="fail", duration=0)
    with AomEmulator(EmulatorConfig(static_tokens=[STATIC], workflows=[registered], pattern_workflows=True)) as emu:
        execution_id = execute(emu, http, "wf-ok-special")
        assert status_of(emu, http, "wf-ok-special", execution_id)["status"] == "fail"


def test_invalid_ids_and_foreign_project(emu: AomEmulator, http: requests.Session) -> None:
    headers = {"X-Auth-Token": STATIC}
    invalid = {"error_code": "AOM.31001302", "error_msg": "Invalid param", "http_code": 400}
    for path in [
        f"/v1/{PID[:-1]}/cms/workflow/wf-success/executions",
        f"/v1/{PID}0/cms/workflow/wf-success/executions",
        f"/v1/{PID}/cms/workflow/{'w' * 65}/executions",
        f"/v1/{PID}/cms/workflow//executions",
    ]:
        response = http.post(emu.base_url + path, headers=headers)
        assert response.status_code == 400, path
        assert response.json() == invalid
    long_execution = http.get(emu.base_url + aom(f"/workflow/wf-success/executions/{'e' * 65}/status"), headers=headers)
    assert long_execution.json() == invalid

    foreign = http.post(f"{emu.base_url}/v1/{'f' * 32}/cms/workflow/wf-success/executions", headers=headers)
    assert foreign.status_code == 401
    assert foreign.json() == {"error_code": "AOM.31009004", "error_msg": "auth failed.", "http_code": 401}
    assert emu.state.executions() == []


def test_unknown_path_and_method(emu: AomEmulator, http: requests.Session) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/v2/whatever"),
        ("DELETE", aom("/workflow/wf-success/executions")),
        ("POST", aom("/workflow/wf-success/executions/")),
    ]:
        response = http.request(method, emu.base_url + path)
        assert response.status_code == 404, path
        body = response.json()
        assert body["error_code"] == "APIG.0101"
        assert body["error_msg"] == "The API does not exist or has not been published in the environment"
        assert body["request_id"] == response.headers["X-Request-Id"]


def test_keep_alive_connection_is_reused(emu: AomEmulator) -> None:
    host, port = emu.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    try:
        request_ids = set()
        for _ in range(3):
            connection.request("POST", aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
            response = connection.getresponse()
            assert response.version == 11 and response.status == 200
            assert response.getheader("Content-Length") == str(len(response.read()))
            request_ids.add(response.getheader("X-Request-Id"))
        assert len(request_ids) == 3
        assert len(emu.state.executions()) == 3
    finally:
        connection.close()


def test_chunked_request_body(emu: AomEmulator) -> None:
    host, port = emu.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    try:
        chunks = iter([b'{"search": ', b'"fast", "size": 2}'])
        headers = {"X-Auth-Token": STATIC, "Content-Type": "application/json"}
        connection.request("POST", aom("/workflow-list"), body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 200
        body = json.loads(response.read())
        assert body["total_elements"] == 3 and len(body["elements"]) == 2
    finally:
        connection.close()


def test_protocol_errors_are_json_with_request_id(emu: AomEmulator, http: requests.Session) -> None:
    response = http.options(emu.base_url + aom("/workflow-list"))
    assert response.status_code == 501
    assert response.json()["request_id"] == response.headers["X-Request-Id"]


def test_emulator_does_not_import_airflow() -> None:
    code = (
        "import sys, airflow_provider_aom.emulator, airflow_provider_aom.emulator.__main__; "
        "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
        "assert not loaded, loaded"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr


# -- faults -------------------------------------------------------------------


EXECUTE = r"/cms/workflow/[^/]+/executions$"


def test_fault_delay_times_out_client_but_work_is_done(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("delay", method="POST", path=EXECUTE, delay=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC}, timeout=0.15)
    wait_for(lambda: len(emu.state.executions()) == 1, 5.0, "the delayed execute to be handled")
    # Used up: the next request is served at once.
    execute(emu, http, "wf-success")


def test_fault_drop_before_does_nothing(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("drop_before", path=EXECUTE)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert emu.state.executions() == []
    [record] = emu.state.requests()
    assert record["status"] == 0 and record["fault"] == "drop_before"
    execute(emu, http, "wf-success")


def test_fault_drop_after_does_the_work(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("drop_after", method="POST", path=EXECUTE)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert len(emu.state.executions()) == 1
    assert emu.state.requests()[0]["fault"] == "drop_after"


def test_fault_status_429_with_retry_after(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("status", path=EXECUTE, status=429, retry_after=1, count=2)
    url = emu.base_url + aom("/workflow/wf-success/executions")
    for _ in range(2):
        response = http.post(url, headers={"X-Auth-Token": STATIC})
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        body = response.json()
        assert body == {
            "error_code": "APIG.0308",
            "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 minute",
            "request_id": response.headers["X-Request-Id"],
        }
    assert emu.state.executions() == []
    assert http.post(url, headers={"X-Auth-Token": STATIC}).status_code == 200


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, {"error_code": "AOM.31001405", "error_msg": "execution internal server error.", "http_code": 500}),
        (503, {"error_code": "APIG.0201", "error_msg": "Backend unavailable."}),
        (504, {"error_code": "APIG.0201", "error_msg": "Backend timeout."}),
    ],
)
def test_fault_status_5xx(emu: AomEmulator, http: requests.Session, status: int, expected: dict[str, Any]) -> None:
    emu.state.add_fault("status", method="POST", status=status)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == status
    body = response.json()
    assert {key: body[key] for key in expected} == expected
    if "http_code" not in expected:
        assert body["request_id"] == response.headers["X-Request-Id"]
    assert "Retry-After" not in response.headers
    assert emu.state.executions() == []


def test_fault_status_error_code_override(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("status", status=500, error_code="AOM.99999999", retry_after=0.5)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.json()["error_code"] == "AOM.99999999"
    assert response.headers["Retry-After"] == "0.5"


def test_fault_malformed_body(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("malformed", path=EXECUTE)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert len(emu.state.executions()) == 1


def test_fault_truncated_body(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("truncated", path=EXECUTE)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content))
    with pytest.raises(ValueError):
        json.loads(response.content)
    [execution] = emu.state.executions()
    full = json.dumps({"execution_id": execution["execution_id"]}).encode()
    assert response.content == full[: len(full) // 2]


def test_fault_expire_token(emu: AomEmulator, http: requests.Session) -> None:
    token = get_token(emu, http)
    emu.state.add_fault("expire_token", path=EXECUTE)
    url = emu.base_url + aom("/workflow/wf-success/executions")
    # The IAM call and an AK/SK call carry no token, so they leave the fault alone.
    assert http.post(url, headers=signed_headers(emu, "POST", aom("/workflow/wf-success/executions"))).ok
    assert_gateway_401(http.post(url, headers={"X-Auth-Token": token}), "token expires, expires_at: ")
    # The token stays expired; a new one works.
    assert_gateway_401(http.post(url, headers={"X-Auth-Token": token}), "token expires, expires_at: ")
    execute(emu, http, "wf-success", token=get_token(emu, http))
    assert len(emu.state.executions()) == 2


def test_fault_matching_by_method_path_and_count(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("status", method="GET", path=r"/status$", status=502, count=2)
    execution_id = execute(emu, http, "wf-success")  # POST: not matched
    url = emu.base_url + aom(f"/workflow/wf-success/executions/{execution_id}/status")
    assert [http.get(url, headers={"X-Auth-Token": STATIC}).status_code for _ in range(3)] == [502, 502, 200]
    assert emu.state.faults() == []
    with pytest.raises(ValueError):
        emu.state.add_fault("explode")
    with pytest.raises(ValueError):
        emu.state.add_fault("status", path="(")
    with pytest.raises(ValueError):
        emu.state.add_fault("status", count=0)
    emu.state.add_fault("drop_before")
    emu.state.clear_faults()
    execute(emu, http, "wf-success")


def test_fault_status_on_iam(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("status", path="^/v3/auth/tokens$", status=503)
    response = http.post(f"{emu.base_url}/v3/auth/tokens", json=password_body())
    assert response.status_code == 503
    assert get_token(emu, http)
    assert emu.state.iam_token_requests() == 2


def test_fault_trickle_sends_the_real_answer_unchanged(emu: AomEmulator) -> None:
    normal = raw_request(emu, "POST", aom("/workflow/wf-success/executions"))
    try:
        expected = read_raw_response(normal)
    finally:
        normal.close()
    emu.state.add_fault("trickle", path=EXECUTE, delay=0.002)
    sock = raw_request(emu, "POST", aom("/workflow/wf-success/executions"))
    try:
        raw = read_raw_response(sock)
    finally:
        sock.close()
    # Same status line and headers as an unfaulted answer; the route really ran.
    assert raw.split(b"\r\n", 1)[0] == expected.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"
    # Header for header the same, but for what differs between any two answers.
    varying = {"Date", "X-Request-Id"}
    assert [h for h in raw_headers(raw) if h[0] not in varying] == [
        h for h in raw_headers(expected) if h[0] not in varying
    ]
    assert [name for name, _ in raw_headers(raw)] == [name for name, _ in raw_headers(expected)]
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert [execution["execution_id"] for execution in emu.state.executions()][-1] == body["execution_id"]
    assert emu.state.requests()[-1]["fault"] == "trickle"


def test_fault_trickle_is_slow_and_ends_when_the_client_hangs_up(emu: AomEmulator) -> None:
    emu.state.add_fault("trickle", path=EXECUTE, delay=0.2)
    sock = raw_request(emu, "POST", aom("/workflow/wf-success/executions"))
    received = b""
    try:
        deadline = time.monotonic() + 0.9
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                break
            assert chunk
            received += chunk
    finally:
        sock.close()
    # At one byte per 0.2 s, under a second gives a handful of bytes of a ~250-byte answer.
    assert received and b"HTTP/1.1 200 OK".startswith(received[:15])
    assert len(received) < 30
    # Trickling the rest would take ~50 s; the handler notices the hang-up instead.
    wait_for(lambda: emu.open_connections == 0, 5.0, "the trickling handler to end")
    assert emu.state.requests()[-1]["fault"] == "trickle"


def test_fault_trickle_does_not_hold_up_stop() -> None:
    emulator = AomEmulator(EmulatorConfig(static_tokens=[STATIC])).start()
    try:
        emulator.state.add_fault("trickle", delay=30)
        sock = raw_request(emulator, "GET", aom("/workflow/wf-success/executions"))
        assert sock.recv(1) == b"H"
    finally:
        started = time.monotonic()
        emulator.stop()
    try:
        assert time.monotonic() - started < 3
        sock.settimeout(3)
        # The stopped server closes the connection: EOF or a reset, not a timeout.
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(4096) == b""
    finally:
        sock.close()


def test_fault_huge_sends_exactly_size_bytes_instead_of_the_route(emu: AomEmulator) -> None:
    size = 3 * payloads.CHUNK_SIZE + 12345
    emu.state.add_fault("huge", path=EXECUTE, size=size)
    connection = open_connection(emu)
    try:
        connection.request("POST", aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/json"
        assert response.getheader("Content-Length") == str(size)
        body = response.read()
    finally:
        connection.close()
    assert len(body) == size
    assert body == b"[" + (b"0," * size)[: size - 1]
    assert emu.state.executions() == []
    assert emu.state.requests()[-1]["fault"] == "huge"


def test_fault_huge_endless_until_the_client_closes(emu: AomEmulator) -> None:
    emu.state.add_fault("huge", size=-1)
    connection = open_connection(emu)
    try:
        connection.request("GET", aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        first = response.read(MIB)
        assert first == (b"[" + b"0," * MIB)[:MIB]
        # Still coming: another MiB is there for the taking.
        assert len(response.read(MIB)) == MIB
    finally:
        connection.close()
    wait_for(lambda: emu.open_connections == 0, 5.0, "the endless handler to end")


def test_fault_huge_default_size_stops_on_client_disconnect(emu: AomEmulator) -> None:
    emu.state.add_fault("huge")
    assert emu.state.faults()[0]["size"] == 400 * MIB
    connection = open_connection(emu)
    try:
        connection.request("GET", aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
        response = connection.getresponse()
        assert response.getheader("Content-Length") == str(400 * MIB)
        assert response.read(MIB).startswith(b"[0,0,")
    finally:
        connection.close()
    wait_for(lambda: emu.open_connections == 0, 5.0, "the huge handler to end")


def test_fault_gzip_bomb_inflates_to_size(emu: AomEmulator) -> None:
    size = 32 * MIB + 7
    emu.state.add_fault("gzip_bomb", size=size)
    connection = open_connection(emu)
    try:
        connection.request("GET", aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Encoding") == "gzip"
        assert response.getheader("Content-Type") == "application/json"
        compressed = response.read()
        assert response.getheader("Content-Length") == str(len(compressed))
    finally:
        connection.close()
    assert len(compressed) < size // 500
    inflater = zlib.decompressobj(wbits=31)
    first = inflater.decompress(compressed, MIB)
    assert len(first) == MIB and first[:1] == b"[" and not first[1:].strip(b" ")
    total = len(first)
    # Bounded steps: never more than 1 MiB inflated at once.
    while inflater.unconsumed_tail:
        piece = inflater.decompress(inflater.unconsumed_tail, MIB)
        assert not piece.strip(b" ")
        total += len(piece)
    total += len(inflater.flush())
    assert total == size and inflater.eof
    assert emu.state.requests()[-1]["fault"] == "gzip_bomb"
    # Computed once per size.
    assert payloads.gzip_bomb(size) is payloads.gzip_bomb(size)


def test_fault_gzip_bomb_default_is_1_gib_from_about_1_mb(emu: AomEmulator) -> None:
    emu.state.add_fault("gzip_bomb")
    assert emu.state.faults()[0]["size"] == 1024 * MIB
    response = requests.get(
        emu.base_url + aom("/workflow/wf-success/executions"),
        headers={"X-Auth-Token": STATIC},
        stream=True,
        timeout=60,
    )
    with response:
        assert response.headers["Content-Encoding"] == "gzip"
        compressed = response.raw.read(decode_content=False)
    assert MIB // 2 < len(compressed) < 2 * MIB
    inflater = zlib.decompressobj(wbits=31)
    assert inflater.decompress(compressed, 16) == b"[" + b" " * 15
    total = 16
    while inflater.unconsumed_tail:
        total += len(inflater.decompress(inflater.unconsumed_tail, 16 * MIB))
    assert total == 1024 * MIB


@pytest.mark.parametrize(
    "text",
    [
        '{"status": "", "execution_id": NaN, "end_time": Infinity}',
        "[" * 300 + "]" * 300,
        '{"execution_id": 12345, "status": ["success"], "begin_time": "yesterday"}',
        '{"status": "süccess"}',
        "",
    ],
    ids=["nan-and-empty-status", "300-deep", "wrong-types", "utf-8", "empty"],
)
def test_fault_body_sends_exact_text_with_200(emu: AomEmulator, http: requests.Session, text: str) -> None:
    emu.state.add_fault("body", path=EXECUTE, body=text)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == text.encode("utf-8")
    # Answered in place of the route: nothing was started.
    assert emu.state.executions() == []
    assert emu.state.requests()[-1]["fault"] == "body"


def test_fault_body_with_explicit_status_and_defaults(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("body", body='{"oops": true}', status=500)
    response = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 500 and response.content == b'{"oops": true}'
    emu.state.add_fault("status")
    emu.state.add_fault("body", body="{}")
    assert [fault["status"] for fault in emu.state.faults()] == [503, 200]


def test_fault_new_parameters_are_validated(emu: AomEmulator) -> None:
    bad: list[dict[str, Any]] = [
        {"kind": "body"},
        {"kind": "body", "body": 5},
        {"kind": "patch"},
        {"kind": "patch", "patch": [1]},
        {"kind": "patch", "patch": {"when": object()}},
        {"kind": "huge", "size": 0},
        {"kind": "huge", "size": -2},
        {"kind": "huge", "size": 1.5},
        {"kind": "huge", "size": True},
        {"kind": "gzip_bomb", "size": -1},
        {"kind": "status", "status": None, "size": "big"},
    ]
    for arguments in bad:
        kind = arguments.pop("kind")
        with pytest.raises(ValueError):
            emu.state.add_fault(kind, **arguments)
    assert emu.state.faults() == []


def test_fault_patch_sets_nan_nesting_and_wrong_types(emu: AomEmulator, http: requests.Session) -> None:
    execution_id = execute(emu, http, "wf-long")
    patch = {"status": float("nan"), "end_time": "yesterday", "execution_result_list": nested(300)}
    emu.state.add_fault("patch", method="GET", path="/status$", patch=patch)
    url = emu.base_url + aom(f"/workflow/wf-long/executions/{execution_id}/status")
    response = http.get(url, headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    assert b'"status": NaN' in response.content
    body = json.loads(response.content)
    assert math.isnan(body["status"]) and body["end_time"] == "yesterday"
    assert depth_of(body["execution_result_list"]) == 300
    # Keys not in the patch keep the route's values.
    assert body["execution_id"] == execution_id and body["project_id"] == PID
    assert emu.state.requests()[-1]["fault"] == "patch"
    assert http.get(url, headers={"X-Auth-Token": STATIC}).json()["status"] == "executing"


def test_fault_patch_applies_to_every_object_of_a_list(emu: AomEmulator, http: requests.Session) -> None:
    first = execute(emu, http, "wf-long")
    second = execute(emu, http, "wf-long")
    admin = emu.base_url + "/_emulator/faults"
    # The admin endpoint reads the NaN/Infinity literals Python's json writes.
    posted = http.post(
        admin,
        data='{"kind": "patch", "method": "GET", "path": "executions$", "patch": {"created_by": "mallory", '
        '"begin_time": Infinity}}',
    )
    assert posted.status_code == 200, posted.text
    response = http.get(emu.base_url + aom("/workflow/wf-long/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 200
    assert response.content.count(b'"begin_time": Infinity') == 2
    body = json.loads(response.content)
    assert [item["execution_id"] for item in body] == [second, first]
    for item in body:
        assert item["created_by"] == "mallory" and item["begin_time"] == float("inf")
        assert item["workflow_id"] == "wf-long"


def test_fault_patch_leaves_error_answers_alone(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("patch", patch={"error_code": "patched"})
    response = http.post(emu.base_url + aom("/workflow/nope/executions"), headers={"X-Auth-Token": STATIC})
    assert response.status_code == 404
    assert response.json() == {"error_code": "AOM.31001306", "error_msg": "workflow not exist.", "http_code": 404}
    assert emu.state.faults() == [] and emu.state.requests()[-1]["fault"] == "patch"


def test_admin_faults_accept_the_new_parameters(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/faults"
    for payload in [
        {"kind": "trickle", "delay": 0.5},
        {"kind": "huge", "size": -1},
        {"kind": "gzip_bomb", "size": MIB},
        {"kind": "body", "body": '{"status": ""}', "status": 202},
        {"kind": "patch", "patch": {"status": "weird"}},
    ]:
        assert http.post(admin, json=payload).status_code == 200, payload
    listed = http.get(admin).json()
    assert [fault["kind"] for fault in listed] == ["trickle", "huge", "gzip_bomb", "body", "patch"]
    assert listed[0]["delay"] == 0.5 and listed[1]["size"] == -1 and listed[2]["size"] == MIB
    assert listed[3]["body"] == '{"status": ""}' and listed[3]["status"] == 202
    assert listed[4]["patch"] == {"status": "weird"}
    for bad in [
        {"kind": "huge", "size": "big"},
        {"kind": "patch", "patch": [1]},
        {"kind": "body", "body": 5},
        {"kind": "body"},
    ]:
        assert http.post(admin, json=bad).status_code == 400, bad
    assert len(http.get(admin).json()) == 5


# -- state and admin ----------------------------------------------------------


def test_request_log_counts_and_reset(emu: AomEmulator, http: requests.Session) -> None:
    execute(emu, http, "wf-success")
    execute(emu, http, "wf-fail")
    http.get(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
    http.get(emu.base_url + "/nowhere")
    assert emu.state.count_requests() == 4
    assert emu.state.count_requests("POST") == 2
    assert emu.state.count_requests("get", aom("/workflow/")) == 1
    assert emu.state.count_requests(path_prefix="/nowhere") == 1
    record = emu.state.requests()[0]
    assert record["method"] == "POST" and record["status"] == 200 and record["auth"] == "token"
    assert "X-Auth-Token" not in json.dumps(emu.state.requests()) and STATIC not in json.dumps(emu.state.requests())

    emu.state.add_fault("drop_before")
    emu.state.reset()
    assert emu.state.executions() == [] and emu.state.count_requests() == 0 and emu.state.faults() == []
    execute(emu, http, "wf-success")


def test_admin_endpoints(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator"
    token = get_token(emu, http)
    execute(emu, http, "wf-success")

    executions = http.get(admin + "/executions").json()
    assert [e["workflow_id"] for e in executions] == ["wf-success"]
    log = http.get(admin + "/requests").json()
    assert [(r["method"], r["path"]) for r in log] == [
        ("POST", "/v3/auth/tokens"),
        ("POST", aom("/workflow/wf-success/executions")),
    ]

    assert http.post(admin + "/faults", json={"kind": "status", "status": 429, "path": "executions$"}).json() == {
        "result": "ok"
    }
    assert (
        http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC}).status_code
        == 429
    )
    assert http.post(admin + "/faults", json={"kind": "drop_before"}).ok
    assert len(http.get(admin + "/faults").json()) == 1
    assert http.delete(admin + "/faults").ok
    assert http.get(admin + "/faults").json() == []
    assert http.post(admin + "/faults", json={"kind": "nope"}).status_code == 400
    assert http.post(admin + "/faults", json={"kind": "delay", "bogus": 1}).status_code == 400

    assert http.post(admin + "/workflows", json={"id": "wf-new", "outcome": "fail", "duration": 0}).ok
    assert http.post(admin + "/workflows", json={"id": "wf-bad", "outcome": "maybe", "duration": 0}).status_code == 400
    assert "wf-new" in [w["id"] for w in http.get(admin + "/workflows").json()]
    new_id = execute(emu, http, "wf-new")
    assert status_of(emu, http, "wf-new", new_id)["status"] == "fail"

    assert http.post(admin + "/expire-tokens").ok
    expired = http.post(emu.base_url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": token})
    assert expired.status_code == 401

    assert http.post(admin + "/reset").ok
    assert http.get(admin + "/executions").json() == []
    assert http.get(admin + "/requests").json() == []
    assert http.get(admin + "/nothing").status_code == 404


def test_admin_creates_a_foreign_backdated_execution(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/executions"
    response = http.post(admin, json={"workflow_id": "wf-long", "created_by": "someone-else", "started_ago": 120})
    assert response.status_code == 200, response.text
    foreign = response.json()["execution_id"]
    assert set(response.json()) == {"execution_id"}
    mine = execute(emu, http, "wf-long")

    listed = http.get(emu.base_url + aom("/workflow/wf-long/executions"), headers={"X-Auth-Token": STATIC}).json()
    assert [item["execution_id"] for item in listed] == [mine, foreign]
    by_id = {item["execution_id"]: item for item in listed}
    assert by_id[foreign]["created_by"] == "someone-else"
    assert by_id[mine]["created_by"] == DEFAULT_IAM_USER
    assert abs(by_id[foreign]["begin_time"] / 1000 - (time.time() - 120)) < 5
    assert by_id[foreign]["status"] == "executing"

    # The whole lifecycle is shifted: a 0.2 s workflow started 10 s ago is already over.
    done = emu.state.create_execution("fast-success", "someone-else", started_ago=10)
    assert done is not None
    detail = status_of(emu, http, "fast-success", done)
    assert detail["status"] == "success"
    assert detail["end_time"] - detail["begin_time"] == pytest.approx(FAST * 1000, abs=2)
    assert abs(detail["begin_time"] / 1000 - (time.time() - 10)) < 5
    assert {e["execution_id"]: e["created_by"] for e in http.get(admin).json()}[done] == "someone-else"


def test_admin_create_execution_errors(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/executions"
    missing = http.post(admin, json={"workflow_id": "nope", "created_by": "someone-else"})
    assert missing.status_code == 404 and "error" in missing.json()
    for bad in [
        {"workflow_id": 5, "created_by": "someone-else"},
        {"workflow_id": "wf-long", "created_by": 5},
        {"workflow_id": "wf-long", "created_by": ""},
        {"workflow_id": "wf-long"},
        {"created_by": "someone-else"},
        {"workflow_id": "wf-long", "created_by": "x", "started_ago": "10"},
        {"workflow_id": "wf-long", "created_by": "x", "started_ago": -1},
        {"workflow_id": "wf-long", "created_by": "x", "started_ago": True},
        {"workflow_id": "wf-long", "created_by": "x", "bogus": 1},
    ]:
        response = http.post(admin, json=bad)
        assert response.status_code == 400, bad
        assert "error" in response.json()
    assert http.post(admin, data=b"[1]").status_code == 400
    assert (
        http.post(admin, data=b'{"workflow_id": "wf-long", "created_by": "x", "started_ago": NaN}').status_code == 400
    )
    assert emu.state.executions() == []


def test_add_workflow_overrides_and_validates(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_workflow(WorkflowSpec(id="wf-success", name="now failing", outcome="fail", duration=0))
    execution_id = execute(emu, http, "wf-success")
    assert status_of(emu, http, "wf-success", execution_id)["status"] == "fail"
    with pytest.raises(ValueError):
        emu.state.add_workflow(WorkflowSpec(id="x" * 65, name="x", outcome="success", duration=1))
    with pytest.raises(ValueError):
        emu.state.add_workflow(WorkflowSpec(id="neg", name="x", outcome="success", duration=-1))


def test_start_stop_lifecycle() -> None:
    emulator = AomEmulator()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    assert emulator.start() is emulator
    url = emulator.base_url
    assert url.startswith("http://127.0.0.1:") and emulator.port > 0
    session = requests.Session()
    session.trust_env = False
    # An idle keep-alive connection must not keep stop() waiting.
    assert session.post(url + "/_emulator/reset").ok
    started = time.monotonic()
    emulator.stop()
    emulator.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(url + "/_emulator/reset", timeout=2)
    session.close()


# -- CLI ----------------------------------------------------------------------


def _read_first_line(process: subprocess.Popen[str], timeout: float = 10.0) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


def start_cli(*options: str) -> subprocess.Popen[str]:
    """``python -m airflow_provider_aom.emulator --port 0 OPTIONS`` from the checkout, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aom.emulator", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=PYTHONPATH_ENV,
        cwd=ROOT,
    )


def test_cli_prints_url_first_and_stops_on_sigterm(http: requests.Session) -> None:
    process = start_cli("--workflow", "cli-quick:success:0", "--static-token", "cli-token")
    try:
        url = _read_first_line(process).rstrip("\n")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        response = http.post(url + aom("/workflow/cli-quick/executions"), headers={"X-Auth-Token": "cli-token"})
        assert response.status_code == 200
        assert http.get(url + "/_emulator/executions").json()[0]["workflow_id"] == "cli-quick"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert "/cms/workflow/cli-quick/executions" in stderr
        assert "cli-token" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_cli_help_documents_defaults() -> None:
    result = run_python("-m", "airflow_provider_aom.emulator", "--help")
    assert result.returncode == 0
    for expected in ["8089", "127.0.0.1", DEFAULT_PROJECT_ID, DEFAULT_REGION, "--workflow", "wf-approval"]:
        assert expected in result.stdout
    for expected in ["--pattern-workflows", "wf-ok-", "wf-slow-", "pause_on_fail", "continue"]:
        assert expected in result.stdout


def test_cli_serves_pattern_workflows_and_the_new_outcomes(http: requests.Session) -> None:
    process = start_cli(
        "--pattern-workflows",
        "--workflow",
        "cli-pause:pause:0",
        "--workflow",
        "cli-retry:pause_on_fail:0",
        "--static-token",
        "cli-token",
        "--quiet",
    )
    headers = {"X-Auth-Token": "cli-token"}
    try:
        url = _read_first_line(process).rstrip("\n")

        def run(workflow_id: str) -> str:
            response = http.post(url + aom(f"/workflow/{workflow_id}/executions"), headers=headers)
            assert response.status_code == 200, response.text
            return str(response.json()["execution_id"])

        def status(workflow_id: str, execution_id: str) -> str:
            path = aom(f"/workflow/{workflow_id}/executions/{execution_id}/status")
            return str(http.get(url + path, headers=headers).json()["status"])

        def act(workflow_id: str, execution_id: str, action: str, node_id: str) -> None:
            path = aom(f"/workflow/{workflow_id}/executions/{execution_id}/operation")
            response = http.post(url + path, params={"action": action, "node_id": node_id}, headers=headers)
            assert response.status_code == 200, response.text

        implicit = run("wf-ok-cli")
        assert status("wf-ok-cli", implicit) == "executing"
        paused = run("cli-pause")
        assert status("cli-pause", paused) == "pausing"
        act("cli-pause", paused, "continue", "pause_1")
        assert status("cli-pause", paused) == "success"
        failed = run("cli-retry")
        assert status("cli-retry", failed) == "pausing"
        act("cli-retry", failed, "skip", "node_2")
        assert status("cli-retry", failed) == "success"
        operations = {e["execution_id"]: e["operations"] for e in http.get(url + "/_emulator/executions").json()}
        assert [(op["action"], op["node_id"]) for op in operations[paused]] == [("continue", "pause_1")]
        assert operations[implicit] == []
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_cli_rejects_an_unknown_outcome() -> None:
    result = run_python("-m", "airflow_provider_aom.emulator", "--workflow", "x:maybe:1")
    assert result.returncode == 2
    assert "outcome must be one of success, fail, pause_on_fail, pause, approval" in result.stderr


# -- answer delay (a backend's latency) ------------------------------------------


def test_answer_delay_holds_each_aom_answer(http: requests.Session) -> None:
    config = EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows(), answer_delay=0.3)
    with AomEmulator(config) as emulator:
        started = time.monotonic()
        execution_id = execute(emulator, http, "wf-long")
        executed = time.monotonic()
        assert status_of(emulator, http, "wf-long", execution_id)["status"] == "executing"
        # Lower bounds only: a wait cannot end early, however loaded the machine is.
        assert executed - started >= 0.3
        assert time.monotonic() - executed >= 0.3
        assert [r["status"] for r in emulator.state.requests()] == [200, 200]


def test_answer_delay_holds_no_other_connection_nor_iam_and_ends_on_stop(http: requests.Session) -> None:
    emulator = AomEmulator(EmulatorConfig(static_tokens=[STATIC], answer_delay=600.0)).start()
    held = raw_request(emulator, "GET", aom(f"/workflow/wf-long/executions/{uuid.uuid4()}/status"))
    try:
        # While that answer waits, IAM and admin calls on other connections are served.
        assert get_token(emulator, http).startswith("MII")
        assert http.get(emulator.base_url + "/_emulator/requests", timeout=10).status_code == 200
        held.settimeout(0.2)
        with pytest.raises(TimeoutError):
            held.recv(1)
        started = time.monotonic()
    finally:
        emulator.stop()
    # Stopping does not wait for the delay: the held connection is dropped without an answer.
    assert time.monotonic() - started < 60
    held.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        assert held.recv(1) == b""
    held.close()


def test_cli_answer_delay_is_documented_and_checked() -> None:
    assert "--answer-delay" in run_python("-m", "airflow_provider_aom.emulator", "--help").stdout
    result = run_python("-m", "airflow_provider_aom.emulator", "--answer-delay", "-1")
    assert result.returncode == 2
    assert "--answer-delay must not be negative" in result.stderr


def test_reset_switches_triggers_back_to_their_initial_state(emu: AomEmulator) -> None:
    """A test that disables a workflow's trigger must not leak that into the next one."""
    emu.state.add_workflow(WorkflowSpec(id="wf-cron-reset", name="cron", outcome="success", duration=1, type="cron"))
    assert emu.state.set_trigger("wf-cron-reset", "disable") == "ok"
    emu.state.reset()
    [workflow] = [w for w in emu.state.list_workflows(WorkflowQuery(search="cron"))[0] if w["id"] == "wf-cron-reset"]
    assert workflow["trigger_status"] == "enable"
