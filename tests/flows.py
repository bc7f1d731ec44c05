"""Running a plan (:data:`~airflow_provider_aom.api.Plan`) in a unit test, as the hooks do, from a script of answers."""

from __future__ import annotations

from collections.abc import Callable, Generator
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


def run_steps(
    steps: Generator[Any, Any, Any], answer: Callable[[Any], Any], *, answer_pauses: bool = False
) -> tuple[Any, list[Any]]:
    """Run a plan or a lower-level flow as the hooks do: each step answered, failures thrown back into it.

    Returns the generator's value and every step it made, in order. No time passes at a pause: it is
    answered None, by ``answer`` only when ``answer_pauses``.
    """
    seen: list[Any] = []
    try:
        step = next(steps)
        while True:
            seen.append(step)
            try:
                result = None if isinstance(step, Pause) and not answer_pauses else answer(step)
            except Exception as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value, seen


def scripted(*answers: Any) -> Callable[[Any], Any]:
    """An ``answer`` for :func:`run_steps`: the given answers in order, whatever the step (exceptions raised)."""
    queue = list(answers)

    def answer(step: Any) -> Any:
        value = queue.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    return answer


def drive(plan: Plan[Any], script: Script) -> Any:
    """Run a plan answered by ``script`` (which records its pauses too); returns the plan's value."""
    return run_steps(plan, script.answer, answer_pauses=True)[0]
