"""The AK/SK signer: the reference test vector, and agreement with Huawei's official signer."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aom.auth import signer

AK = "AKEXAMPLE0000000000"
SK = "SKEXAMPLE0000000000000000000000000000000"
PROJECT = "0123456789abcdef0123456789abcdef"


def test_reference_vector_byte_for_byte() -> None:
    headers = {"Content-Type": "application/json", "X-Sdk-Date": "20240101T000000Z", "X-Project-Id": PROJECT}
    path = f"/v1/{PROJECT}/cms/workflow/wf-1/executions"
    names = signer.signed_header_names({**headers, "Host": "aom.cn-north-4.myhuaweicloud.com"})
    canonical = signer.canonical_request(
        "POST", path, "", {**headers, "Host": "aom.cn-north-4.myhuaweicloud.com"}, names, b""
    )
    assert canonical == (
        "POST\n"
        f"/v1/{PROJECT}/cms/workflow/wf-1/executions/\n"
        "\n"
        "content-type:application/json\n"
        "host:aom.cn-north-4.myhuaweicloud.com\n"
        f"x-project-id:{PROJECT}\n"
        "x-sdk-date:20240101T000000Z\n"
        "\n"
        "content-type;host;x-project-id;x-sdk-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signer.string_to_sign(canonical, "20240101T000000Z") == (
        "SDK-HMAC-SHA256\n20240101T000000Z\n24261d6dc6b78e94137da5678f035a1eb79a76f354c8bb7088b5f34db7dcbad6"
    )
    signed = signer.sign_headers(
        access_key=AK,
        secret_key=SK,
        method="POST",
        host="aom.cn-north-4.myhuaweicloud.com",
        path=path,
        query="",
        headers=headers,
    )
    assert signed["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0000000000, SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=54c143316cc3325f20475df5dc372ecca417c71218fdf1c2ce5b9d74fb8531e7"
    )


def test_reference_query_and_segment_examples() -> None:
    assert signer.canonical_query([("node_id", "n 1"), ("action", "skip")]) == "action=skip&node_id=n%201"
    assert signer.canonical_uri("/v1/p/cms/workflow/wf%201") == "/v1/p/cms/workflow/wf%201/"


def test_headers_with_underscore_are_not_signed() -> None:
    assert signer.signed_header_names({"X_Custom": "1", "Host": "h", "X-Sdk-Date": "d"}) == ["host", "x-sdk-date"]


def test_parse_authorization_round_trip() -> None:
    headers = signer.sign_headers(
        access_key=AK, secret_key=SK, method="GET", host="h:1", path="/a", query="", headers={}
    )
    parsed = signer.parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert parsed.access_key == AK
    assert parsed.signed_headers == ["host", "x-sdk-date"]
    assert signer.parse_authorization("Basic abc") is None
    assert signer.parse_authorization("SDK-HMAC-SHA256 Access=a") is None


sdk_signer = pytest.importorskip("huaweicloudsdkcore.signer.signer")
sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")

_segment = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
_header_name = st.from_regex(r"X-[A-Za-z0-9][A-Za-z0-9-]{0,10}", fullmatch=True)
_header_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
_query = st.lists(
    st.tuples(st.text(min_size=1, max_size=8).filter(lambda s: s.isprintable()), st.text(max_size=8)),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    segments=st.lists(_segment, min_size=1, max_size=5),
    query=_query,
    extra_headers=st.dictionaries(_header_name, _header_value, max_size=3),
    body=st.binary(max_size=64),
    port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_agrees_with_official_sdk_signer(
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    extra_headers: dict[str, str],
    body: bytes,
    port: int | None,
) -> None:
    host = "aom.cn-north-4.myhuaweicloud.com" + (f":{port}" if port else "")
    path = "/" + "/".join(quote(s, safe="~") for s in segments)
    headers = {
        "Content-Type": "application/json",
        "X-Sdk-Date": "20240101T000000Z",
        "X-Project-Id": PROJECT,
        **{k: v for k, v in extra_headers.items() if k.lower() not in ("x-sdk-date", "x-project-id")},
    }
    ours = signer.sign_headers(
        access_key=AK,
        secret_key=SK,
        method=method,
        host=host,
        path=path,
        query=signer.canonical_query(query),
        headers=headers,
        body=body,
    )
    request = sdk_request.SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    theirs = sdk_signer.Signer(SimpleNamespace(ak=AK, sk=SK)).sign(request)
    assert ours["Authorization"] == theirs.header_params["Authorization"]
