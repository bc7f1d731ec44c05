"""AomWorkflowExecutionEventTrigger run as a triggerer runs an asset watcher, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.exceptions import AomConfigurationError
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.triggers.aom import AomWorkflowExecutionEventTrigger
from tests.conftest import QUICK_SECONDS, LogText, UseConnection

AIRFLOW_3 = int(airflow_version.split(".")[0]) >= 3
needs_airflow_3 = pytest.mark.skipif(not AIRFLOW_3, reason="asset watchers need Airflow 3")
POLL = 0.1
#: Long enough for several polls after every execution has ended: a silent watch has had its chances.
QUIET = QUICK_SECONDS + 10 * POLL


class MemoryStore:
    """Stands in for the triggerer's asset state store (``aget``/``aset`` of JSON values)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


def watch(store: MemoryStore | None = None, **kwargs: Any) -> AomWorkflowExecutionEventTrigger:
    trigger = AomWorkflowExecutionEventTrigger(**{"workflow_id": "wf-quick", "poll_interval": POLL, **kwargs})
    if store is not None:
        vars(trigger)["asset_state_store"] = store  # what the triggerer injects on Airflow >= 3.3
    return trigger


def rebuilt(trigger: AomWorkflowExecutionEventTrigger) -> AomWorkflowExecutionEventTrigger:
    """What a triggerer restart does: serialize, JSON through the database, import by path, rebuild."""
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    rebuilt_trigger = cls(**json.loads(json.dumps(kwargs)))
    assert isinstance(rebuilt_trigger, AomWorkflowExecutionEventTrigger)
    return rebuilt_trigger


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    trigger: AomWorkflowExecutionEventTrigger, emulator: AomEmulator
) -> AsyncIterator[list[dict[str, Any]]]:
    """Run the watch in the background (as the triggerer does) once it has begun; yield the payloads it sends."""
    payloads: list[dict[str, Any]] = []

    def lists() -> int:
        return sum(1 for r in emulator.state.requests() if r["method"] == "GET" and r["path"].endswith("/executions"))

    lists_before = lists()

    async def consume() -> None:
        async for event in trigger.run():
            payloads.append(event.payload)

    task = asyncio.create_task(consume())
    try:
        # Begun: its first execution list was answered (the watermark is set from that answer).
        await until(lambda: lists() > lists_before, 10, "the first list call")
        await asyncio.sleep(2 * POLL)
        yield payloads
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not task.done() or task.cancelled(), "a watch never ends by itself"


def start(workflow_id: str = "wf-quick") -> str:
    return AomHook().execute_workflow(workflow_id)


def ids(payloads: list[dict[str, Any]]) -> list[str]:
    return [payload["execution_id"] for payload in payloads]


