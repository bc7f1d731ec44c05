"""The AOM execution panel in Airflow's own UI, driven in Chromium (Airflow >= 3.3).

The api-server and the DAG runs of tests/plugin/test_panel_api.py (its ``panel`` fixture); the browser carries
the UI's session cookie (``_token``) of the admin, then of the viewer. Screenshots go to a temporary folder;
``AOM_REFRESH_SCREENSHOTS=1`` writes them to ``docs/screenshots/`` (the README's pictures).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.dags.dagrun import AIRFLOW_3

if not AIRFLOW_3:
    pytest.skip("the panel is an Airflow >= 3.1 feature", allow_module_level=True)
pytest.importorskip("playwright", reason="playwright is not installed")
CHROMIUM = Path("/usr/bin/chromium")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing: run `make browser-deps`", allow_module_level=True)

from playwright.sync_api import Browser, FrameLocator, Page, expect  # noqa: E402

from tests.plugin.test_panel_api import Panel, wait_status, xcom_execution_id  # noqa: E402
from tests.plugin.test_panel_api import panel as panel  # noqa: E402 - the api-server fixture

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("AOM_REFRESH_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def page_as(browser: Browser, cluster: Panel, user: str) -> Page:
    """A fresh browser context logged in as ``user``: the UI's own session cookie, from ``POST /auth/token``."""
    context = browser.new_context(base_url=cluster.base_url, viewport={"width": 1500, "height": 900})
    context.set_default_timeout(30_000)
    context.add_cookies([{"name": "_token", "value": cluster.token(user), "url": cluster.base_url}])
    return context.new_page()


def open_panel(page: Page, dag_id: str, run_id: str) -> FrameLocator:
    page.goto(f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/run")
    page.get_by_role("link", name="AOM Execution").or_(page.get_by_role("tab", name="AOM Execution")).first.click()
    frame = page.frame_locator('iframe[title="AOM Execution"]')
    expect(frame.get_by_role("heading", name="AOM workflow execution")).to_be_visible()
    return frame


def test_restart_from_the_task_instance_page(
    panel: Panel,
    browser: Browser,
    screenshots: Path,
) -> None:
    dag_run = panel.run("aom_panel_flaky")
    execution_id = xcom_execution_id(dag_run)
    wait_status(panel, execution_id, "pausing")
    page = page_as(browser, panel, "admin")
    try:
        frame = open_panel(page, dag_run.dag_id, dag_run.run_id)
        expect(frame.locator("tr[data-node='node_1']")).to_contain_text("success")
        expect(frame.locator("tr[data-node='node_2']")).to_contain_text("fail")
        expect(frame.locator("tr[data-node='node_2']")).to_contain_text("script exited with code 1")
        expect(frame.get_by_text(execution_id, exact=False).first).to_be_visible()
        expect(frame.get_by_role("button", name="Skip node_2")).to_be_visible()
        page.screenshot(path=str(screenshots / "panel-paused.png"), animations="disabled")

        frame.get_by_role("button", name="Restart node_2").click()
        expect(frame.get_by_role("alertdialog")).to_contain_text(f"Restart node node_2 of execution {execution_id}?")
        assert panel.emulator.state.operations(execution_id) == [], "sent before the confirmation"
        page.screenshot(path=str(screenshots / "panel-confirm.png"), animations="disabled")
        frame.get_by_role("button", name="Confirm").click()
        expect(frame.get_by_text("Restart node_2: sent to AOM.")).to_be_visible()
        # It refreshes itself while the execution runs: the restarted node, then the end.
        expect(frame.locator(".header .badge")).to_have_text("success", timeout=30_000)
        expect(frame.locator("tr[data-node='node_2']")).to_contain_text("success")
        expect(frame.get_by_role("button")).to_have_count(0)
        assert [o["action"] for o in panel.emulator.state.operations(execution_id)] == ["restart"]
        page.screenshot(path=str(screenshots / "panel-succeeded.png"), animations="disabled")
    finally:
        page.context.close()


def test_the_viewer_sees_the_execution_and_no_buttons(
    panel: Panel,
    browser: Browser,
) -> None:
    dag_run = panel.run("aom_panel_flaky")
    execution_id = xcom_execution_id(dag_run)
    wait_status(panel, execution_id, "pausing")
    page = page_as(browser, panel, "viewer")
    try:
        frame = open_panel(page, dag_run.dag_id, dag_run.run_id)
        expect(frame.locator("tr[data-node='node_2']")).to_contain_text("fail")
        expect(frame.get_by_text(re.compile("You may read this execution"))).to_be_visible()
        expect(frame.get_by_role("button")).to_have_count(0)
    finally:
        page.context.close()
    assert panel.emulator.state.operations(execution_id) == []


def test_a_task_that_is_not_aom_says_so(panel: Panel, browser: Browser) -> None:
    dag_run = panel.run("aom_panel_mixed")
    page = page_as(browser, panel, "admin")
    try:
        page.goto(f"/dags/{dag_run.dag_id}/runs/{quote(dag_run.run_id, safe='')}/tasks/not_aom")
        page.get_by_role("link", name="AOM Execution").or_(page.get_by_role("tab", name="AOM Execution")).first.click()
        frame = page.frame_locator('iframe[title="AOM Execution"]')
        expect(frame.get_by_text("This task is not an AOM task")).to_be_visible()
    finally:
        page.context.close()
