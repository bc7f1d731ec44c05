"""A real Airflow cluster for the durable and browser tests, all on 127.0.0.1.

``airflow_env`` builds the environment (private AIRFLOW_HOME and SQLite DB, LocalExecutor, the api-server on a
loopback port, login off), ``start_components`` migrates the DB and starts each component in a process group
of its own with its output in ``<logs>/<name>.log``, and ``stop_process_groups`` stops them, children included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tests.polling import wait_for

__all__ = [
    "AIRFLOW",
    "airflow_cli",
    "airflow_env",
    "free_port",
    "in_airflow",
    "running_components",
    "start_components",
    "stop_process_groups",
    "wait_for",
]

AIRFLOW = [sys.executable, "-m", "airflow"]
#: What ``isolated`` drops from the caller's environment (tests/conftest.py sets some of these).
CALLER_AIRFLOW_SETTINGS = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW_HOME")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(
    home: Path,
    dags: Path,
    port: int,
    jwt_secret: str,
    *,
    isolated: bool = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The components' environment: the caller's (without its Airflow settings when ``isolated``), then ``extra``."""
    inherited = {
        key: value for key, value in os.environ.items() if not (isolated and key.startswith(CALLER_AIRFLOW_SETTINGS))
    }
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "PYTHONWARNINGS": "ignore",
        **(extra or {}),
    }


def _command(name: str, env: Mapping[str, str]) -> list[str]:
    if name == "api-server":
        return ["api-server", "--host", "127.0.0.1", "--port", env["AIRFLOW__API__PORT"]]
    if name in ("scheduler", "triggerer"):
        return [name, "--skip-serve-logs"]  # nothing but the api-server listens
    if name == "dag-processor":
        return [name]
    raise ValueError(name)


def start_components(
    env: Mapping[str, str], logs: Path, names: Iterable[str], procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    """``airflow db migrate``, then start each named component (``api-server``, ``dag-processor``, ``scheduler``,
    ``triggerer``) in a new session, adding it to ``procs`` as soon as it runs (so a failure part-way still
    leaves the started ones for ``stop_process_groups``)."""
    with open(logs / "db-migrate.log", "wb") as out:
        subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    for name in names:
        with open(logs / f"{name}.log", "wb") as out:
            procs[name] = subprocess.Popen(
                [*AIRFLOW, *_command(name, env)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )


def stop_process_groups(procs: Iterable[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    """SIGTERM each process group, wait up to ``grace`` seconds, then SIGKILL whatever is left of each group."""
    leaders = list(procs)
    for proc in leaders:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in leaders:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in leaders:
        # Also reaps children (LocalExecutor workers, task supervisors) that outlived their group leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def airflow_cli(env: Mapping[str, str], *args: str) -> str:
    """Run ``airflow <args>`` in the cluster's environment; its stdout (fails the test on a non-zero exit)."""
    result = subprocess.run([*AIRFLOW, *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def in_airflow(env: Mapping[str, str], script: str) -> str:
    """Run a Python ``script`` with the cluster's Airflow settings (to read its metadata DB); its stdout."""
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@contextlib.contextmanager
def running_components(env: Mapping[str, str], logs: Path, names: Iterable[str]) -> Iterator[None]:
    """``start_components`` for the ``with`` block, then ``stop_process_groups``; prints each log's tail at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        start_components(env, logs, names, procs)
        yield
    finally:
        stop_process_groups(procs.values())
        for log in sorted(logs.glob("*.log")):
            sys.stdout.write(f"--- tail of {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
