"""The AOM execution panel's API on a real ``airflow api-server`` (Airflow >= 3.3) against the emulator.

The DAGs of ``dag_files/aom_panel_dags.py`` run in this process (``dag.test()``) on the session's metadata DB;
an api-server on 127.0.0.1 shares that DB, with the simple auth manager and three users: ``admin``, ``op`` and
``viewer``. The emulator's request log shows what reached AOM.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.dags.dagrun import AIRFLOW_3

if not AIRFLOW_3:
    pytest.skip("the panel is an Airflow >= 3.1 feature (the plugin offers nothing on 2.x)", allow_module_level=True)

import requests

from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig, WorkflowSpec
from tests.airflow_cluster import free_port, start_components, stop_process_groups, wait_for
from tests.conftest import connection

HERE = Path(__file__).resolve().parent
DAG_FILE = HERE / "dag_files" / "aom_panel_dags.py"
USERS = {"admin": "admin", "op": "op", "viewer": "viewer"}
PASSWORDS = {"admin": "admin-pass", "op": "op-pass", "viewer": "viewer-pass"}
WORKFLOWS = [
    WorkflowSpec(id="wf-panel-pause", name="panel pause", outcome="pause", duration=1.0),
    WorkflowSpec(id="wf-panel-flaky", name="panel flaky", outcome="pause_on_fail", duration=1.0),
    WorkflowSpec(id="wf-panel-fail", name="panel fail", outcome="fail", duration=1.0),
    WorkflowSpec(id="wf-panel-long", name="panel long", outcome="success", duration=600.0),
    WorkflowSpec(id="wf-panel-adopt", name="panel adopt", outcome="success", duration=600.0),
]


def load_dags() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("aom_panel_dags", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {v.dag_id: v for v in vars(module).values() if hasattr(v, "task_dict")}


@dataclass
class Panel:
    base_url: str
    emulator: AomEmulator
    logs: Path
    dags: dict[str, Any]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    http: requests.Session = field(default_factory=requests.Session)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            answer = self.http.post(
                f"{self.base_url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=30
            )
            assert answer.status_code in (200, 201), answer.text
            self.tokens[user] = answer.json()["access_token"]
        return self.tokens[user]

    def call(self, method: str, path: str, user: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self.http.request(method, self.base_url + path, headers=headers, timeout=60, **kwargs)

    def run(self, dag_id: str) -> Any:
        return self.dags[dag_id].test()

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with code {proc.returncode}")


def execution_path(dag_run: Any, task_id: str = "run") -> str:
    return f"/aom/api/executions/{quote(dag_run.dag_id, safe='')}/{quote(dag_run.run_id, safe='')}/{task_id}"


def xcom_execution_id(dag_run: Any) -> str:
    from tests.dags.dagrun import xcom

    value = xcom(dag_run, "run", "execution_id")
    assert isinstance(value, str), value
    return value


def operations(panel: Panel, execution_id: str) -> list[dict[str, Any]]:
    return panel.emulator.state.operations(execution_id)


def posts_to_aom(panel: Panel) -> int:
    return sum(1 for r in panel.emulator.state.requests() if r["method"] == "POST" and r["path"].startswith("/v1/"))


def wait_status(panel: Panel, execution_id: str, *statuses: str, timeout: float = 30) -> str:
    def status() -> str | None:
        [found] = [e for e in panel.emulator.state.executions() if e["execution_id"] == execution_id]
        return found["status"] if found["status"] in statuses else None

    result: str = wait_for(status, timeout, f"execution {execution_id} to be {statuses}", interval=0.2)
    return result


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory, airflow_db: str) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("panel")
    # Airflow 3 runs only DAGs its bundle parsed: the DAG file goes into the session's DAGs folder.
    shutil.copy(DAG_FILE, Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / DAG_FILE.name)
    logs = tmp / "logs"
    logs.mkdir()
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    emulator = AomEmulator(EmulatorConfig(workflows=WORKFLOWS)).start()
    conn = json.dumps(connection(emulator, "aksk"))
    port = free_port()
    saved = os.environ.get("AIRFLOW_CONN_AOM_DEFAULT")
    os.environ["AIRFLOW_CONN_AOM_DEFAULT"] = conn  # the DAG runs of this process
    env = {
        **os.environ,
        "AIRFLOW_CONN_AOM_DEFAULT": conn,  # the api-server reads AOM with the task's connection
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "panel-test-secret",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONWARNINGS": "ignore",
    }
    result = Panel(base_url=f"http://127.0.0.1:{port}", emulator=emulator, logs=logs, dags=load_dags())
    result.http.trust_env = False
    try:
        start_components(env, logs, ["api-server"], result.procs)
        wait_for(
            lambda: result.http.get(result.base_url + "/api/v2/monitor/health", timeout=5).ok,
            120,
            "the api-server",
            interval=0.5,
            ignore=(requests.ConnectionError,),
            check=result.alive,
        )
        yield result
    finally:
        stop_process_groups(result.procs.values())
        emulator.stop()
        result.http.close()
        if saved is None:
            os.environ.pop("AIRFLOW_CONN_AOM_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_AOM_DEFAULT"] = saved
        for log in sorted(logs.glob("*.log")):
            sys.stdout.write(f"--- tail of {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")


@pytest.fixture(scope="module")
def paused(panel: Panel) -> Any:
    """A run whose execution waits at its pause node."""
    dag_run = panel.run("aom_panel_pause")
    wait_status(panel, xcom_execution_id(dag_run), "pausing")
    return dag_run


def test_the_view_and_the_app_are_registered(panel: Panel) -> None:
    answer = panel.call("GET", "/api/v2/plugins", "admin")
    assert answer.status_code == 200, answer.text
    [plugin] = [p for p in answer.json()["plugins"] if p["name"] == "aom_execution_panel"]
    [view] = plugin["external_views"]
    assert view["destination"] == "task_instance"
    assert view["href"] == "/aom/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/aom"]


def test_without_a_token_every_route_answers_401(panel: Panel, paused: Any) -> None:
    path = execution_path(paused)
    before = posts_to_aom(panel)
    assert panel.call("GET", path).status_code == 401
    assert panel.call("POST", path + "/actions", json={"action": "continue"}).status_code == 401
    page = "/aom/ti/" + path.split("/aom/api/executions/", 1)[1]
    assert panel.call("GET", page).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert panel.call("GET", path, headers=bad).status_code in (401, 403)
    assert panel.call("POST", path + "/actions", headers=bad, json={"action": "continue"}).status_code in (401, 403)
    assert posts_to_aom(panel) == before


def test_the_execution_as_json(panel: Panel, paused: Any) -> None:
    answer = panel.call("GET", execution_path(paused) + "?map_index=-1", "admin")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["workflow_id"] == "wf-panel-pause"
    assert body["execution_id"] == xcom_execution_id(paused)
    assert body["status"] == "pausing" and body["running"] is True
    assert [n["node_id"] for n in body["nodes"]] == ["node_1", "pause_1"]
    for node in body["nodes"]:
        assert set(node) >= {"node_id", "status", "begin_time", "end_time", "output"}
    assert body["nodes"][0]["status"] == "success" and body["nodes"][0]["end_time"]
    assert {"action": "continue", "node_id": "pause_1"}.items() <= body["actions"][0].items()
    assert any(a["action"] == "terminate" for a in body["actions"])  # this task started it
    assert body["console_url"].startswith("https://")


def test_the_role_matrix(panel: Panel, paused: Any) -> None:
    path = execution_path(paused)
    for user in ("admin", "op", "viewer"):
        answer = panel.call("GET", path, user)
        assert answer.status_code == 200, (user, answer.text)
        assert bool(answer.json()["actions"]) is (user != "viewer"), user
    before = posts_to_aom(panel)
    refused = panel.call("POST", path + "/actions", "viewer", json={"action": "continue", "node_id": "pause_1"})
    assert refused.status_code == 403, refused.text
    assert posts_to_aom(panel) == before, "the viewer's press reached AOM"
    assert operations(panel, xcom_execution_id(paused)) == []


def test_unknown_and_non_aom_task_instances_are_404(panel: Panel, paused: Any) -> None:
    mixed = panel.run("aom_panel_mixed")
    not_aom = panel.call("GET", execution_path(mixed, "not_aom"), "admin")
    assert not_aom.status_code == 404 and not_aom.json()["reason"] == "not_aom_task", not_aom.text
    for path in (
        execution_path(paused, "no_such_task"),
        f"/aom/api/executions/aom_panel_pause/{quote('no-such-run', safe='')}/run",
        "/aom/api/executions/no_such_dag/x/run",
        execution_path(paused) + "?map_index=3",
    ):
        answer = panel.call("GET", path, "admin")
        assert answer.status_code == 404, (path, answer.text)
        route, _, query = path.partition("?")
        action = panel.call("POST", f"{route}/actions?{query}", "admin", json={"action": "terminate"})
        assert action.status_code == 404, (path, action.text)


def test_bad_input_is_400_and_get_changes_nothing(panel: Panel, paused: Any) -> None:
    path = execution_path(paused) + "/actions"
    before = posts_to_aom(panel)
    cases: list[dict[str, Any]] = [
        {"data": "{not json", "headers": {"Content-Type": "application/json"}},
        {"json": ["continue"]},
        {"json": {"action": "reboot"}},
        {"json": {"action": "continue", "node_id": "bad\nid"}},
        {"json": {"action": "continue", "node_id": 7}},
        {"data": "action=continue", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"data": '{"action": "continue"}', "headers": {"Content-Type": "text/plain"}},
    ]
    for case in cases:
        answer = panel.call("POST", path, "admin", **case)
        assert answer.status_code == 400, (case, answer.text)
    assert panel.call("POST", path + "?map_index=abc", "admin", json={"action": "continue"}).status_code == 400
    assert panel.call("GET", path, "admin").status_code == 405  # no state change on GET
    assert posts_to_aom(panel) == before
    assert operations(panel, xcom_execution_id(paused)) == []


def test_continue_then_a_second_press_is_refused(panel: Panel, paused: Any) -> None:
    execution_id = xcom_execution_id(paused)
    path = execution_path(paused) + "/actions"
    answer = panel.call("POST", path, "op", json={"action": "continue", "node_id": "pause_1"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["execution_id"] == execution_id
    again = panel.call("POST", path, "op", json={"action": "continue", "node_id": "pause_1"})
    assert again.status_code == 409, again.text
    assert [o["action"] for o in operations(panel, execution_id)] == ["continue"]
    wait_status(panel, execution_id, "success")


def test_restart_sends_one_operation_for_the_tasks_own_execution(panel: Panel) -> None:
    mine, other = panel.run("aom_panel_flaky"), panel.run("aom_panel_flaky")
    mine_id, other_id = xcom_execution_id(mine), xcom_execution_id(other)
    for execution_id in (mine_id, other_id):
        wait_status(panel, execution_id, "pausing")
    before = posts_to_aom(panel)
    body = {"action": "restart", "node_id": "node_2", "execution_id": other_id, "workflow_id": "wf-panel-pause"}
    answer = panel.call("POST", execution_path(mine) + "/actions", "admin", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert (result["action"], result["node_id"], result["execution_id"]) == ("restart", "node_2", mine_id)
    assert posts_to_aom(panel) == before + 1
    assert [o["action"] for o in operations(panel, mine_id)] == ["restart"]
    assert operations(panel, other_id) == []
    # Pressed again while the node runs again: nothing applies, nothing is sent.
    again = panel.call("POST", execution_path(mine) + "/actions", "admin", json={"action": "restart"})
    assert again.status_code == 409, again.text
    assert posts_to_aom(panel) == before + 1
    # The audit log has the press: who, what, which node, which execution.
    rows = audit_rows("aom_panel.restart", mine.run_id)
    assert len(rows) == 1, rows
    owner, extra = rows[0]
    assert owner == "admin"
    assert (extra["action"], extra["node_id"], extra["execution_id"]) == ("restart", "node_2", mine_id)


def test_simultaneous_presses_send_one_operation(panel: Panel) -> None:
    dag_run = panel.run("aom_panel_flaky")
    execution_id = xcom_execution_id(dag_run)
    wait_status(panel, execution_id, "pausing")
    path = execution_path(dag_run) + "/actions"
    token = panel.token("admin")
    answers: list[int] = []

    def press() -> None:
        answers.append(
            requests.post(
                panel.base_url + path,
                json={"action": "skip", "node_id": "node_2"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ).status_code
        )

    threads = [threading.Thread(target=press) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409, 409], answers
    assert [o["action"] for o in operations(panel, execution_id)] == ["skip"]
    assert len(audit_rows("aom_panel.skip", dag_run.run_id)) == 1


def test_terminate_only_an_execution_the_task_started(panel: Panel) -> None:
    started = panel.run("aom_panel_long")
    started_id = xcom_execution_id(started)
    panel.emulator.state.create_execution("wf-panel-adopt", created_by="someone-else")
    adopted = panel.run("aom_panel_adopted")
    adopted_id = xcom_execution_id(adopted)
    assert adopted_id != started_id

    body = panel.call("GET", execution_path(adopted), "admin").json()
    assert body["owned"] is False and not any(a["action"] == "terminate" for a in body["actions"])
    refused = panel.call("POST", execution_path(adopted) + "/actions", "admin", json={"action": "terminate"})
    assert refused.status_code == 409, refused.text
    assert [e["status"] for e in panel.emulator.state.executions() if e["execution_id"] == adopted_id] == ["executing"]

    body = panel.call("GET", execution_path(started), "admin").json()
    assert body["owned"] is True and any(a["action"] == "terminate" for a in body["actions"])
    # The body names the adopted execution: ignored, the task's own is terminated.
    answer = panel.call(
        "POST", execution_path(started) + "/actions", "admin", json={"action": "terminate", "execution_id": adopted_id}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["execution_id"] == started_id
    statuses = {e["execution_id"]: e["status"] for e in panel.emulator.state.executions()}
    assert statuses[started_id] == "cancel" and statuses[adopted_id] == "executing"
    again = panel.call("POST", execution_path(started) + "/actions", "admin", json={"action": "terminate"})
    assert again.status_code == 409, again.text
    assert len(audit_rows("aom_panel.terminate", started.run_id)) == 1


def test_restart_of_a_failed_task_clears_it_to_follow_the_same_execution(panel: Panel) -> None:
    from tests.dags.dagrun import task_states

    dag_run = panel.run("aom_panel_fail")
    assert task_states(dag_run) == {"run": "failed"}
    execution_id = xcom_execution_id(dag_run)
    body = panel.call("GET", execution_path(dag_run), "admin").json()
    assert body["status"] == "fail" and body["task_state"] == "failed"
    [restart] = [a for a in body["actions"] if a["action"] == "restart"]
    assert restart["node_id"] == "node_2" and restart["clears_task"] is True
    answer = panel.call("POST", execution_path(dag_run) + "/actions", "admin", json={"action": "restart"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["task_cleared"] is True
    assert [o["action"] for o in operations(panel, execution_id)] == ["restart"]
    # Cleared: no state, the run queued again; the store still names the execution its next try follows.
    states = task_states(dag_run)
    assert states["run"] in ("None", "none", "scheduled", "queued"), states
    assert stored_execution_id(dag_run) == execution_id
    assert len(audit_rows("aom_panel.restart", dag_run.run_id)) == 1


def audit_rows(event: str, run_id: str) -> list[tuple[str | None, dict[str, Any]]]:
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + 10
    while True:
        with create_session() as session:
            rows = session.execute(select(Log.owner, Log.extra).where(Log.event == event, Log.run_id == run_id)).all()
        if rows or time.monotonic() > deadline:
            return [(owner, json.loads(extra or "{}")) for owner, extra in rows]
        time.sleep(0.2)


def stored_execution_id(dag_run: Any) -> Any:
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(TaskStateStoreModel.value).where(
                TaskStateStoreModel.run_id == dag_run.run_id,
                TaskStateStoreModel.task_id == "run",
                TaskStateStoreModel.key == "aom_execution_id",
            )
        )
    with contextlib.suppress(TypeError, ValueError):
        return json.loads(value or "null")
    return value
