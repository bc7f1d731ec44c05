"""AomWorkflowExecutionTrigger driven as a triggerer drives it, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from airflow_provider_aom.emulator import AomEmulator, WorkflowSpec
from airflow_provider_aom.hooks.aom import AomHook
from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger
from tests.conftest import LogText, UseConnection


async def first_event(trigger: AomWorkflowExecutionTrigger) -> dict[str, Any]:
    events = [event async for event in trigger.run()]
    assert len(events) == 1, "a trigger yields exactly one event"
    payload: dict[str, Any] = events[0].payload
    return payload


def round_trip(trigger: AomWorkflowExecutionTrigger) -> AomWorkflowExecutionTrigger:
    """What a triggerer restart does: serialize, import the class by path, rebuild from kwargs."""
    import importlib
    import json

    path, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))  # JSON-only kwargs survive the database
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    rebuilt = cls(**kwargs)
    assert isinstance(rebuilt, AomWorkflowExecutionTrigger)
    return rebuilt


@pytest.fixture
def workflows(quick_workflows: AomEmulator) -> AomEmulator:
    quick_workflows.state.add_workflow(
        WorkflowSpec(id="wf-wait", name="approval", outcome="approval", duration=0.1, approvers=["ops-lead"])
    )
    return quick_workflows


def count_connections(emulator: AomEmulator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one with every TCP connection this loop opens to the emulator from now on.

    anyio (under httpcore) connects through ``loop.create_connection``.
    """
    loop = asyncio.get_running_loop()
    port = int(emulator.base_url.rsplit(":", 1)[1])
    opened: list[int] = []
    create_connection = loop.create_connection

    async def counting(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 2 and args[2] == port:
            opened.append(args[2])
        return await create_connection(*args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", counting)
    return opened


def start(workflow_id: str) -> str:
    return AomHook().execute_workflow(workflow_id)


def test_serialize_round_trip() -> None:
    trigger = AomWorkflowExecutionTrigger(
        workflow_id="wf",
        execution_id="e1",
        project_id=None,
        poll_interval=5,
        deadline=1_900_000_000.5,
        success_statuses=["success"],
        failure_statuses=["fail", "cancel"],
        cancel_on_kill=False,
        last_status="executing",
        owned=False,
        max_detail_bytes=4096,
    )
    path, kwargs = trigger.serialize()
    assert kwargs["owned"] is False and kwargs["max_detail_bytes"] == 4096
    assert path == "airflow_provider_aom.triggers.aom.AomWorkflowExecutionTrigger"
    assert round_trip(trigger).serialize() == (path, kwargs)


@pytest.mark.parametrize("deferring", ["operator", "sensor"])
async def test_a_wait_that_moves_to_another_triggerer_does_not_log_executing_again(
    deferring: str, use_connection: UseConnection, workflows: AomEmulator, log_text: LogText
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator
    from airflow_provider_aom.sensors.aom import AomWorkflowExecutionSensor

    use_connection("aksk")
    execution_id = start("wf-long")
    with pytest.raises(TaskDeferred) as deferred:
        if deferring == "operator":
            operator = AomExecuteWorkflowOperator(
                task_id="run", workflow_id="wf-long", wait_for_completion=True, deferrable=True, poll_interval=0.05
            )
            operator._wait_or_defer(cast(Any, {}), execution_id, time.time() + 0.6)
        else:
            sensor = AomWorkflowExecutionSensor(
                task_id="watch",
                workflow_id="wf-long",
                execution_id=execution_id,
                deferrable=True,
                poke_interval=0.05,
                timeout=0.6,
            )
            sensor.execute(cast(Any, {}))
    trigger = deferred.value.trigger
    assert trigger.last_status == "executing", "the task defers saying the execution runs"
    # The operator's trigger terminates the execution it started at the deadline; the sensor's never does.
    assert trigger.terminate_at_deadline is (deferring == "operator")
    # Another triggerer rebuilds the trigger from its deferral arguments and polls an executing execution.
    event = await first_event(round_trip(trigger))
    assert event["status"] == "timeout"
    assert "is executing" not in log_text()
    assert workflows.state.count_requests("GET", None) >= 2, "it did poll"


async def test_success_event(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("aksk")
    execution_id = start("wf-quick")
    event = await first_event(
        round_trip(AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id=execution_id, poll_interval=0.1))
    )
    assert event["status"] == "success"
    assert event["execution_id"] == execution_id
    assert event["detail"]["status"] == "success"


async def test_failure_event_names_the_failing_node(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("token")
    execution_id = start("wf-quick-fail")
    event = await first_event(
        AomWorkflowExecutionTrigger(workflow_id="wf-quick-fail", execution_id=execution_id, poll_interval=0.1)
    )
    assert event["status"] == "failure"
    assert event["execution_status"] == "fail"
    assert execution_id in event["message"] and "wf-quick-fail" in event["message"]
    assert "failing node" in event["message"]


async def test_custom_status_sets(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("aksk")
    execution_id = start("wf-wait")
    await asyncio.sleep(0.3)
    trigger = AomWorkflowExecutionTrigger(
        workflow_id="wf-wait", execution_id=execution_id, poll_interval=0.1, failure_statuses=["WAITAPPROVAL"]
    )
    event = await first_event(trigger)
    assert (event["status"], event["execution_status"]) == ("failure", "waitApproval")


async def test_deadline_event(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("aksk")
    execution_id = start("wf-long")
    began = time.monotonic()
    event = await first_event(
        AomWorkflowExecutionTrigger(
            workflow_id="wf-long", execution_id=execution_id, poll_interval=10, deadline=time.time() + 0.5
        )
    )
    assert event["status"] == "timeout"
    assert event["execution_status"] == "executing"
    # The pause before the deadline is cut short: the trigger does not sleep a whole poll interval past it.
    assert time.monotonic() - began < 5


def terminates(workflows: AomEmulator) -> int:
    return sum(1 for r in workflows.state.requests() if r["method"] == "POST" and r["path"].endswith("/terminate"))


@pytest.mark.parametrize(
    ("kwargs", "terminated"),
    [({"terminate_at_deadline": True}, True), ({}, False), ({"terminate_at_deadline": True, "owned": False}, False)],
    ids=["owned", "not-asked", "not-owned"],
)
async def test_the_trigger_terminates_an_owned_execution_at_its_deadline(
    kwargs: dict[str, Any], terminated: bool, use_connection: UseConnection, workflows: AomEmulator
) -> None:
    """So it is stopped even when the task never resumes (the resume failed with the broker down)."""
    use_connection("aksk")
    execution_id = start("wf-long")
    trigger = AomWorkflowExecutionTrigger(
        workflow_id="wf-long", execution_id=execution_id, poll_interval=0.1, deadline=time.time() + 0.3, **kwargs
    )
    event = await first_event(round_trip(trigger))
    assert (event["status"], event["terminated"]) == ("timeout", terminated)
    status = AomHook().get_execution("wf-long", execution_id)["status"]
    assert (status, terminates(workflows)) == (("cancel", 1) if terminated else ("executing", 0))


def test_a_task_resumed_after_the_triggers_terminate_does_not_send_another(
    use_connection: UseConnection, workflows: AomEmulator
) -> None:
    from airflow_provider_aom.exceptions import AomExecutionTimeoutError
    from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

    use_connection("aksk")
    execution_id = start("wf-long")
    operator = AomExecuteWorkflowOperator(task_id="run", workflow_id="wf-long", wait_for_completion=True, timeout=1)
    event = {"status": "timeout", "workflow_id": "wf-long", "execution_id": execution_id, "owned": True}
    with pytest.raises(AomExecutionTimeoutError, match="it was terminated"):
        operator.execute_complete(cast(Any, {}), {**event, "terminated": True})
    assert terminates(workflows) == 0
    # A trigger that could not terminate (or one deferred before it could) leaves it to the task.
    with pytest.raises(AomExecutionTimeoutError, match="it was terminated"):
        operator.execute_complete(cast(Any, {}), event)
    assert terminates(workflows) == 1
    assert AomHook().get_execution("wf-long", execution_id)["status"] == "cancel"


async def test_error_event_for_unknown_execution(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("aksk")
    event = await first_event(
        AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id="nope", poll_interval=0.1)
    )
    assert event["status"] == "error"
    assert "404" in event["message"]


async def test_401_renews_the_token_once(use_connection: UseConnection, workflows: AomEmulator) -> None:
    use_connection("password")
    execution_id = start("wf-quick")
    assert workflows.state.iam_token_requests() == 1
    workflows.state.add_fault("expire_token", path="/status$", count=1)
    event = await first_event(
        AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id=execution_id, poll_interval=0.1)
    )
    assert event["status"] == "success"
    assert workflows.state.iam_token_requests() == 2


async def test_transient_errors_while_polling_are_retried(
    use_connection: UseConnection, workflows: AomEmulator
) -> None:
    use_connection("aksk", extra={"retry_max_wait": 0.05})
    execution_id = start("wf-quick")
    workflows.state.add_fault("status", path="/status$", status=503, count=2)
    workflows.state.add_fault("status", path="/status$", status=429, retry_after=0.05, count=1)
    event = await first_event(
        AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id=execution_id, poll_interval=0.1)
    )
    assert event["status"] == "success"


async def test_many_triggers_share_one_token_and_few_sockets(
    use_connection: UseConnection, workflows: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 triggers on one loop: one IAM token, and no more sockets than the loop's pool allows (here 4)."""
    from airflow_provider_aom.transport import AsyncTransport

    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", 4)  # fewer than the triggers, so the cap is what holds
    use_connection("password")
    ids = [start("wf-quick") for _ in range(20)]
    opened = count_connections(workflows, monkeypatch)
    triggers = [AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id=i, poll_interval=0.1) for i in ids]
    events = await asyncio.gather(*(first_event(t) for t in triggers))
    assert {e["status"] for e in events} == {"success"}
    assert workflows.state.iam_token_requests() == 1
    # Keep-alive connections are reused (the emulator keeps them 300 s): never more than the pool's size.
    assert 1 <= len(opened) <= AsyncTransport.MAX_CONNECTIONS, opened


async def test_requests_beyond_the_pool_wait_for_a_slot_not_in_the_pool(
    use_connection: UseConnection, workflows: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most MAX_CONNECTIONS requests reach a connection at once; the rest queue on the transport's semaphore."""
    import httpcore

    from airflow_provider_aom.hooks.aom import AomAsyncHook
    from airflow_provider_aom.transport import AsyncTransport

    monkeypatch.setattr(AsyncTransport, "MAX_CONNECTIONS", 3)
    use_connection("token")
    ids = [start("wf-long") for _ in range(12)]
    workflows.state.add_fault("delay", path="/status$", delay=0.2, count=12)
    hook = AomAsyncHook()
    in_flight, peak = 0, 0
    send = httpcore.AsyncHTTP11Connection.handle_async_request

    async def counting(pool: Any, request: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await send(pool, request)
        finally:
            in_flight -= 1

    monkeypatch.setattr(httpcore.AsyncHTTP11Connection, "handle_async_request", counting)
    executions = await asyncio.gather(*(hook.get_execution("wf-long", i) for i in ids))
    assert {e["status"] for e in executions} == {"executing"}
    assert peak == 3
    assert workflows.state.count_requests("GET", None) == 12


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, "cancel"), ({"cancel_on_kill": False}, "executing")],
    ids=["terminates", "cancel_on_kill-off"],
)
async def test_on_kill(
    kwargs: dict[str, Any], expected: str, use_connection: UseConnection, workflows: AomEmulator
) -> None:
    use_connection("aksk")
    execution_id = start("wf-long")
    await AomWorkflowExecutionTrigger(workflow_id="wf-long", execution_id=execution_id, **kwargs).on_kill()
    assert AomHook().get_execution("wf-long", execution_id)["status"] == expected


class _TaskInstance:
    """What the triggerer sets as ``trigger.task_instance`` (the fields on_kill reads)."""

    dag_id = "d"
    task_id = "t"
    run_id = "r"
    map_index = 2


@pytest.mark.parametrize(
    ("task_state", "expected"),
    [
        ("deferred", "executing"),  # another triggerer took the wait over: it goes on
        ("scheduled", "executing"),  # an event from that triggerer resumed the task
        ("failed", "cancel"),  # marked failed by a user
        (None, "cancel"),  # cleared
        ("unreadable", "cancel"),  # the state cannot be read: Airflow said it was a user's kill
    ],
)
async def test_on_kill_terminates_only_when_the_task_no_longer_waits(
    task_state: str | None,
    expected: str,
    use_connection: UseConnection,
    workflows: AomEmulator,
    monkeypatch: pytest.MonkeyPatch,
    log_text: LogText,
) -> None:
    task_runner = pytest.importorskip("airflow.sdk.execution_time.task_runner", reason="Airflow 3 triggerer")
    asked: list[dict[str, Any]] = []

    def get_task_states(**query: Any) -> dict[str, Any]:
        asked.append(query)
        if task_state == "unreadable":
            raise RuntimeError("no supervisor")
        return {"r": {"t_2": task_state}}

    monkeypatch.setattr(task_runner.RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    use_connection("aksk")
    execution_id = start("wf-long")
    trigger = AomWorkflowExecutionTrigger(workflow_id="wf-long", execution_id=execution_id)
    trigger.task_instance = _TaskInstance()  # type: ignore[assignment]
    await trigger.on_kill()
    assert asked == [{"dag_id": "d", "task_ids": ["t"], "run_ids": ["r"], "map_index": 2}]
    assert AomHook().get_execution("wf-long", execution_id)["status"] == expected
    if expected == "executing":
        assert "moved to another triggerer" in log_text()


async def test_on_kill_is_best_effort(use_connection: UseConnection, workflows: AomEmulator, log_text: LogText) -> None:
    """Terminating an unknown execution fails on the server: the request went out, on_kill logs and does not raise."""
    use_connection("aksk")
    await AomWorkflowExecutionTrigger(workflow_id="wf-long", execution_id="gone").on_kill()
    [terminate] = [r for r in workflows.state.requests() if r["path"].endswith("/gone/terminate")]
    assert terminate["status"] == 404
    assert "Could not terminate execution gone" in log_text()


async def test_unexpected_exception_ends_in_an_error_event(
    use_connection: UseConnection, workflows: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug meeting an unforeseen answer must reach the task as an event with a message, not as a raise."""
    from airflow_provider_aom import call_flow

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unsupported operand\r\n[error] forged line")

    use_connection("aksk")
    # Every call of the wait's plan is performed through call_flow.perform (in either hook).
    monkeypatch.setattr(call_flow, "perform", broken)
    event = await first_event(AomWorkflowExecutionTrigger(workflow_id="wf-quick", execution_id="e-1"))
    assert event["status"] == "error"
    assert "TypeError: unsupported operand" in event["message"]
    assert "\r" not in event["message"] and "\n" not in event["message"]


async def test_deadline_holds_while_a_poll_is_in_flight(use_connection: UseConnection, workflows: AomEmulator) -> None:
    """Status answers trickle at 20 bytes/s, the connection allows 60 s: the trigger's 1.5 s deadline still ends it."""
    use_connection("aksk", extra={"timeout": 60})
    execution_id = start("wf-long")
    workflows.state.add_fault("trickle", method="GET", path="/status$", delay=0.05, count=10)
    began = time.monotonic()
    event = await first_event(
        AomWorkflowExecutionTrigger(workflow_id="wf-long", execution_id=execution_id, deadline=time.time() + 1.5)
    )
    assert event["status"] == "timeout"
    assert time.monotonic() - began < 20, "a hang, not a slow machine"
    assert event["owned"] is True, "events carry whether the task may terminate the execution"


async def test_sequential_polls_reuse_one_connection(
    use_connection: UseConnection, workflows: AomEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-host stack hands the same idle connection back: 20 polls in a row open one socket."""
    from airflow_provider_aom.hooks.aom import AomAsyncHook

    use_connection("token")
    execution_id = start("wf-long")
    opened = count_connections(workflows, monkeypatch)
    hook = AomAsyncHook()
    for _ in range(20):
        assert (await hook.get_execution("wf-long", execution_id))["status"] == "executing"
    assert len(opened) == 1, opened
