"""Start an AOM workflow, then follow it with a sensor in reschedule mode, and stop a second one."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_aom.operators.aom import (
    AomExecuteWorkflowOperator,
    AomTerminateWorkflowExecutionOperator,
)
from airflow_provider_aom.sensors.aom import AomWorkflowExecutionSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(
    dag_id="example_aom_run_then_sensor",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["aom", "example"],
) as dag:
    start = AomExecuteWorkflowOperator(task_id="start", workflow_id="wf-success")
    wait = AomWorkflowExecutionSensor(
        task_id="wait",
        workflow_id="wf-success",
        execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
        poke_interval=1,
        timeout=600,
        mode="reschedule",
    )
    start_long = AomExecuteWorkflowOperator(task_id="start_long", workflow_id="wf-long")
    stop_long = AomTerminateWorkflowExecutionOperator(
        task_id="stop_long",
        workflow_id="wf-long",
        execution_id="{{ ti.xcom_pull(task_ids='start_long', key='execution_id') }}",
    )
    start >> wait
    start_long >> stop_long
