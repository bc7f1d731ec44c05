"""Dynamic task mapping: one execution per workflow id, all waited for on the triggerer."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(
    dag_id="example_aom_mapped",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["aom", "example"],
) as dag:
    AomExecuteWorkflowOperator.partial(
        task_id="run_workflows",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
    ).expand(workflow_id=["wf-success", "wf-success"])
