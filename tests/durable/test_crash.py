"""Durable mode under a real scheduler: kill the task process mid-wait; the retry reattaches.

Airflow ≥ 3.3 only (task state store). Starts its own api-server (loopback), dag-processor and scheduler
with the LocalExecutor in a private AIRFLOW_HOME, and the emulator in-process; stops them all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig, WorkflowSpec
from tests.airflow_cluster import (
    airflow_cli,
    airflow_env,
    free_port,
    in_airflow,
    running_components,
    wait_for,
)
from tests.conftest import connection

airflow_version = pytest.importorskip("airflow").__version__
if tuple(int(p) for p in airflow_version.split(".")[:2]) < (3, 3):
    pytest.skip("durable execution needs Airflow 3.3 (task state store)", allow_module_level=True)

psutil = pytest.importorskip("psutil")

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "dag_files" / "aom_durable_dag.py"
WORKFLOW_SECONDS = 12.0
#: The CLI and the task processes answer slowly: poll every half second.
POLL = 0.5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[dict[str, str], AomEmulator]]:
    workflow = WorkflowSpec(id="wf-crash", name="crash", outcome="success", duration=WORKFLOW_SECONDS)
    with AomEmulator(EmulatorConfig(workflows=[workflow])) as emulator:
        home = tmp_path / "airflow"
        dags = home / "dags"
        dags.mkdir(parents=True)
        shutil.copy(DAG_FILE, dags / DAG_FILE.name)
        env = airflow_env(
            home,
            dags,
            free_port(),
            "durable-crash-test-secret",
            isolated=False,
            extra={"AIRFLOW_CONN_AOM_DEFAULT": json.dumps(connection(emulator, "aksk"))},
        )
        with running_components(env, tmp_path / "logs", ["api-server", "dag-processor", "scheduler"]):
            yield env, emulator


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
    out = in_airflow(env, script)
    state, try_number = out.split()[-2:]
    return state, int(try_number)


def trigger(env: dict[str, str], run_id: str) -> None:
    """Trigger the crash DAG once it is parsed."""
    wait_for(
        lambda: "aom_durable_crash" in airflow_cli(env, "dags", "list", "-o", "plain"),
        120,
        "the DAG to be parsed",
        interval=POLL,
    )
    airflow_cli(env, "dags", "unpause", "aom_durable_crash")
    airflow_cli(env, "dags", "trigger", "aom_durable_crash", "--run-id", run_id)


def kill_task_process() -> None:
    [pid] = wait_for(task_runner_pids, 30, "the task process", interval=0.2)
    os.kill(pid, signal.SIGKILL)


def assert_retry_followed_the_one_execution(env: dict[str, str], emulator: AomEmulator, run_id: str) -> None:
    """The retry (try 2) succeeded, and the workflow has exactly one execution, which succeeded."""

    def finished() -> tuple[str, int] | None:
        state, try_number = ti_state(env, run_id)
        return (state, try_number) if state in ("success", "failed") else None

    state, try_number = wait_for(finished, 180, "the retry to finish", interval=POLL)
    executions = emulator.state.executions()
    assert len(executions) == 1, f"the retry started another execution: {executions}"
    assert executions[0]["status"] == "success"
    assert (state, try_number) == ("success", 2)


def test_retry_after_a_crash_reattaches_to_the_same_execution(cluster: tuple[dict[str, str], AomEmulator]) -> None:
    env, emulator = cluster
    trigger(env, "crash-test")
    wait_for(lambda: emulator.state.executions(), 120, "the first try to submit", interval=POLL)
    time.sleep(1.5)  # well inside the wait loop, long after the id was stored
    kill_task_process()
    assert_retry_followed_the_one_execution(env, emulator, "crash-test")


#: How long the emulator holds the first submit before it creates the execution and answers.
SUBMIT_HELD = 8.0


def test_a_try_lost_mid_submit_leaves_its_retry_the_execution_it_started(
    cluster: tuple[dict[str, str], AomEmulator],
) -> None:
    """The task process dies while AOM holds its POST; AOM then starts the execution. The retry adopts it.

    Nothing recorded the execution id (the answer never reached the task), only that a POST was sent:
    the retry lists the workflow's executions since then and follows the one that POST started.
    """
    env, emulator = cluster
    emulator.state.add_fault("delay", method="POST", path=r"/executions$", delay=SUBMIT_HELD)
    trigger(env, "lost-mid-submit")
    # The fault is used up once the POST has arrived: the emulator now holds it.
    wait_for(lambda: not emulator.state.faults() or None, 120, "the first try's POST to arrive", interval=0.1)
    kill_task_process()
    wait_for(lambda: emulator.state.executions(), 60, "the held POST to start its execution", interval=POLL)
    assert_retry_followed_the_one_execution(env, emulator, "lost-mid-submit")
