"""The one polling helper of the test suites: call a predicate until it answers something truthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.01,
    ignore: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
) -> T:
    """Poll ``predicate`` every ``interval`` seconds until it returns a truthy value, and return that value.

    Raises ``AssertionError`` naming ``what`` once ``timeout`` seconds have passed. Exceptions of the
    ``ignore`` types count as a falsy answer; ``check`` runs before each call (it raises to give up early,
    e.g. when a process the predicate depends on has exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        try:
            value = predicate()
        except ignore:
            pass
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
