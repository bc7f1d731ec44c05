"""Airflow sees the provider: package, hook and connection type, form fields, links, triggers, sensors."""

from __future__ import annotations

import os
import subprocess
import sys

from airflow_provider_aom.connection_form import FIELDS


def test_providers_manager_registers_everything() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-aom" in manager.providers
    hook = manager.hooks["huaweicloud_aom"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_aom.hooks.aom.AomHook"
    # The UI's "Test Connection" button shows only for a hook class with test_connection.
    from airflow_provider_aom.hooks.aom import AomHook

    assert callable(getattr(AomHook, "test_connection", None))
    assert hook.connection_id_attribute_name == "aom_conn_id"
    assert hook.hook_name == "Huawei Cloud AOM"
    assert "airflow_provider_aom.links.aom.AomWorkflowExecutionLink" in manager.extra_links_class_names
    assert any(t.package_name == "airflow-provider-aom" for t in manager.trigger)
    widgets = {k for k in manager.connection_form_widgets if k.startswith("extra__huaweicloud_aom__")}
    assert widgets == {f"extra__huaweicloud_aom__{f.name}" for f in FIELDS}
    behaviour = manager.field_behaviours["huaweicloud_aom"]
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert "login" in behaviour["relabeling"] and "password" in behaviour["placeholders"]


def test_cli_lists_the_provider() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "airflow-provider-aom" in out
