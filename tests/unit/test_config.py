"""Connection parsing: auth-type inference, endpoints, validation errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.exceptions import AomConfigurationError

PROJECT = "0123456789abcdef0123456789abcdef"


def parse(
    host: str | None = None, login: str | None = None, password: str | None = None, **extra: Any
) -> AomConnectionConfig:
    return AomConnectionConfig.from_parts(conn_id="c", host=host, login=login, password=password, extra=extra)


@pytest.mark.parametrize(
    ("login", "password", "extra", "expected"),
    [
        ("user", "pw", {"domain_name": "acct"}, "password"),
        ("AK", "SK", {}, "aksk"),
        (None, "tok", {}, "token"),
        ("AK", "SK", {"auth_type": "TOKEN"}, "token"),
    ],
)
def test_auth_type_inference(login: str | None, password: str, extra: dict[str, Any], expected: str) -> None:
    config = parse(None, login, password, region="cn-north-4", project_id=PROJECT, **extra)
    assert config.auth_type == expected


def test_cannot_infer_auth_type_names_the_fields() -> None:
    with pytest.raises(AomConfigurationError, match="auth_type"):
        parse(None, "only-login", None, region="cn-north-4")


def test_default_endpoints_from_region() -> None:
    config = parse(None, "AK", "SK", region="cn-east-3", project_id=PROJECT)
    assert config.endpoint == "https://aom.cn-east-3.myhuaweicloud.com"
    assert config.iam_endpoint == "https://iam.cn-east-3.myhuaweicloud.com"
    assert config.verify is None  # not set: the environment's CA bundle applies, else certifi's
    assert config.timeout == 30.0


def test_host_override_keeps_scheme_and_port() -> None:
    config = parse("http://127.0.0.1:8089/", "AK", "SK", project_id=PROJECT)
    assert config.endpoint == "http://127.0.0.1:8089"
    bare = parse("aom.example.com", "AK", "SK", project_id=PROJECT)
    assert bare.endpoint == "https://aom.example.com"


def test_legacy_prefixed_extras_are_read() -> None:
    config = parse(
        None,
        "user",
        "pw",
        extra__huaweicloud_aom__domain_name="acct",
        extra__huaweicloud_aom__region="cn-north-4",
    )
    assert config.auth_type == "password"
    assert config.domain_name == "acct"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"login": None, "password": "pw", "auth_type": "password", "domain_name": "d"}, "login"),
        ({"login": "u", "password": "pw", "auth_type": "password"}, "domain_name"),
        ({"login": "AK", "password": None, "auth_type": "aksk"}, "password"),
        ({"login": None, "password": None, "auth_type": "token"}, "password"),
        ({"login": "AK", "password": "SK", "auth_type": "kerberos"}, "auth_type"),
    ],
)
def test_missing_fields_are_named_with_the_auth_type(kwargs: dict[str, Any], message: str) -> None:
    login, password = kwargs.pop("login"), kwargs.pop("password")
    with pytest.raises(AomConfigurationError, match=message) as info:
        parse(None, login, password, region="cn-north-4", **kwargs)
    if "auth_type" in kwargs and kwargs["auth_type"] != "kerberos":
        assert kwargs["auth_type"] in str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"project_id": "short"}, "project_id"),
        ({"region": "cn-north-4.evil.com/"}, "region"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"verify": "/no/such/bundle.pem"}, "verify"),
        ({"proxies": "http://proxy"}, "proxies"),
    ],
)
def test_bad_extras(extra: dict[str, Any], message: str) -> None:
    base = {"region": "cn-north-4", "project_id": PROJECT}
    with pytest.raises(AomConfigurationError, match=message):
        parse(None, "AK", "SK", **{**base, **extra})


def test_no_region_no_host_is_an_error() -> None:
    with pytest.raises(AomConfigurationError, match="region"):
        parse(None, "AK", "SK", project_id=PROJECT)


def test_no_project_and_no_region_is_an_error() -> None:
    with pytest.raises(AomConfigurationError, match="project_id"):
        parse("http://127.0.0.1:1", "AK", "SK")


def test_verify_forms(tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    assert parse(None, "AK", "SK", region="cn-north-4", project_id=PROJECT, verify="false").verify is False
    assert parse(None, "AK", "SK", region="cn-north-4", project_id=PROJECT, verify=str(bundle)).verify == str(bundle)


def test_repr_has_no_secrets() -> None:
    config = parse(None, "AKID", "the-secret-key", region="cn-north-4", project_id=PROJECT, security_token="sts-secret")
    text = repr(config)
    assert "AKID" in text
    assert "the-secret-key" not in text
    assert "sts-secret" not in text


def test_plain_http_to_a_remote_host_warns() -> None:
    with pytest.warns(UserWarning, match="plain HTTP"):
        parse("http://aom.example.com", "AK", "SK", project_id=PROJECT)


def test_documented_uri_form_parses() -> None:
    from airflow.models.connection import Connection

    uri = "huaweicloud-aom://my-iam-user:my%20password@/?auth_type=password&domain_name=my-account&region=cn-north-4"
    conn = Connection(conn_id="aom_default", uri=uri)
    config = AomConnectionConfig.from_connection(conn)
    assert conn.conn_type == "huaweicloud_aom"
    assert (config.auth_type, config.username, config.domain_name, config.region) == (
        "password",
        "my-iam-user",
        "my-account",
        "cn-north-4",
    )
    assert config.password == "my password"
    assert config.endpoint == "https://aom.cn-north-4.myhuaweicloud.com"
