"""The emulator's outage settings: storm faults, a skewed clock, and a state that survives a restart."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests

from airflow_provider_aom.auth import signer
from airflow_provider_aom.emulator import AomEmulator, EmulatorConfig, WorkflowSpec
from airflow_provider_aom.emulator.state import EmulatorState, epoch_ms
from tests.emulator.test_emulator import (
    STATIC,
    _read_first_line,
    aom,
    assert_gateway_401,
    execute,
    fast_workflows,
    signed_headers,
    start_cli,
    status_of,
)

SKEW = 600.0


def _list(emu: AomEmulator, http: requests.Session, workflow_id: str = "fast-success") -> requests.Response:
    return http.get(emu.base_url + aom(f"/workflow/{workflow_id}/executions"), headers={"X-Auth-Token": STATIC})


# -- storm ---------------------------------------------------------------------


def test_storm_answers_a_seeded_share_with_503_and_429_and_retry_after(
    emu: AomEmulator, http: requests.Session
) -> None:
    emu.state.add_fault("storm", path="/executions$", duration=30, share=0.5, seed=7, retry_after=3)
    statuses: Counter[int] = Counter()
    for _ in range(200):
        response = _list(emu, http)
        statuses[response.status_code] += 1
        if response.status_code != 200:
            assert response.headers["Retry-After"] == "3"
            body = response.json()
            assert body["error_code"].startswith("APIG.") and body["request_id"]
    assert set(statuses) == {200, 503, 429}
    # A share of one half: far from none and from all of them.
    assert 60 < statuses[200] < 140, statuses
    assert statuses[503] > 20 and statuses[429] > 20, statuses
    logged = Counter(record["fault"] for record in emu.state.requests())
    assert logged["storm"] == statuses[503] + statuses[429]
    # Still there (no count limits it), shown with its settings.
    (shown,) = emu.state.faults()
    assert shown["kind"] == "storm" and shown["remaining"] == -1 and shown["share"] == 0.5 and shown["seed"] == 7


def test_storm_is_reproducible_from_its_seed() -> None:
    def draws(seed: int) -> list[int]:
        state = EmulatorState(EmulatorConfig(workflows=fast_workflows()))
        state.add_fault("storm", duration=60, share=0.3, seed=seed)
        taken = [state.take_fault("GET", "/v1/x", has_token=False) for _ in range(100)]
        return [0 if fault is None else fault.status for fault in taken]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)


def test_storm_ends_after_its_duration(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("storm", path="/executions$", duration=0.5, status=503)
    assert _list(emu, http).status_code == 503
    time.sleep(0.6)
    assert _list(emu, http).status_code == 200
    assert emu.state.faults() == []


def test_storm_with_a_count_and_one_status(emu: AomEmulator, http: requests.Session) -> None:
    emu.state.add_fault("storm", path="/executions$", duration=30, status=429, count=2)
    assert [_list(emu, http).status_code for _ in range(3)] == [429, 429, 200]


def test_storm_through_the_admin_api(emu: AomEmulator, http: requests.Session) -> None:
    fault = {"kind": "storm", "path": "^/v1/", "duration": 30, "share": 1, "seed": 1, "retry_after": 1}
    assert http.post(emu.base_url + "/_emulator/faults", json=fault).status_code == 200
    response = _list(emu, http)
    assert response.status_code in (503, 429) and response.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    "settings",
    [
        {},  # no duration
        {"duration": 0},
        {"duration": float("inf")},
        {"duration": 5, "share": 0},
        {"duration": 5, "share": 1.5},
        {"duration": 5, "status": 500},
        {"duration": 5, "seed": "x"},
    ],
)
def test_storm_rejects_bad_settings(emu: AomEmulator, settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        emu.state.add_fault("storm", **settings)  # type: ignore[arg-type]
    assert emu.state.faults() == []


def test_storm_settings_belong_to_storms_only(emu: AomEmulator) -> None:
    with pytest.raises(ValueError, match="storm fault only"):
        emu.state.add_fault("status", duration=5)


# -- clock skew ----------------------------------------------------------------


@pytest.mark.parametrize("skew", [SKEW, -SKEW])
def test_skewed_clock_in_date_header_and_reported_times(http: requests.Session, skew: float) -> None:
    config = EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows(), clock_skew=skew)
    with AomEmulator(config) as emu:
        before = time.time()
        execution_id = execute(emu, http, "fast-success")
        response = _list(emu, http)
        date = parsedate_to_datetime(response.headers["Date"]).timestamp()
        assert abs(date - (time.time() + skew)) < 2
        begin = status_of(emu, http, "fast-success", execution_id)["begin_time"] / 1000
        assert abs(begin - (before + skew)) < 1
        # Durations are unchanged: the run still ends FAST seconds after its (skewed) begin.
        time.sleep(0.4)
        detail = status_of(emu, http, "fast-success", execution_id)
        assert detail["status"] == "success"
        assert abs((detail["end_time"] - detail["begin_time"]) / 1000 - 0.2) < 0.05


@pytest.mark.parametrize("skew", [SKEW, -SKEW])
def test_host_signature_within_the_gateway_tolerance_of_a_skewed_clock(http: requests.Session, skew: float) -> None:
    """The client signs with the host's clock; the gateway compares it with its own (15 min tolerance)."""
    config = EmulatorConfig(workflows=fast_workflows(), clock_skew=skew)
    with AomEmulator(config) as emu:
        path = aom("/workflow/fast-success/executions")
        response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path))
        assert response.status_code == 200, response.text
        # 10 min of skew plus 6 min of client error is past the 15 min tolerance of the gateway's clock.
        late = (datetime.now(timezone.utc) - timedelta(seconds=skew + (360 if skew > 0 else -360))).strftime(
            signer.DATE_FORMAT
        )
        response = http.post(emu.base_url + path, headers=signed_headers(emu, "POST", path, sdk_date=late))
        assert_gateway_401(response, f"signature expired, signature time:{late}, server time:")
        server_time = re.search(r"server time:(\d{8}T\d{6}Z)$", response.json()["error_msg"])
        assert server_time is not None
        shown = datetime.strptime(server_time.group(1), signer.DATE_FORMAT).replace(tzinfo=timezone.utc)
        assert abs(shown.timestamp() - (time.time() + skew)) < 2


