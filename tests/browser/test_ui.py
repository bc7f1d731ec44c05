"""The provider in Airflow's own UI, driven in a real browser (Airflow ≥ 3.3).

Starts the AOM emulator in-process and, in a private AIRFLOW_HOME, an api-server (127.0.0.1 only), a
dag-processor, a scheduler (LocalExecutor) and a triggerer, the latter two with ``--skip-serve-logs`` so
nothing listens but the api-server and the emulator, both on loopback. Debian's chromium, driven by
Playwright, then:

1. Admin → Connections → Add → "Huawei Cloud AOM": the custom fields and the relabelled standard fields
   show; ``aom_default`` is filled in against the emulator and saved.
2. "Test Connection" on that connection answers "Connected to AOM ..." (the hook's ``test_connection``
   runs in the api-server and reaches the emulator); screenshot ``connection-form.png``.
3. ``example_aom_run_and_wait`` is triggered from the UI and runs (deferrable, on the triggerer) with the
   connection saved in step 1; its task instance shows the "AOM Workflow Execution" link to the execution
   the emulator issued; screenshot ``task-link.png``.

Screenshots go to a temporary folder; ``AOM_REFRESH_SCREENSHOTS=1`` writes them to ``docs/screenshots/``
instead, to refresh the README's pictures. Needs ``/usr/bin/chromium`` (``make browser-deps``) and
``playwright`` (pip; never ``playwright install``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

try:
    _AIRFLOW_RELEASE = tuple(int(part) for part in re.findall(r"\d+", dist_version("apache-airflow"))[:3])
except PackageNotFoundError:
    pytest.skip("apache-airflow is not installed", allow_module_level=True)
if _AIRFLOW_RELEASE[:2] < (3, 3):
    pytest.skip(
        f"the browser test drives the React UI of Airflow >= 3.3 (this is Airflow "
        f"{'.'.join(map(str, _AIRFLOW_RELEASE))}); the Airflow 2 UI is not covered",
        allow_module_level=True,
    )
pytest.importorskip("playwright", reason="playwright is not installed (it comes with `make venv` on Airflow 3)")

import requests
from playwright.sync_api import BrowserContext, Locator, Page, Route, expect

from airflow_provider_aom.emulator import (
    DEFAULT_AK,
    DEFAULT_PROJECT_ID,
    DEFAULT_SK,
    AomEmulator,
    EmulatorConfig,
    WorkflowSpec,
)
from tests.airflow_cluster import airflow_env, free_port, start_components, stop_process_groups
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Where the README's pictures live; a test run writes there only when asked to refresh them.
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"
EXAMPLE_DAG = ROOT / "example_dags" / "example_aom_run_and_wait.py"
DAG_ID = "example_aom_run_and_wait"
TASK_ID = "run_workflow"
CONN_ID = "aom_default"
REGION = "cn-north-4"
# The example DAG runs wf-success (2 s by default). Longer here: (a) the link can be checked while the task
# is deferred; (b) Airflow 3.3.2 can fail a deferred task whose trigger fires before the scheduler has
# drained the executor's "success" event of the deferring attempt (apache/airflow#72716, #71580; open).
WORKFLOW_SECONDS = 10.0

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_MISSING = (
    None
    if os.access(CHROMIUM, os.X_OK)
    else f"{CHROMIUM} is missing: run `make browser-deps` (installs Debian's chromium with apt)"
)
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
if CHROMIUM_MISSING and not IN_CI:
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)

# Airflow <= 3.3.2: "Test Connection" in the connection list posts ``port: Number(connection.port)``, i.e. 0
# for a connection without a port (ours hides the port field), and the api-server's stored-credentials guard
# reads 0 != NULL as "testing another destination" and answers 400. Fixed upstream by apache/airflow#73298,
# which 3.3.2 does not have.
TEST_BUTTON_SENDS_PORT_0 = _AIRFLOW_RELEASE <= (3, 3, 2)
PORT_0_REASON = (
    "Airflow <= 3.3.2 bug, not the provider's: the UI's Test Connection sends port 0 for a connection without "
    "a port and the api-server answers 400 'The host or port to test differs from the stored connection' "
    "(apache/airflow#73298, fixed upstream after 3.3.2)"
)

# What the form must show (connection_form.py): the extra fields by label, with the extra key each edits...
EXTRA_FIELDS = {
    "Auth type": "auth_type",
    "Region": "region",
    "Project ID": "project_id",
    "Account name": "domain_name",
    "IAM endpoint": "iam_endpoint",
    "Security token": "security_token",
    "IAM user name": "user_name",
    "Verify TLS": "verify",
    "Timeout (s)": "timeout",
}
# ... and the relabelled standard fields (Port and Schema are hidden).
HOST_LABEL = "AOM endpoint (optional)"
LOGIN_LABEL = "Access Key ID / IAM user"
PASSWORD_LABEL = "Secret Access Key / IAM password / IAM token"


@dataclass
class Cluster:
    base_url: str
    emulator: AomEmulator
    home: Path
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The public REST API (login is off: SIMPLE_AUTH_MANAGER_ALL_ADMINS)."""
        return self.http.request(method, self.base_url + path, timeout=30, **kwargs)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with code {proc.returncode}")

    def polling(self) -> dict[str, Any]:
        """``wait_for`` options: poll every 0.5 s; a refused connection means "not yet"; a dead component fails."""
        return {"interval": 0.5, "ignore": (requests.ConnectionError,), "check": self.check_alive}

    def tails(self, chars: int = 4000) -> str:
        """The end of each component's log, then of each task log."""
        parts = []
        for log in [*sorted(self.logs.glob("*.log")), *sorted((self.home / "logs").glob("dag_id=*/**/*.log"))]:
            name = log.relative_to(self.logs if log.is_relative_to(self.logs) else self.home)
            parts.append(f"----- tail of {name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def diagnostics(cluster: Cluster, page: Page | None = None, name: str = "failure") -> Iterator[None]:
    """On failure: a screenshot of the page and the tail of every component's log (shown in the report)."""
    try:
        yield
    except BaseException:
        if page is not None and not page.is_closed():
            shot = cluster.logs / f"{name}.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shot))
                sys.stdout.write(f"screenshot of the page at failure: {shot} ({page.url})\n")
        sys.stdout.write(cluster.tails() + "\n")
        raise


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if CHROMIUM_MISSING:
        pytest.fail(CHROMIUM_MISSING, pytrace=False)
    tmp = tmp_path_factory.mktemp("browser")
    home = tmp / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(EXAMPLE_DAG, dags / EXAMPLE_DAG.name)
    logs = tmp / "logs"
    logs.mkdir()
    port = free_port()
    emulator = AomEmulator(
        EmulatorConfig(
            workflows=[WorkflowSpec(id="wf-success", name="wf-success", outcome="success", duration=WORKFLOW_SECONDS)]
        )
    ).start()
    cluster = Cluster(base_url=f"http://127.0.0.1:{port}", emulator=emulator, home=home, logs=logs)
    cluster.http.trust_env = False  # loopback only: never through a proxy from the environment
    # Nothing of the caller's Airflow configuration or connections leaks in (tests/conftest.py sets some).
    env = airflow_env(
        home,
        dags,
        port,
        "browser-test-secret",
        isolated=True,
        extra={
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        },
    )
    try:
        with diagnostics(cluster):
            start_components(env, logs, ["api-server", "dag-processor", "scheduler", "triggerer"], cluster.procs)
            wait_for(
                lambda: cluster.api("GET", "/api/v2/monitor/health").ok,
                120,
                "the api-server",
                **cluster.polling(),
            )
        yield cluster
    finally:
        stop_process_groups(cluster.procs.values())
        emulator.stop()
        cluster.http.close()


@pytest.fixture(scope="module")
def browser(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            base_url=cluster.base_url,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    yield page
    page.close()


def extra_field(dialog: Locator, label: str) -> Locator:
    """The form group of one field, found by its visible label.

    (Airflow's form gives extra fields a ``<label for>`` that does not match the input's id, so
    ``get_by_label`` cannot find them; the group holds both.)
    """
    return dialog.get_by_role("group").filter(has=dialog.page.locator("label").get_by_text(label, exact=True))


def connection_row(page: Page) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=CONN_ID, exact=True))


