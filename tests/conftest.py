"""Shared fixtures: an isolated Airflow home, the emulator over real HTTP, connections from env vars."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its home and settings at import time: set them before anything imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="aom-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# The DAGs folder (Airflow 3's bundle) holds the example DAGs and the tests' own DAG file.
_DAGS_FOLDER = Path(_AIRFLOW_HOME) / "dags"
_DAGS_FOLDER.mkdir()
for _source in [
    *sorted((ROOT / "example_dags").glob("*.py")),
    ROOT / "tests" / "dags" / "dag_files" / "aom_test_dags.py",
]:
    shutil.copy(_source, _DAGS_FOLDER / _source.name)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS_FOLDER)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.pop("AIRFLOW_CONN_AOM_DEFAULT", None)

from airflow_provider_aom.auth.tokens import TOKEN_CACHE  # noqa: E402
from airflow_provider_aom.emulator import (  # noqa: E402
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SECURITY_TOKEN,
    DEFAULT_SK,
    DEFAULT_TEMP_AK,
    DEFAULT_TEMP_SK,
    AomEmulator,
    EmulatorConfig,
    WorkflowSpec,
)

STATIC_TOKEN = "MIIstatic-test-token-0123456789"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[AomEmulator]:
    with AomEmulator(EmulatorConfig(static_tokens=[STATIC_TOKEN])) as emu:
        yield emu


def reset_client_state(emu: AomEmulator) -> None:
    """Reset the emulator (executions, faults, request log) and forget the tokens and project ids clients cached."""
    from airflow_provider_aom import auth_flow

    emu.state.reset()
    TOKEN_CACHE.clear()
    auth_flow.RESOLVED.clear()


@pytest.fixture
def emulator(emulator_server: AomEmulator) -> Iterator[AomEmulator]:
    """The shared emulator, reset (executions, faults, request log) and with a clean token cache."""
    reset_client_state(emulator_server)
    yield emulator_server
    emulator_server.state.clear_faults()


def connection(emu: AomEmulator, mode: str, **overrides: Any) -> dict[str, Any]:
    """Connection JSON (as in AIRFLOW_CONN_...) for one auth mode against the emulator."""
    extra: dict[str, Any] = {"region": DEFAULT_REGION, "iam_endpoint": emu.base_url}
    conn: dict[str, Any] = {"conn_type": "huaweicloud_aom", "host": emu.base_url}
    if mode == "aksk":
        conn.update(login=DEFAULT_AK, password=DEFAULT_SK)
        extra.update(auth_type="aksk", project_id=DEFAULT_PROJECT_ID)
    elif mode == "temp_aksk":
        conn.update(login=DEFAULT_TEMP_AK, password=DEFAULT_TEMP_SK)
        extra.update(auth_type="aksk", project_id=DEFAULT_PROJECT_ID, security_token=DEFAULT_SECURITY_TOKEN)
    elif mode == "password":
        conn.update(login=DEFAULT_IAM_USER, password=DEFAULT_IAM_PASSWORD)
        extra.update(auth_type="password", domain_name=DEFAULT_IAM_DOMAIN)
    elif mode == "token":
        conn.update(password=STATIC_TOKEN)
        extra.update(auth_type="token", project_id=DEFAULT_PROJECT_ID)
    else:
        raise ValueError(mode)
    extra.update(overrides.pop("extra", {}))
    conn.update(overrides)
    conn["extra"] = extra
    return conn


UseConnection = Callable[..., dict[str, Any]]


def connection_exporter(
    emu: AomEmulator,
    monkeypatch: pytest.MonkeyPatch,
    defaults: Callable[[str], dict[str, Any]] | None = None,
) -> UseConnection:
    """``use(mode, conn_id="aom_default", **overrides)``: export AIRFLOW_CONN_<ID> for ``connection(emu, mode)``.

    ``defaults(mode)`` gives overrides applied first (``extra`` merged key by key, the call's winning).
    """

    def use(mode: str, conn_id: str = "aom_default", **overrides: Any) -> dict[str, Any]:
        merged = dict(defaults(mode)) if defaults is not None else {}
        extra = {**merged.pop("extra", {}), **overrides.pop("extra", {})}
        conn = connection(emu, mode, **{**merged, **overrides, "extra": extra})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return use


@pytest.fixture
def use_connection(monkeypatch: pytest.MonkeyPatch, emulator: AomEmulator) -> UseConnection:
    """``use_connection(mode, conn_id="aom_default", **overrides)`` exports AIRFLOW_CONN_<ID>."""
    return connection_exporter(emulator, monkeypatch)


AUTH_MODES = ["aksk", "temp_aksk", "password", "token"]

#: Short workflows the waiting tests run (tests/dags/dag_files/aom_test_dags.py names them).
QUICK_SECONDS = 0.5
QUICK_WORKFLOWS = (
    WorkflowSpec(id="wf-quick", name="quick", outcome="success", duration=QUICK_SECONDS),
    WorkflowSpec(id="wf-quick-fail", name="quick fail", outcome="fail", duration=QUICK_SECONDS),
    WorkflowSpec(id="wf-quick-pause-fail", name="quick pause on fail", outcome="pause_on_fail", duration=QUICK_SECONDS),
    WorkflowSpec(id="wf-quick-pause", name="quick pause", outcome="pause", duration=QUICK_SECONDS),
)


@pytest.fixture
def quick_workflows(emulator: AomEmulator) -> AomEmulator:
    """The shared emulator with ``QUICK_WORKFLOWS`` added."""
    for spec in QUICK_WORKFLOWS:
        emulator.state.add_workflow(spec)
    return emulator


@pytest.fixture
def seed_history(emulator: AomEmulator) -> Iterator[Callable[..., AomEmulator]]:
    """``seed_history(rows, nodes=20)``: every workflow of the shared emulator gets ``rows`` old executions."""

    def seed(rows: int, nodes: int = 20) -> AomEmulator:
        emulator.state.configure(history=rows, history_nodes=nodes)
        return emulator

    yield seed
    emulator.state.configure(history=0, history_nodes=20)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated metadata DB in the session's AIRFLOW_HOME (DAG-level tests need it)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return _AIRFLOW_HOME


LogText = Callable[[], str]


@pytest.fixture
def log_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> LogText:
    """What was logged so far, however the Airflow version routes it (stdlib logging, or structlog to stdout)."""
    caplog.set_level("INFO")

    def text() -> str:
        captured = capsys.readouterr()
        # Read output is consumed: write it back so the report of a failing test still shows it.
        sys.stdout.write(captured.out)
        sys.stderr.write(captured.err)
        return caplog.text + captured.out + captured.err

    return text
