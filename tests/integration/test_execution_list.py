"""The execution list over real HTTP: a long history streamed through both hooks, its own cap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from airflow_provider_aom.emulator import AomEmulator
from airflow_provider_aom.exceptions import AomResponseTooLargeError
from airflow_provider_aom.execution_list import since
from airflow_provider_aom.hooks.aom import AomAsyncHook, AomHook
from tests.conftest import UseConnection

HISTORY = 20_000


@pytest.fixture
def history(seed_history: Callable[..., AomEmulator]) -> AomEmulator:
    return seed_history(HISTORY)


def test_both_hooks_read_a_long_history_with_small_detail_cap(
    use_connection: UseConnection, history: AomEmulator
) -> None:
    # ~100 MB of list against a 1 MiB cap for ordinary answers: the list has its own.
    use_connection("aksk", extra={"max_response_bytes": 1024 * 1024})
    running = AomHook().execute_workflow("wf-long")
    synced = AomHook().list_executions("wf-long", keep=since(0))
    assert synced.rows == HISTORY + 1 and len(synced) == HISTORY + 1 and synced.invalid == 0
    assert synced.clock_offset is not None and abs(synced.clock_offset) < 5

    async def read() -> list[str]:
        listing = await AomAsyncHook().list_executions("wf-long", keep=lambda e: e.status == "executing")
        return [e.execution_id for e in listing]

    assert asyncio.run(read()) == [running]


def test_the_list_has_its_own_cap(use_connection: UseConnection, history: AomEmulator) -> None:
    use_connection("aksk", extra={"max_list_bytes": 1024 * 1024})
    with pytest.raises(AomResponseTooLargeError, match="larger than 1048576 bytes"):
        AomHook().list_executions("wf-success")