def require_connection(cluster: Cluster) -> None:
    if not cluster.api("GET", f"/api/v2/connections/{CONN_ID}").ok:
        pytest.fail(f"connection {CONN_ID!r} was not saved (see test_add_connection_form)", pytrace=False)


def press_test_connection(page: Page) -> str:
    """Press "Test Connection" on the ``aom_default`` row; the text of the toast that answers."""
    page.goto("/connections")
    connection_row(page).get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text=re.compile(r"Test Connection (Successful|Failed)")).first
    expect(toast).to_be_visible()
    return toast.inner_text()


def send_no_port(route: Route) -> None:
    """Stand-in for apache/airflow#73298 on Airflow <= 3.3.2: post ``port: null``, not ``0``, when unset."""
    body = route.request.post_data_json
    if isinstance(body, dict) and body.get("port") == 0:
        body["port"] = None
    route.continue_(post_data=json.dumps(body))


def test_chromium_is_installed() -> None:
    assert CHROMIUM_MISSING is None, CHROMIUM_MISSING


def test_add_connection_form(cluster: Cluster, page: Page) -> None:
    emulator_url = cluster.emulator.base_url
    with diagnostics(cluster, page, "add-connection"):
        page.goto("/")
        page.get_by_role("button", name="Admin").click()
        page.get_by_role("menuitem", name="Connections").click()
        expect(page).to_have_url(re.compile(r"/connections$"))
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Connection ID").fill(CONN_ID)
        dialog.get_by_role("combobox", name="Connection Type").fill("Huawei")
        page.get_by_role("option", name="Huawei Cloud AOM", exact=True).click()

        # Standard fields: Host/Login/Password relabelled, Port and Schema hidden.
        for label in (HOST_LABEL, LOGIN_LABEL, PASSWORD_LABEL):
            expect(dialog.get_by_label(label, exact=True)).to_be_visible()
        for label in ("Host", "Login", "Password", "Port", "Schema"):
            expect(dialog.locator("label").get_by_text(label, exact=True)).to_have_count(0)
        dialog.get_by_label(HOST_LABEL, exact=True).fill(emulator_url)
        dialog.get_by_label(LOGIN_LABEL, exact=True).fill(DEFAULT_AK)
        dialog.get_by_label(PASSWORD_LABEL, exact=True).fill(DEFAULT_SK)
        expect(dialog.get_by_label(PASSWORD_LABEL, exact=True)).to_have_attribute("type", "password")

        # Extra fields: each label is shown, on the group of the input that edits its extra key.
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for label, key in EXTRA_FIELDS.items():
            group = extra_field(dialog, label)
            expect(group, f"extra field {label!r}").to_have_count(1)
            expect(group.locator(f'[name="element_{key}"]'), f"input of {label!r}").to_have_count(1)
        expect(extra_field(dialog, "Security token").locator("input")).to_have_attribute("type", "password")
        expect(extra_field(dialog, "Verify TLS").locator("input")).to_have_value("true")
        expect(extra_field(dialog, "Timeout (s)").locator("input")).to_have_value("30")

        auth_type = extra_field(dialog, "Auth type")
        auth_type.get_by_role("combobox").click()
        page.get_by_role("option", name="aksk", exact=True).click()
        expect(auth_type).to_contain_text("aksk")
        extra_field(dialog, "Region").locator("input").fill(REGION)
        extra_field(dialog, "Project ID").locator("input").fill(DEFAULT_PROJECT_ID)
        extra_field(dialog, "IAM endpoint").locator("input").fill(emulator_url)

        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        expect(connection_row(page)).to_contain_text("huaweicloud_aom")

    stored = cluster.api("GET", f"/api/v2/connections/{CONN_ID}").json()
    assert (stored["conn_type"], stored["host"], stored["login"]) == ("huaweicloud_aom", emulator_url, DEFAULT_AK)
    extra = json.loads(stored["extra"])
    assert extra["auth_type"] == "aksk"
    assert extra["region"] == REGION
    assert extra["project_id"] == DEFAULT_PROJECT_ID
    assert extra["iam_endpoint"] == emulator_url


