"""After an ambiguous submit: adopt only this submit's own execution, never someone else's, never a forged id.

A scripted AOM over real HTTP whose execute POST fails with a 502 and whose execution list holds
what a hostile or busy world may put there: another user's run seconds earlier, forged ids, absurd
times. The rules themselves (airflow_provider_aom/submit.py) are tested in tests/unit/test_submit.py.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aom.auth_flow import RESOLVED
from airflow_provider_aom.exceptions import AomAmbiguousSubmitError
from airflow_provider_aom.hooks.aom import AomHook
from tests.faults import PROJECT
from tests.hostile_server import Exchange, HostileServer, json_response

ME, OTHER = "etl-bot", "alice"
WORKFLOW = "wf-shared"


def brief(execution_id: Any, begin: Any, created_by: Any = ME) -> dict[str, Any]:
    return {"execution_id": execution_id, "begin_time": begin, "created_by": created_by, "status": "executing"}


# --------------------------------------------------------------------------- over HTTP


class FakeAom:
    """Execute answers 502; the list and IAM's token verification answer what the test puts here."""

    def __init__(self, clock_offset: float = 0.0, send_date: bool = True) -> None:
        self.clock_offset = clock_offset
        self.send_date = send_date
        self.executions: list[dict[str, Any]] = []
        self.started_on_post: dict[str, Any] | None = None
        self.requests: list[str] = []

    def now_ms(self) -> int:
        return int((time.time() + self.clock_offset) * 1000)

    def respond(self, exchange: Exchange) -> None:
        line = exchange.request_line
        self.requests.append(line)
        headers = (
            {"Date": email.utils.formatdate(time.time() + self.clock_offset, usegmt=True)} if self.send_date else {}
        )
        if line.startswith("POST ") and line.split()[1].endswith("/executions"):
            if self.started_on_post is not None:
                self.executions.append({**self.started_on_post, "begin_time": self.now_ms()})
            body = {"error_code": "APIG.0201", "error_msg": "Backend unavailable.", "request_id": "r"}
            exchange.send(json_response(502, body, headers))
        elif line.startswith("GET ") and line.split()[1].endswith("/executions"):
            exchange.send(json_response(200, self.executions, headers))
        elif line.startswith("GET /v3/auth/tokens"):
            token = {"expires_at": "2099-01-01T00:00:00.000000Z", "user": {"name": ME, "id": "user-id-1"}}
            exchange.send(json_response(200, {"token": token}, {**headers, "X-Subject-Token": "MIIx"}))
        else:
            exchange.send(json_response(404, {"error_code": "APIG.0101", "error_msg": "no such API"}, headers))


@pytest.fixture
def fake_aom(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[FakeAom, HostileServer]]]:
    RESOLVED.clear()
    servers: list[HostileServer] = []

    def start(user_name: str | None = None, **kwargs: Any) -> tuple[FakeAom, HostileServer]:
        aom = FakeAom(**kwargs)
        server = HostileServer(aom.respond).__enter__()
        servers.append(server)
        extra: dict[str, Any] = {
            "auth_type": "token",
            "project_id": PROJECT,
            "region": "cn-north-4",
            "iam_endpoint": server.base_url,
            "timeout": 2,
            "retry_attempts": 2,
            "retry_max_wait": 0.05,
        }
        if user_name:
            extra["user_name"] = user_name
        conn = {"conn_type": "huaweicloud_aom", "host": server.base_url, "password": "MIIx", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AOM_DEFAULT", json.dumps(conn))
        return aom, server

    yield start
    for server in servers:
        server.stop()
    RESOLVED.clear()


def posts(aom: FakeAom) -> int:
    return sum(1 for line in aom.requests if line.startswith("POST "))


def test_another_users_execution_seconds_earlier_is_not_adopted(fake_aom: Callable[..., Any]) -> None:
    """The submit started nothing (502); alice started the same workflow 5 s before: not ours, left alone."""
    aom, _ = fake_aom()
    aom.executions.append(brief("e-alice", aom.now_ms() - 5000, OTHER))
    with pytest.raises(AomAmbiguousSubmitError) as info:
        AomHook().start_execution(WORKFLOW)
    assert "no execution of this connection's user began" in str(info.value)
    assert posts(aom) == 1, "never re-sent"


def test_another_users_execution_during_the_submit_is_left_alone(fake_aom: Callable[..., Any]) -> None:
    """Inside the time window, but created by alice (checked through IAM token verification): not adopted."""
    aom, _ = fake_aom()
    aom.started_on_post = brief("e-alice", 0, OTHER)
    with pytest.raises(AomAmbiguousSubmitError, match=r"started by other users \(left alone\): e-alice"):
        AomHook().start_execution(WORKFLOW)
    assert any(line.startswith("GET /v3/auth/tokens") for line in aom.requests), "the identity was looked up"


def test_own_execution_whose_answer_was_lost_is_adopted_and_owned(fake_aom: Callable[..., Any]) -> None:
    aom, _ = fake_aom()
    aom.executions.append(brief("e-alice-earlier", aom.now_ms() - 5000, OTHER))
    aom.started_on_post = brief("e-mine", 0, ME)
    started = AomHook().start_execution(WORKFLOW)
    assert (started.execution_id, started.adopted, started.owned) == ("e-mine", True, True)
    assert posts(aom) == 1


def test_window_follows_the_servers_clock_not_ours(fake_aom: Callable[..., Any]) -> None:
    """AOM's clock is an hour ahead: our own execution is still found (the Date header tells the offset)."""
    aom, _ = fake_aom(user_name=ME, clock_offset=3600)
    aom.started_on_post = brief("e-mine", 0, ME)
    started = AomHook().start_execution(WORKFLOW)
    assert started.execution_id == "e-mine" and started.owned


def test_forged_id_in_the_list_is_never_adopted(fake_aom: Callable[..., Any]) -> None:
    aom, _ = fake_aom(user_name=ME)
    aom.started_on_post = brief("e-1\r\n2026-12-02 [error] forged", 0, ME)
    with pytest.raises(AomAmbiguousSubmitError) as info:
        AomHook().start_execution(WORKFLOW)
    assert "forged" not in str(info.value) and "\n" not in str(info.value)


def test_unknown_creator_is_followed_but_not_owned(fake_aom: Callable[..., Any]) -> None:
    """AOM lists no created_by: adopted (it is the only one in the tight window) but never to be terminated."""
    aom, _ = fake_aom(user_name=ME)
    aom.started_on_post = {"execution_id": "e-anon", "status": "executing"}
    started = AomHook().start_execution(WORKFLOW)
    assert (started.execution_id, started.owned) == ("e-anon", False)


def test_without_a_date_header_the_skew_setting_bounds_the_window(fake_aom: Callable[..., Any]) -> None:
    aom, _ = fake_aom(user_name=ME, send_date=False)
    aom.executions.append(brief("e-old-mine", aom.now_ms() - 60_000, ME))
    with pytest.raises(AomAmbiguousSubmitError, match="no execution of this connection's user"):
        AomHook().start_execution(WORKFLOW)
    assert posts(aom) == 1
