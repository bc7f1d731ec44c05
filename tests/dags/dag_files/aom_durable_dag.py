"""A durable sync wait with one retry: the crash test kills its task process mid-wait."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(dag_id="aom_durable_crash", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    AomExecuteWorkflowOperator(
        task_id="run",
        workflow_id="wf-crash",
        wait_for_completion=True,
        deferrable=False,
        durable=True,
        poll_interval=0.5,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
