"""``make demo``: run an example DAG against the local emulator and print what happened.

Starts the emulator on a free loopback port, points the ``aom_default``
connection at it through ``AIRFLOW_CONN_AOM_DEFAULT`` (AK/SK auth), runs
``airflow dags test example_aom_run_and_wait`` in a private ``AIRFLOW_HOME``
(``.demo/``), prints the execution id and how the execution ended, and stops
the emulator. Exits 0 only if the task succeeded and the execution succeeded.

``DEMO_HISTORY=N`` (``make demo DEMO_HISTORY=100000``) gives every workflow N old executions first, as a
workflow run every five minutes has after a year (the execution list has no paging).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from airflow_provider_aom.emulator import DEFAULT_AK, DEFAULT_PROJECT_ID, DEFAULT_REGION, DEFAULT_SK

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_aom_run_and_wait"


def main() -> int:
    home = ROOT / ".demo" / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    emulator = subprocess.Popen(
        [
            sys.executable,
            *("-m", "airflow_provider_aom.emulator", "--port", "0", "--quiet"),
            *("--history", os.environ.get("DEMO_HISTORY", "0")),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=home,  # not the source tree: the installed package is what runs
    )
    try:
        assert emulator.stdout is not None
        base_url = emulator.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            print(f"demo: the emulator did not start (first line: {base_url!r})", file=sys.stderr)
            return 1
        print(f"demo: AOM/IAM emulator at {base_url}")
        connection = {
            "conn_type": "huaweicloud_aom",
            "host": base_url,
            "login": DEFAULT_AK,
            "password": DEFAULT_SK,
            "extra": {"auth_type": "aksk", "region": DEFAULT_REGION, "project_id": DEFAULT_PROJECT_ID},
        }
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_AOM_DEFAULT": json.dumps(connection),
            "PYTHONWARNINGS": "ignore",
        }
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, cwd=home)
        print(f"demo: airflow dags test {DAG_ID} (log: .demo/dags-test.log)")
        result = subprocess.run([*airflow, "dags", "test", DAG_ID], env=env, capture_output=True, text=True, cwd=home)
        log = result.stdout + result.stderr
        (ROOT / ".demo" / "dags-test.log").write_text(log)

        with urllib.request.urlopen(f"{base_url}/_emulator/executions", timeout=10) as response:  # noqa: S310
            executions = json.load(response)
        reported = re.findall(r"Started execution (\S+) of AOM workflow", log)
        if len(executions) != 1:
            print(f"demo: expected one execution, the emulator has {len(executions)}", file=sys.stderr)
            return 1
        execution = executions[0]
        print(f"demo: execution_id={execution['execution_id']} workflow={execution['workflow_id']}")
        task = "succeeded" if result.returncode == 0 else "FAILED"
        print(f"demo: execution ended as {execution['status']!r}; Airflow task {task}")
        if reported and reported[-1] != execution["execution_id"]:
            print(f"demo: Airflow reported execution {reported[-1]}, not the emulator's", file=sys.stderr)
            return 1
        if result.returncode != 0 or execution["status"] != "success":
            print(log[-4000:], file=sys.stderr)
            return 1
        return 0
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()


if __name__ == "__main__":
    sys.exit(main())
