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
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Subprocesses import the provider from the checkout.
PYTHONPATH_ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
PID = DEFAULT_PROJECT_ID
STATIC = "MIIemulator-static-token"
FAST = 0.2
TERMINAL = {"success", "fail", "cancel"}
MIB = 1024 * 1024


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args``, the checkout first on its path; output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=PYTHONPATH_ENV, cwd=ROOT, timeout=30, check=False
    )


def fast_workflows() -> list[WorkflowSpec]:
    return [
        *default_workflows(),
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


@pytest.fixture
def emu() -> Iterator[AomEmulator]:
    with AomEmulator(EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows())) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


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


def test_cli_prints_url_first_and_stops_on_sigterm(http: requests.Session) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_aom.emulator",
            "--port",
            "0",
            "--workflow",
            "cli-quick:success:0",
            "--static-token",
            "cli-token",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=PYTHONPATH_ENV,
        cwd=ROOT,
    )
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
