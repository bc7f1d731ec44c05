"""Fixtures the emulator's tests share: an emulator with fast workflows, and an HTTP session that ignores proxies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig
from tests.emulator.test_emulator import STATIC, fast_workflows


@pytest.fixture
def emu() -> Iterator[AomEmulator]:
    with AomEmulator(EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows())) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session