def test_skewed_token_expiry(http: requests.Session) -> None:
    config = EmulatorConfig(workflows=fast_workflows(), clock_skew=-SKEW, token_ttl=3600)
    with AomEmulator(config) as emu:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": config.iam_user,
                            "password": config.iam_password,
                            "domain": {"name": config.iam_domain},
                        }
                    },
                },
                "scope": {"project": {"name": config.region}},
            }
        }
        response = http.post(emu.base_url + "/v3/auth/tokens?nocatalog=true", json=body)
        assert response.status_code == 201, response.text
        issued = datetime.fromisoformat(response.json()["token"]["issued_at"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(response.json()["token"]["expires_at"].replace("Z", "+00:00"))
        assert abs(issued.timestamp() - (time.time() - SKEW)) < 2
        assert expires - issued == timedelta(hours=1)


def test_clock_skew_through_the_admin_api(emu: AomEmulator, http: requests.Session) -> None:
    admin = emu.base_url + "/_emulator/config"
    assert "clock_skew" not in http.get(admin).json()
    response = http.post(admin, json={"clock_skew": -SKEW})
    assert response.status_code == 200 and response.json()["clock_skew"] == -SKEW
    date = parsedate_to_datetime(_list(emu, http).headers["Date"]).timestamp()
    assert abs(date - (time.time() - SKEW)) < 2
    for bad in ("5", True, float("nan")):
        assert http.post(admin, data=json.dumps({"clock_skew": bad}), timeout=5).status_code == 400
    assert http.get(admin).json()["clock_skew"] == -SKEW
    # A reset puts the host's clock back.
    http.post(emu.base_url + "/_emulator/reset")
    assert "clock_skew" not in http.get(admin).json()


def test_cli_clock_skew(http: requests.Session) -> None:
    process = start_cli("--clock-skew", "-600", "--static-token", STATIC, "--quiet")
    try:
        url = _read_first_line(process).rstrip("\n")
        response = http.get(url + aom("/workflow/wf-success/executions"), headers={"X-Auth-Token": STATIC})
        assert response.status_code == 200
        assert abs(parsedate_to_datetime(response.headers["Date"]).timestamp() - (time.time() - SKEW)) < 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)


# -- state file ----------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, http: requests.Session) -> None:
    state_file = tmp_path / "state.json"
    extra = WorkflowSpec(id="added-later", name="added-later", outcome="pause", duration=0.1)
    config = EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows(), state_file=str(state_file))
    with AomEmulator(config) as emu:
        port = emu.port
        done = execute(emu, http, "fast-success")
        cancelled = execute(emu, http, "wf-long")
        assert http.post(emu.base_url + aom(f"/workflow/wf-long/executions/{cancelled}/terminate"),
                         headers={"X-Auth-Token": STATIC}).status_code == 200  # fmt: skip
        emu.state.add_workflow(extra)
        paused = execute(emu, http, "added-later")
        time.sleep(0.3)
        emu.state.operate("added-later", paused, "continue", "pause_1")
        before = {e["execution_id"]: e for e in emu.state.executions(with_operations=True)}
        started_at = emu.state.started_at
    assert state_file.stat().st_mode & 0o777 == 0o600
    # The same file and port: a restarted AOM.
    config = EmulatorConfig(static_tokens=[STATIC], workflows=fast_workflows(), state_file=str(state_file), port=port)
    with AomEmulator(config) as emu:
        assert emu.state.started_at == started_at
        after = {e["execution_id"]: e for e in emu.state.executions(with_operations=True)}
        assert after.keys() == before.keys()
        for execution_id, brief in before.items():
            assert after[execution_id]["begin_time"] == brief["begin_time"]
            assert after[execution_id]["operations"] == brief["operations"]
        assert status_of(emu, http, "fast-success", done)["status"] == "success"
        assert status_of(emu, http, "wf-long", cancelled)["status"] == "cancel"
        time.sleep(0.2)
        assert status_of(emu, http, "added-later", paused)["status"] == "success"
        assert [row["execution_id"] for row in _list(emu, http, "added-later").json()] == [paused]
        listed = http.post(emu.base_url + aom("/workflow-list"), json={"search": "added-later"},
                           headers={"X-Auth-Token": STATIC}).json()  # fmt: skip
        assert listed["elements"][0]["last_execution_id"] == paused


