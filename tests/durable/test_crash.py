"""Durable mode under a real scheduler: kill the task process mid-wait; the retry reattaches.

Airflow ≥ 3.3 only (task state store). Starts its own api-server (loopback), dag-processor and scheduler
with the LocalExecutor in a private AIRFLOW_HOME, and the emulator in-process; stops them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_aom.emulator import (
    DEFAULT_AK,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SK,
    AomEmulator,
    EmulatorConfig,
    WorkflowSpec,
)

airflow_version = pytest.importorskip("airflow").__version__
if tuple(int(p) for p in airflow_version.split(".")[:2]) < (3, 3):
    pytest.skip("durable execution needs Airflow 3.3 (task state store)", allow_module_level=True)

psutil = pytest.importorskip("psutil")

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "dag_files" / "aom_durable_dag.py"
WORKFLOW_SECONDS = 12.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[dict[str, str], AomEmulator]]:
    emulator = AomEmulator(
        EmulatorConfig(
            workflows=[WorkflowSpec(id="wf-crash", name="crash", outcome="success", duration=WORKFLOW_SECONDS)]
        )
    ).start()
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "durable-crash-test-secret",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "PYTHONWARNINGS": "ignore",
        "AIRFLOW_CONN_AOM_DEFAULT": json.dumps(
            {
                "conn_type": "huaweicloud_aom",
                "host": emulator.base_url,
                "login": DEFAULT_AK,
                "password": DEFAULT_SK,
                "extra": {"region": DEFAULT_REGION, "project_id": DEFAULT_PROJECT_ID},
            }
        ),
    }
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)]),
            ("dag-processor", ["dag-processor"]),
            ("scheduler", ["scheduler", "--skip-serve-logs"]),
        ):
            with open(logs / f"{name}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [*airflow, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        yield env, emulator
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        emulator.stop()
        for log in sorted(logs.glob("*.log")):
            sys.stdout.write(f"--- tail of {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")


def airflow_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def task_runner_pids() -> list[int]:
    """The task process: titled ``airflow worker -- <ti id>``, a child of the supervisor of the same title."""
    titled = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("airflow worker -- "):
            titled[proc.info["pid"]] = proc.info["ppid"]
    sys.stdout.write(f"worker processes: {titled}\n")
    return [pid for pid, ppid in titled.items() if ppid in titled]


def ti_state(env: dict[str, str], run_id: str) -> tuple[str, int]:
    script = (
        "from airflow.utils.session import create_session\n"
        "from airflow.models import TaskInstance as TI\n"
        "with create_session() as s:\n"
        f"    ti = s.query(TI).filter(TI.dag_id=='aom_durable_crash', TI.run_id=={run_id!r}).one_or_none()\n"
        "    print(f'{ti.state if ti else None} {ti.try_number if ti else 0}')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    state, try_number = out.split()[-2:]
    return state, int(try_number)


def test_retry_after_a_crash_reattaches_to_the_same_execution(cluster: tuple[dict[str, str], AomEmulator]) -> None:
    env, emulator = cluster
    wait_for(
        lambda: "aom_durable_crash" in airflow_cli(env, "dags", "list", "-o", "plain"), 120, "the DAG to be parsed"
    )
    airflow_cli(env, "dags", "unpause", "aom_durable_crash")
    run_id = "crash-test"
    airflow_cli(env, "dags", "trigger", "aom_durable_crash", "--run-id", run_id)

    wait_for(lambda: emulator.state.executions(), 120, "the first try to submit")
    time.sleep(1.5)  # well inside the wait loop, long after the id was stored
    [pid] = wait_for(task_runner_pids, 30, "the task process")
    os.kill(pid, signal.SIGKILL)

    def finished() -> tuple[str, int] | None:
        state, try_number = ti_state(env, run_id)
        return (state, try_number) if state in ("success", "failed") else None

    state, try_number = wait_for(finished, 180, "the retry to finish")
    executions = emulator.state.executions()
    assert len(executions) == 1, f"the retry started another execution: {executions}"
    assert executions[0]["status"] == "success"
    assert (state, try_number) == ("success", 2)
