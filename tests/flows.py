"""Running a plan (:data:`~airflow_provider_aom.api.Plan`) in a unit test, as the hooks do, from a script of answers."""

from __future__ import annotations

from typing import Any

from airflow_provider_aom.api import Call, Identify, Pause, Plan, Settings
from airflow_provider_aom.config import AomConnectionConfig
from airflow_provider_aom.retry import RetryPolicy

PROJECT = "0" * 32


def quick_settings(**overrides: Any) -> AomConnectionConfig:
    """A connection's settings with short timeouts and no waiting between retries."""
    fields: dict[str, Any] = {
        "conn_id": "aom_test",
        "endpoint": "https://aom.example.invalid",
        "iam_endpoint": "https://iam.example.invalid",
        "region": "r1",
        "auth_type": "token",
        "timeout": 0.01,
        "retry": RetryPolicy(attempts=5, max_wait=0.0, total=60.0, initial_wait=0.0),
    }
    fields.update(overrides)
    return AomConnectionConfig(**fields)


class Script:
    """Answers a plan's steps: each call by its method and the last segment of its path, in order.

    A queue's last answer repeats; an exception in it is thrown into the plan. ``steps`` records
    what the plan asked for, pauses with their seconds.
    """

    def __init__(self, answers: dict[str, list[Any]], *, settings: Any = None, identity: Any = None) -> None:
        self.answers = answers
        self.settings = settings if settings is not None else type("S", (), {"timeout": 0.01})()
        self.identity = identity
        self.steps: list[str] = []

    def answer(self, step: Any) -> Any:
        if isinstance(step, Pause):
            self.steps.append(f"pause {step.seconds:.2f}")
            return None
        if isinstance(step, Settings):
            self.steps.append("settings")
            return self.settings
        if isinstance(step, Identify):
            self.steps.append("identify")
            return self.identity
        assert isinstance(step, Call)
        request = step.request(PROJECT)
        key = f"{request.method} {request.path.rsplit('/', 1)[-1]}"
        self.steps.append(key)
        queue = self.answers[key]
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, Exception):
            raise value
        return value

    def count(self, key: str) -> int:
        return self.steps.count(key)


def drive(plan: Plan[Any], script: Script) -> Any:
    """Run a plan as the hooks do: each step answered, failures thrown back into it."""
    try:
        step = next(plan)
        while True:
            try:
                result = script.answer(step)
            except Exception as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(result)
    except StopIteration as stop:
        return stop.value
