"""Provider metadata read by Airflow's ``ProvidersManager`` (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_aom import CONN_TYPE, __version__
from airflow_provider_aom.connection_form import conn_fields, ui_field_behaviour

INTEGRATION = "Huawei Cloud AOM"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-aom",
        "name": "Huawei Cloud AOM",
        "description": "Run and watch Huawei Cloud AOM (Application Operations Management) automation workflows.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/api-aom/ExecuteWorkflow.html",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_aom.hooks.aom"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_aom.operators.aom"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_aom.sensors.aom"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_aom.triggers.aom"]}],
        "extra-links": ["airflow_provider_aom.links.aom.AomWorkflowExecutionLink"],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_aom.hooks.aom.AomHook",
                "hook-name": "Huawei Cloud AOM",
                "conn-fields": conn_fields(),
                "ui-field-behaviour": ui_field_behaviour(),
            }
        ],
    }