@needs_airflow_3
async def test_executions_that_ended_before_the_watch_began_yield_nothing(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    start()
    start("wf-quick-fail")
    await asyncio.sleep(QUICK_SECONDS + 0.2)
    async with running(watch(statuses=["success", "fail"]), quick_workflows) as payloads:
        await asyncio.sleep(QUIET)
    assert payloads == []


@needs_airflow_3
async def test_each_execution_that_ends_during_the_watch_yields_exactly_one_event(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    async with running(watch(MemoryStore()), quick_workflows) as payloads:
        first, second = start(), start()
        # Someone else (the console, AOM's cron) starts one too: the watch reports it alike.
        third = quick_workflows.state.create_execution("wf-quick", "console-user")
        await until(lambda: len(payloads) >= 3, 10, "three events")
        await asyncio.sleep(QUIET)
    assert sorted(ids(payloads)) == sorted([first, second, str(third)])
    event = payloads[0]
    assert set(event) == {"workflow_id", "execution_id", "status", "begin_time", "end_time", "nodes"}
    assert event["workflow_id"] == "wf-quick" and event["status"] == "success"
    assert event["end_time"].endswith(("Z", "+00:00")) and event["begin_time"] <= event["end_time"]
    assert event["nodes"] and all("node_id" in node for node in event["nodes"])
    json.dumps(payloads)  # the triggerer drops events that are not JSON


@needs_airflow_3
async def test_a_status_filter_that_does_not_match_yields_nothing(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("token")
    async with running(watch(statuses=["fail"]), quick_workflows) as payloads:
        start()
        start()
        await asyncio.sleep(QUIET)
        assert payloads == []
        failed = start("wf-quick-fail")
        await asyncio.sleep(QUIET)
    assert payloads == []  # it watches wf-quick, not wf-quick-fail
    async with running(watch(workflow_id="wf-quick-fail", statuses=["FAIL"]), quick_workflows) as payloads:
        failed = start("wf-quick-fail")
        await until(lambda: len(payloads) >= 1, 10, "the failure event")
        await asyncio.sleep(QUIET)
    assert ids(payloads) == [failed] and payloads[0]["status"] == "fail"


@needs_airflow_3
async def test_a_restarted_watch_with_its_state_store_does_not_replay(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    store = MemoryStore()
    trigger = watch(store)
    async with running(trigger, quick_workflows) as payloads:
        before = start()
        await until(lambda: len(payloads) >= 1, 10, "the first event")
    assert ids(payloads) == [before]
    [key] = store.values
    assert key.startswith("aom_watch_")

    # Down for a while: one execution ends meanwhile; it is reported after the restart, the old one is not.
    during = start()
    await asyncio.sleep(QUICK_SECONDS + 0.2)
    async with running(watch(store, **rebuilt(trigger).serialize()[1]), quick_workflows) as payloads:
        after = start()
        await until(lambda: len(payloads) >= 2, 10, "two events")
        await asyncio.sleep(QUIET)
    assert ids(payloads) == [during, after]


@needs_airflow_3
async def test_without_a_state_store_a_restart_begins_anew(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    async with running(watch(), quick_workflows) as payloads:
        reported = start()
        await until(lambda: len(payloads) >= 1, 10, "the first event")
    missed = start()
    await asyncio.sleep(QUICK_SECONDS + 0.2)
    async with running(watch(), quick_workflows) as payloads:
        await asyncio.sleep(QUIET)
    assert reported not in ids(payloads) and missed not in ids(payloads)


@needs_airflow_3
async def test_errors_are_logged_and_the_watch_goes_on(
    use_connection: UseConnection, quick_workflows: AomEmulator, log_text: LogText
) -> None:
    use_connection("aksk")
    async with running(watch(), quick_workflows) as payloads:
        quick_workflows.state.add_fault("status", method="GET", path="/executions$", status=403, count=2)
        quick_workflows.state.add_fault("status", method="GET", path="/executions$", status=503, count=2)
        execution_id = start()
        await until(lambda: len(payloads) >= 1, 20, "the event after the errors")
    assert ids(payloads) == [execution_id]
    assert "trying again at the next poll" in log_text()


@needs_airflow_3
async def test_a_list_naming_one_execution_twice_yields_one_event(
    use_connection: UseConnection, quick_workflows: AomEmulator
) -> None:
    use_connection("aksk")
    async with running(watch(), quick_workflows) as payloads:
        now_ms = int(time.time() * 1000) + 5000
        twice = {"execution_id": "twice-1", "status": "success", "begin_time": now_ms - 10, "end_time": now_ms}
        body = json.dumps([twice, {**twice, "last_update_time": now_ms + 1}, twice])
        quick_workflows.state.add_fault("body", method="GET", path="/executions$", body=body, count=3)
        await until(lambda: len(payloads) >= 1, 10, "the event")
        await asyncio.sleep(QUIET)
    assert ids(payloads) == ["twice-1"]


@needs_airflow_3
async def test_garbled_fields_are_dropped_and_the_event_still_goes_out(
    use_connection: UseConnection, quick_workflows: AomEmulator, log_text: LogText
) -> None:
    use_connection("aksk")
    async with running(watch(), quick_workflows) as payloads:
        now_ms = int(time.time() * 1000) + 5000
        good = {"execution_id": "good-1", "status": "success", "begin_time": now_ms - 10, "end_time": now_ms}
        bad = {**good, "execution_id": "bad-1", "execution_result_list": "\u001b[31mnot a list"}
        quick_workflows.state.add_fault("body", method="GET", path="/executions$", body=json.dumps([bad, good]))
        await until(lambda: len(payloads) >= 1, 10, "the good event")
        await asyncio.sleep(QUIET)
    assert ids(payloads) == ["bad-1", "good-1"]
    assert payloads[0]["nodes"] == [] and "\u001b" not in json.dumps(payloads)


@needs_airflow_3
async def test_a_workflow_name_is_resolved_once(use_connection: UseConnection, quick_workflows: AomEmulator) -> None:
    use_connection("aksk")
    async with running(watch(workflow_id=None, workflow_name="quick"), quick_workflows) as payloads:
        execution_id = start()
        await until(lambda: len(payloads) >= 1, 10, "the event")
        await asyncio.sleep(QUIET)
    assert ids(payloads) == [execution_id]
    workflow_reads = [r for r in quick_workflows.state.requests() if r["path"].endswith("/workflow-list")]
    assert len(workflow_reads) == 1


@needs_airflow_3
def test_serialize_round_trip_and_one_state_key_per_watch() -> None:
    trigger = AomWorkflowExecutionEventTrigger(
        workflow_name="nightly-patching", statuses=["success", "fail"], poll_interval=30, aom_conn_id="aom_prod"
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_aom.triggers.aom.AomWorkflowExecutionEventTrigger"
    assert rebuilt(trigger).serialize() == (path, kwargs)
    other = AomWorkflowExecutionEventTrigger(workflow_name="nightly-patching", statuses=["fail"])
    assert rebuilt(trigger)._state_key == trigger._state_key != other._state_key


@needs_airflow_3
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"workflow_id": "wf", "workflow_name": "n"},
        {"workflow_id": "wf", "statuses": "success"},
        {"workflow_id": "wf", "statuses": []},
        {"workflow_id": "wf", "poll_interval": 0},
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AomWorkflowExecutionEventTrigger(**kwargs)


@pytest.mark.skipif(AIRFLOW_3, reason="the Airflow 2 refusal")
def test_on_airflow_2_the_module_imports_and_the_trigger_says_it_needs_airflow_3() -> None:
    with pytest.raises(AomConfigurationError, match=r"Airflow 3\.0 or later"):
        AomWorkflowExecutionEventTrigger(workflow_id="wf")
