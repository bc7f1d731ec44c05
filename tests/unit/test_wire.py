"""The wire values, and the rule that puts them (and the transport) below the domain."""

from __future__ import annotations

import ast
from pathlib import Path

from airflow_provider_aom.api import ApiRequest
from airflow_provider_aom.wire import ApiResponse, HttpRequest, RequestFacts, request_id_of

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_aom"
#: What the transport may import of the package: the wire values, its own modules and the leaves.
TRANSPORT_MAY_IMPORT = {"wire", "exceptions", "escaping", "vocabulary", ""}


def provider_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name == "airflow_provider_aom" or name.startswith("airflow_provider_aom."):
                found.add(name.removeprefix("airflow_provider_aom").lstrip("."))
    return found


def test_wire_and_transport_import_nothing_above_them() -> None:
    assert provider_imports(PACKAGE / "wire.py") == set()
    for path in sorted((PACKAGE / "transport").glob("*.py")):
        above = {m for m in provider_imports(path) if m not in TRANSPORT_MAY_IMPORT and not m.startswith("transport")}
        assert not above, f"{path.name} imports {above}"


def test_a_request_hides_headers_and_body_and_carries_its_call() -> None:
    call: RequestFacts = ApiRequest("POST", "/v3/auth/tokens", "Get token", body=b'{"password": "pw-secret"}')
    request = HttpRequest("POST", "https://iam/v3/auth/tokens", {"X-Auth-Token": "tok-secret"}, b"pw-secret", call)
    text = repr(request)
    assert "tok-secret" not in text and "pw-secret" not in text and "Get token" in text
    assert request.api.action == "Get token" and request.api.idempotent and request.api.body_sink is None


def test_response_headers_are_lower_cased_and_carry_the_request_id() -> None:
    response = ApiResponse.build(200, b"{}", {"X-Request-Id": "r-1", "Content-Type": "application/json"})
    assert response.headers == {"x-request-id": "r-1", "content-type": "application/json"}
    assert response.request_id == "r-1"
    assert request_id_of({"x-openstack-request-id": "os-2"}) == "os-2"
    assert request_id_of({}) is None