@pytest.mark.xfail(TEST_BUTTON_SENDS_PORT_0, reason=PORT_0_REASON, raises=AssertionError, strict=True)
def test_test_connection_button_as_shipped(cluster: Cluster, page: Page) -> None:
    """The Test button exactly as this Airflow ships it (no request rewriting)."""
    require_connection(cluster)
    toast = press_test_connection(page)
    assert "Test Connection Successful" in toast and "Connected to AOM" in toast, toast


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots when AOM_REFRESH_SCREENSHOTS=1, else a temporary folder (the committed pictures stay)."""
    if os.environ.get("AOM_REFRESH_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOC_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def test_test_connection_reaches_the_emulator(cluster: Cluster, page: Page, screenshots: Path) -> None:
    require_connection(cluster)
    with diagnostics(cluster, page, "test-connection"):
        if TEST_BUTTON_SENDS_PORT_0:
            page.route("**/api/v2/connections/test", send_no_port)
        workflow_list = f"/v1/{DEFAULT_PROJECT_ID}/cms/workflow-list"
        listed_before = sum(1 for r in cluster.emulator.state.requests() if r["path"] == workflow_list)
        page.set_viewport_size({"width": 1800, "height": 1560})  # the dialog and the toast side by side
        toast = press_test_connection(page)
        assert toast.startswith("Test Connection Successful"), toast
        message = toast.split("\n", 1)[-1].strip()
        assert message.startswith("Connected to AOM"), toast
        assert cluster.emulator.base_url in message and DEFAULT_PROJECT_ID in message, message
        listed = [r for r in cluster.emulator.state.requests() if r["path"] == workflow_list]
        assert len(listed) > listed_before, "the test did not reach the emulator"
        assert listed[-1]["status"] == 200, listed[-1]

        # The filled form, with the answer still on screen. The toast times out after a few seconds: on a
        # loaded machine opening the form can take longer, and then the test is pressed again.
        answer = page.get_by_role("status").filter(has_text="Connected to AOM").first
        for _attempt in range(3):
            connection_row(page).get_by_role("button", name="Edit Connection").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_role("button", name="Extra Fields", exact=True).click()
            expect(extra_field(dialog, "Project ID").locator("input")).to_have_value(DEFAULT_PROJECT_ID)
            expect(extra_field(dialog, "Timeout (s)").locator("input")).to_be_in_viewport()
            expect(dialog.get_by_label(HOST_LABEL, exact=True)).to_be_hidden()  # the other section has folded
            if answer.is_visible():
                break
            page.keyboard.press("Escape")
            assert press_test_connection(page).startswith("Test Connection Successful")
        expect(answer).to_be_visible()
        page.screenshot(path=str(screenshots / "connection-form.png"), animations="disabled")
        assert (screenshots / "connection-form.png").stat().st_size > 0


def test_example_dag_shows_the_execution_link(cluster: Cluster, page: Page, screenshots: Path) -> None:
    require_connection(cluster)
    with diagnostics(cluster, page, "task-link"):
        wait_for(
            lambda: cluster.api("GET", f"/api/v2/dags/{DAG_ID}").ok,
            120,
            f"the dag-processor to parse {DAG_ID}",
            **cluster.polling(),
        )
        page.goto(f"/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger Dag").click()
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith(f"/api/v2/dags/{DAG_ID}/dagRuns")
        ) as posted:
            page.get_by_role("dialog").get_by_role("button", name="Trigger", exact=True).click()
        assert posted.value.ok, posted.value.text()
        run_id = posted.value.json()["dag_run_id"]
        ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}"

        def ti_state(*states: str) -> str | None:
            response = cluster.api("GET", ti_path)
            state = response.json().get("state") if response.ok else None
            return state if state in states else None

        finished = ("success", "failed", "upstream_failed", "skipped", "removed")
        ti_page = f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{TASK_ID}"

        # While the trigger waits: the link is there already (pushed right after the submit).
        state = wait_for(lambda: ti_state("deferred", *finished), 120, f"{TASK_ID} to defer", **cluster.polling())
        assert state == "deferred", f"the task did not defer (deferrable=True) but ended {state}"
        executions = cluster.emulator.state.executions()
        assert len(executions) == 1, executions
        execution_id = executions[0]["execution_id"]
        page.goto(ti_page)
        page.get_by_role("link", name="Details", exact=True).click()
        link = page.get_by_role("link", name="AOM Workflow Execution", exact=True)
        expect(link).to_be_visible()
        assert execution_id in (link.get_attribute("href") or "")
        assert ti_state("deferred") == "deferred", "finished before the link was checked; lengthen WORKFLOW_SECONDS"

        # After the run: the task succeeded and the link still points at the same execution.
        state = wait_for(lambda: ti_state(*finished), 150, f"{TASK_ID} to finish", **cluster.polling())
        assert state == "success", f"{TASK_ID} ended {state} (see the logs below)"
        assert [e["execution_id"] for e in cluster.emulator.state.executions()] == [execution_id]
        page.goto(ti_page)
        page.get_by_role("link", name="Details", exact=True).click()
        expect(page.get_by_text("success", exact=True).first).to_be_visible()
        link = page.get_by_role("link", name="AOM Workflow Execution", exact=True)
        expect(link).to_be_visible()
        href = link.get_attribute("href") or ""
        assert execution_id in href, href
        assert href.startswith("https://console.huaweicloud.com/") and "workflow_id=wf-success" in href, href
        page.screenshot(path=str(screenshots / "task-link.png"), animations="disabled")
        assert (screenshots / "task-link.png").stat().st_size > 0


def test_everything_listens_on_loopback_only(cluster: Cluster, browser: BrowserContext) -> None:
    """The api-server, emulator, scheduler, triggerer, their workers and chromium: loopback sockets only."""
    import psutil

    me = psutil.Process()
    listening: dict[int, str] = {}
    exposed = []
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in proc.net_connections(kind="inet"):
                if conn.status != psutil.CONN_LISTEN:
                    continue
                listening[conn.laddr.port] = conn.laddr.ip
                if conn.laddr.ip not in ("127.0.0.1", "::1"):
                    exposed.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}: {conn.laddr.ip}:{conn.laddr.port}")
    assert not exposed, exposed
    api_port = int(cluster.base_url.rsplit(":", 1)[1])
    emulator_port = int(cluster.emulator.base_url.rsplit(":", 1)[1])
    assert listening.get(api_port) == "127.0.0.1" and listening.get(emulator_port) == "127.0.0.1", listening
