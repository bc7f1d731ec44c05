"""The console link (links/aom.py): the URL template filled with encoded values, shown only when http(s)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_aom.links import aom as links
from airflow_provider_aom.links.aom import DEFAULT_CONSOLE_URL, AomWorkflowExecutionLink, console_url


def test_the_default_template_points_at_the_execution_record() -> None:
    url = console_url(None, region="cn-north-4", workflow_id="wf-1", execution_id="e-1")
    assert url == (
        "https://console.huaweicloud.com/aom2/?region=cn-north-4#/aom2/cms/execution-record"
        "?workflow_id=wf-1&execution_id=e-1"
    )
    assert console_url(DEFAULT_CONSOLE_URL, region="cn-north-4", workflow_id="wf-1", execution_id="e-1") == url


def test_every_value_is_encoded_so_it_cannot_change_the_url() -> None:
    url = console_url(
        None, region="cn-north-4&evil=1", workflow_id="wf/../x?a=1#frag", execution_id="e 1&execution_id=other"
    )
    parts = urlsplit(url)
    assert parts.netloc == "console.huaweicloud.com" and parts.query == "region=cn-north-4%26evil%3D1"
    route = parse_qs(parts.fragment.split("?", 1)[1])
    assert route == {"workflow_id": ["wf/../x?a=1#frag"], "execution_id": ["e 1&execution_id=other"]}
    assert "wf%2F..%2Fx%3Fa%3D1%23frag" in url


def test_a_connections_template_is_filled_and_a_missing_region_is_empty() -> None:
    template = "https://console.example.com/{region}/w/{workflow_id}/e/{execution_id}"
    assert console_url(template, region=None, workflow_id="w 1", execution_id="e/1") == (
        "https://console.example.com//w/w%201/e/e%2F1"
    )


def test_braces_in_a_value_are_not_a_template() -> None:
    url = console_url(None, region="r", workflow_id="{region}", execution_id="{0}")
    assert "workflow_id=%7Bregion%7D&execution_id=%7B0%7D" in url


class FakeTi:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_the_url_is_persisted_under_the_links_key() -> None:
    ti = FakeTi()
    AomWorkflowExecutionLink.persist({"ti": ti}, "https://console/x")  # type: ignore[typeddict-item]
    assert ti.pushed == {AomWorkflowExecutionLink.key: "https://console/x"}
    assert AomWorkflowExecutionLink().xcom_key == AomWorkflowExecutionLink.key
    assert AomWorkflowExecutionLink.name == "AOM Workflow Execution"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("https://console.huaweicloud.com/x", "https://console.huaweicloud.com/x"),
        ("http://127.0.0.1:8089/x", "http://127.0.0.1:8089/x"),
        ("javascript:alert(1)", ""),
        ("//evil.example.com", ""),
        (None, ""),
        (["https://x"], ""),
    ],
)
def test_only_an_http_url_from_xcom_is_shown(stored: Any, shown: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []

    class FakeXCom:
        @staticmethod
        def get_value(**kwargs: Any) -> Any:
            asked.append(kwargs)
            return stored

    monkeypatch.setattr(links, "XCom", FakeXCom)
    link = AomWorkflowExecutionLink()
    assert link.get_link(None, ti_key="the-key") == shown  # type: ignore[arg-type]
    assert asked == [{"key": AomWorkflowExecutionLink.key, "ti_key": "the-key"}]