def test_issued_tokens_survive_a_restart(tmp_path: Path, http: requests.Session) -> None:
    state_file = str(tmp_path / "state.json")
    with AomEmulator(EmulatorConfig(workflows=fast_workflows(), state_file=state_file)) as emu:
        token, _ = emu.state.issue_token()
    with AomEmulator(EmulatorConfig(workflows=fast_workflows(), state_file=state_file)) as emu:
        assert emu.state.token_status(token) == ("valid", None)


def test_unreadable_state_file_is_refused(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text('{"version": 99}')
    with pytest.raises(ValueError, match="cannot load the emulator state"):
        EmulatorState(EmulatorConfig(state_file=str(state_file)))


def test_cli_state_file_across_sigterm_and_sigkill(tmp_path: Path, http: requests.Session) -> None:
    state_file = tmp_path / "state.json"
    options = ("--state-file", str(state_file), "--static-token", STATIC, "--pattern-workflows", "--quiet")
    process = start_cli(*options)
    try:
        url = _read_first_line(process).rstrip("\n")
        port = url.rsplit(":", 1)[1]
        response = http.post(url + aom("/workflow/wf-slow-a/executions"), headers={"X-Auth-Token": STATIC})
        first = response.json()["execution_id"]
        # Killed without a chance to save: every change was on disk before its answer.
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        process = start_cli(*options[:-1], "--port", port)
        url = _read_first_line(process).rstrip("\n")
        assert url.endswith(f":{port}")
        rows = http.get(url + aom("/workflow/wf-slow-a/executions"), headers={"X-Auth-Token": STATIC}).json()
        assert [row["execution_id"] for row in rows] == [first]
        assert rows[0]["status"] == "executing"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert json.loads(state_file.read_text())["executions"][0]["execution_id"] == first
        assert epoch_ms(json.loads(state_file.read_text())["executions"][0]["created_at"]) == rows[0]["begin_time"]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
