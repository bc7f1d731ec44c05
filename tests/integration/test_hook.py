"""AomHook over real HTTP against the emulator, in every auth mode."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_aom.emulator import DEFAULT_PROJECT_ID, AomEmulator
from airflow_provider_aom.exceptions import (
    AomAuthenticationError,
    AomConfigurationError,
    AomNotFoundError,
)
from airflow_provider_aom.hooks.aom import AomAsyncHook, AomHook
from tests.conftest import AUTH_MODES, QUICK_SECONDS, UseConnection
from tests.loopback import Seen, StaleGate


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_every_call_in_every_auth_mode(mode: str, use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection(mode)
    hook = AomHook()
    execution_id = hook.execute_workflow("wf-success")
    created = emulator.state.executions()
    assert [e["execution_id"] for e in created] == [execution_id]

    detail = hook.get_execution("wf-success", execution_id)
    assert detail["execution_id"] == execution_id
    assert detail["status"] == "executing"

    history = hook.list_executions("wf-success")
    assert execution_id in [e.execution_id for e in history]

    workflows = hook.list_workflows(search="wf-")
    assert {"wf-success", "wf-fail", "wf-approval"} <= {w["id"] for w in workflows}

    hook.terminate_execution("wf-success", execution_id)
    assert hook.get_execution("wf-success", execution_id)["status"] == "cancel"

    ok, message = hook.test_connection()
    assert ok, message
    assert len(emulator.state.executions()) == 1, "test_connection must not start anything"


def test_project_id_resolved_from_iam_for_aksk(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", extra={"project_id": ""})
    hook = AomHook()
    assert hook.get_project_id() == DEFAULT_PROJECT_ID
    hook.execute_workflow("wf-success")
    hook.execute_workflow("wf-success")
    assert emulator.state.count_requests("GET", "/v3/projects") == 1


def test_project_id_from_token_scope_for_password_auth(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("password")
    assert AomHook().get_project_id() == DEFAULT_PROJECT_ID
    assert emulator.state.iam_token_requests() == 1


def test_token_cached_across_hooks_and_threads(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("password")
    errors: list[BaseException] = []

    def start() -> None:
        try:
            AomHook().execute_workflow("wf-success")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(emulator.state.executions()) == 8
    assert emulator.state.iam_token_requests() == 1


def test_expired_token_is_renewed_once(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("password")
    hook = AomHook()
    first = hook.execute_workflow("wf-success")
    emulator.state.expire_tokens()
    second = hook.execute_workflow("wf-success")
    assert first != second
    assert len(emulator.state.executions()) == 2
    assert emulator.state.iam_token_requests() == 2


def test_wrong_secret_key_fails_clearly(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", password="W" * 40)
    with pytest.raises(AomAuthenticationError) as info:
        AomHook().execute_workflow("wf-success")
    assert "APIG.0301" in str(info.value)
    assert "W" * 40 not in str(info.value)
    assert emulator.state.executions() == []


def test_wrong_iam_password_fails_clearly(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("password", password="not-the-password")
    with pytest.raises(AomAuthenticationError, match="username or password"):
        AomHook().execute_workflow("wf-success")


def test_unknown_workflow(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk")
    with pytest.raises(AomNotFoundError) as info:
        AomHook().execute_workflow("no-such-workflow")
    assert info.value.error_code == "AOM.31001306"
    assert info.value.error_msg == "workflow not exist."
    assert info.value.request_id


def test_missing_project_id_without_region(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("token", extra={"project_id": "", "region": ""})
    before = emulator.state.count_requests()
    with pytest.raises(AomConfigurationError, match="project_id"):
        AomHook().execute_workflow("wf-success")
    assert emulator.state.count_requests() == before


def test_test_connection_reports_server_error(use_connection: UseConnection, emulator: AomEmulator) -> None:
    use_connection("aksk", password="W" * 40)
    ok, message = AomHook().test_connection()
    assert not ok
    assert "APIG.0301" in message


def test_status_progresses_to_the_end(use_connection: UseConnection, quick_workflows: AomEmulator) -> None:
    use_connection("token")
    hook = AomHook()
    execution_id = hook.execute_workflow("wf-quick")
    time.sleep(QUICK_SECONDS + 0.2)
    assert hook.get_execution("wf-quick", execution_id)["status"] == "success"


# --------------------------------------------------------------------------- connections: stale keep-alive, closing


def _submits(seen: Seen) -> bool:
    return seen.method == "POST" and seen.target.endswith("/executions")


@pytest.fixture
def gate(emulator: AomEmulator) -> Iterator[StaleGate]:
    """A relay to the emulator that closes a kept-alive connection just as a submit arrives on it."""
    with StaleGate(int(emulator.base_url.rsplit(":", 1)[1]), drop=_submits) as started:
        yield started


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_submit_after_a_read_is_not_lost_to_a_closed_keep_alive_connection(
    mode: str, use_connection: UseConnection, emulator: AomEmulator, gate: StaleGate
) -> None:
    """The read leaves a kept-alive connection the server then closes: the submit reaches AOM once, unambiguous."""
    use_connection("aksk", host=gate.url, extra={"user_name": "emulator-user"})
    if mode == "sync":
        with AomHook() as hook:
            assert hook.list_workflows(page=1, size=1)
            started = hook.start_execution("wf-success")
    else:
        async with AomAsyncHook() as async_hook:
            assert await async_hook.list_workflows(page=1, size=1)
            started = await async_hook.start_execution("wf-success")
    assert gate.dropped == []
    assert [e["execution_id"] for e in emulator.state.executions()] == [started.execution_id]
    assert started.owned and not started.adopted, "the submit's own answer, not a reconciliation"
    assert emulator.state.count_requests("GET", f"/v1/{DEFAULT_PROJECT_ID}/cms/workflow/wf-success/executions") == 0


def test_sync_hook_close_and_with_close_its_sockets(
    use_connection: UseConnection, emulator: AomEmulator, gate: StaleGate
) -> None:
    use_connection("aksk", host=gate.url)
    with AomHook() as hook:
        hook.list_workflows(page=1, size=1)
        assert gate.open == 1
    assert gate.wait_open(0), "leaving the with block closed the socket"
    hook.list_workflows(page=1, size=1)  # a closed hook opens new connections
    assert gate.wait_open(1)
    hook.close()
    assert gate.wait_open(0)
    hook.close()  # twice is fine


async def test_async_hooks_share_the_loop_pools_until_the_last_one_closes(
    use_connection: UseConnection, emulator: AomEmulator, gate: StaleGate
) -> None:
    use_connection("aksk", host=gate.url)
    first, second = AomAsyncHook(), AomAsyncHook()
    await first.list_workflows(page=1, size=1)
    await second.list_workflows(page=1, size=1)
    assert gate.accepted == 1, "both hooks used the loop's one connection"
    await first.aclose()
    await second.list_workflows(page=1, size=1)
    assert gate.accepted == 1 and gate.open == 1, "closing one hook left the other's connection open and pooled"
    async with second:
        await second.list_workflows(page=1, size=1)
    await asyncio.to_thread(gate.wait_open, 0)
    assert gate.open == 0, "the last hook to close closed the loop's sockets"
