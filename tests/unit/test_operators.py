"""Operator plumbing that needs no Airflow run: the waiting operators close their hook's sockets when a method ends."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aom.operators.aom import closes_hook


class FakeHook:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Task:
    def __init__(self, make_hook: bool) -> None:
        if make_hook:
            self.hook = FakeHook()  # what the cached_property leaves in the instance's __dict__

    @closes_hook
    def execute(self, outcome: Any) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_the_hook_is_closed_when_the_method_returns() -> None:
    task = Task(make_hook=True)
    assert task.execute("exec-1") == "exec-1"
    assert task.hook.closed == 1


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_hook_is_closed_when_the_method_raises_or_defers(error: BaseException) -> None:
    # Deferring is a raise (TaskDeferred) too: the sockets are let go before the task leaves the worker.
    task = Task(make_hook=True)
    with pytest.raises(type(error)):
        task.execute(error)
    assert task.hook.closed == 1


def test_no_hook_is_made_only_to_be_closed() -> None:
    task = Task(make_hook=False)
    task.execute(None)
    assert "hook" not in task.__dict__
