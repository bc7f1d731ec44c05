"""Meant to be triggered from the UI: pick the workflow in the trigger form."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param

with DAG(
    dag_id="example_aom_trigger_form",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["aom", "example"],
    params={
        "workflow_id": Param(
            "wf-success",
            type="string",
            minLength=1,
            maxLength=64,
            title="Workflow id",
            description="Id of the AOM workflow to run (from the AOM workflow list).",
        ),
    },
) as dag:
    AomExecuteWorkflowOperator(
        task_id="run_workflow",
        workflow_id="{{ params.workflow_id }}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
    )
