"""Start an AOM workflow and wait for it on the triggerer (deferrable): the ``make demo`` DAG.

Needs a ``huaweicloud_aom`` connection ``aom_default`` (see README). Against the
local emulator, ``wf-success`` ends after a few seconds.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(
    dag_id="example_aom_run_and_wait",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["aom", "example"],
) as dag:
    AomExecuteWorkflowOperator(
        task_id="run_workflow",
        workflow_id=os.environ.get("AOM_EXAMPLE_WORKFLOW_ID", "wf-success"),
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=3600,
    )
