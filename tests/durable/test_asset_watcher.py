"""The asset-watcher example under a real scheduler, dag-processor and triggerer: one DAG run per new execution.

Airflow ≥ 3.0 (asset watchers). Starts its own api-server (loopback), dag-processor, scheduler and triggerer
with the LocalExecutor in a private AIRFLOW_HOME, and the emulator in-process; stops them all. The example DAG
is used as shipped but for its poll interval (a minute there, two seconds here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest

from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig
from airflow_provider_aom.hooks.aom import AomHook
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
if int(airflow_version.split(".")[0]) < 3:
    pytest.skip("asset watchers need Airflow 3", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_aom_asset_watcher.py"
DAG_ID = "example_aom_after_patching"
WORKFLOW_ID = "wf-nightly"  # the emulator's "nightly-patching" (2 s long)
POLL = 1.0

RUNS_SCRIPT = f"""
import json
from airflow.models import DagRun, TaskInstance
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session
with create_session() as s:
    runs = [
        {{"run_id": r.run_id, "state": str(r.state), "ti": [str(t.state) for t in
          s.query(TaskInstance).filter(TaskInstance.dag_id == r.dag_id, TaskInstance.run_id == r.run_id)]}}
        for r in s.query(DagRun).filter(DagRun.dag_id == {DAG_ID!r})
    ]
    events = [e.extra.get("payload", {{}}).get("execution_id") for e in s.query(AssetEvent)]
print(json.dumps({{"runs": runs, "events": events}}))
"""


class RunsAndEvents(TypedDict):
    """What RUNS_SCRIPT prints: the example DAG's runs and each asset event's execution id."""

    runs: list[dict[str, object]]
    events: list[str | None]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, str], AomEmulator]]:
    # A year of five-minute runs in front of the real executions: the list has no paging.
    with AomEmulator(EmulatorConfig(history=100_000, history_nodes=2)) as emulator:
        home = tmp_path / "airflow"
        dags = home / "dags"
        dags.mkdir(parents=True)
        source = EXAMPLE.read_text()
        assert source.count("poll_interval=60") == 1
        (dags / EXAMPLE.name).write_text(source.replace("poll_interval=60", "poll_interval=2"))
        conn = json.dumps(connection(emulator, "aksk"))
        monkeypatch.setenv("AIRFLOW_CONN_AOM_DEFAULT", conn)  # the hook in this test process starts executions
        env = airflow_env(
            home,
            dags,
            free_port(),
            "asset-watcher-test-secret",
            extra={
                "AIRFLOW_CONN_AOM_DEFAULT": conn,
                # The watcher is registered when the DAG is parsed after being unpaused: parse often.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
            },
        )
        with running_components(env, tmp_path / "logs", ["api-server", "dag-processor", "scheduler", "triggerer"]):
            yield env, emulator


def list_calls(emulator: AomEmulator) -> int:
    path = f"/{WORKFLOW_ID}/executions"
    return sum(1 for r in emulator.state.requests() if r["method"] == "GET" and r["path"].endswith(path))


def test_each_new_execution_runs_the_watching_dag_exactly_once(cluster: tuple[dict[str, str], AomEmulator]) -> None:
    env, emulator = cluster
    hook = AomHook()
    old = hook.execute_workflow(WORKFLOW_ID)  # ends before the watch begins: never an event
    wait_for(lambda: DAG_ID in airflow_cli(env, "dags", "list", "-o", "plain"), 120, "the DAG to be parsed", interval=1)
    ended = wait_for(
        lambda: hook.get_execution(WORKFLOW_ID, old)["status"] != "executing", 30, "the old run to end", interval=0.2
    )
    assert ended
    airflow_cli(env, "dags", "unpause", DAG_ID)
    # The watch has begun once the triggerer has read the list twice (the first read sets the watermark).
    wait_for(lambda: list_calls(emulator) >= 2, 120, "the watcher to poll", interval=POLL)

    def state() -> RunsAndEvents:
        printed: RunsAndEvents = json.loads(in_airflow(env, RUNS_SCRIPT).strip().splitlines()[-1])
        return printed

    def finished_runs(count: int) -> RunsAndEvents | None:
        now = state()
        done = [r for r in now["runs"] if r["state"] in ("success", "failed")]
        return now if len(done) >= count else None

    first = hook.execute_workflow(WORKFLOW_ID)
    wait_for(lambda: finished_runs(1), 120, "the DAG run of the first execution", interval=POLL)
    second = hook.execute_workflow(WORKFLOW_ID)
    wait_for(lambda: finished_runs(2), 120, "the DAG run of the second execution", interval=POLL)

    # Several more polls: nothing else may happen.
    polls = list_calls(emulator)
    wait_for(lambda: list_calls(emulator) >= polls + 3, 60, "three more polls", interval=POLL)
    final = state()
    assert final["events"] == [first, second], "one asset event per new execution, none for the old one"
    assert len(final["runs"]) == 2, final["runs"]
    assert all(r["state"] == "success" and r["ti"] == ["success"] for r in final["runs"]), final["runs"]
    assert [e["status"] for e in emulator.state.executions()] == ["success"] * 3
    assert emulator.state.runtime_config()["history"] == 100_000
