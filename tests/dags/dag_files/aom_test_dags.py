"""DAGs the DAG-level tests run (Airflow 3 runs only DAGs its bundle has parsed, so they live in a file)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator
from airflow_provider_aom.sensors.aom import AomWorkflowExecutionSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

START = datetime(2026, 1, 1)


def _one_task(dag_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False) as dag:
        AomExecuteWorkflowOperator(task_id="run", **{"poll_interval": 0.2, "retries": 0, **kwargs})
    return dag


for mode in ("sync", "deferrable"):
    deferrable = mode == "deferrable"
    globals()[f"success_{mode}"] = _one_task(
        f"aom_wait_success_{mode}", workflow_id="wf-quick", wait_for_completion=True, deferrable=deferrable
    )
    globals()[f"failure_{mode}"] = _one_task(
        f"aom_wait_failure_{mode}", workflow_id="wf-quick-fail", wait_for_completion=True, deferrable=deferrable
    )
    globals()[f"deadline_{mode}"] = _one_task(
        f"aom_wait_deadline_{mode}", workflow_id="wf-long", wait_for_completion=True, deferrable=deferrable, timeout=1.5
    )
    # The workflow comes from the run's conf: one DAG for every hostile-answer case.
    globals()[f"conf_{mode}"] = _one_task(
        f"aom_wait_conf_{mode}",
        workflow_id="{{ dag_run.conf['workflow_id'] }}",
        wait_for_completion=True,
        deferrable=deferrable,
        timeout=20,
    )
    with DAG(dag_id=f"aom_sensor_failure_{mode}", start_date=START, schedule=None, catchup=False) as sensor_dag:
        start = AomExecuteWorkflowOperator(task_id="start", workflow_id="wf-quick-fail")
        start >> AomWorkflowExecutionSensor(
            task_id="wait",
            workflow_id="wf-quick-fail",
            execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
            poke_interval=0.2,
            timeout=60,
            deferrable=deferrable,
            retries=0,
        )
    globals()[f"sensor_failure_{mode}"] = sensor_dag

rate = _one_task("aom_wait_rate", workflow_id="wf-2s", wait_for_completion=True, deferrable=True, poll_interval=0.5)

with DAG(dag_id="aom_fail_once", start_date=START, schedule=None, catchup=False) as fail_once:
    AomExecuteWorkflowOperator(
        task_id="run",
        workflow_id="{{ dag_run.conf['workflow_id'] }}",
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

# Recovery at the failed node (tests/dags/test_recovery.py).
for mode in ("sync", "deferrable"):
    deferrable = mode == "deferrable"
    for policy in ("fail", "restart", "skip"):
        globals()[f"node_failure_{policy}_{mode}"] = _one_task(
            f"aom_node_failure_{policy}_{mode}",
            workflow_id="wf-quick-pause-fail",
            wait_for_completion=True,
            deferrable=deferrable,
            timeout=30,
            on_node_failure=policy,
        )
    globals()[f"retry_from_failure_{mode}"] = _one_task(
        f"aom_retry_from_failure_{mode}",
        workflow_id="wf-quick-fail",
        wait_for_completion=True,
        deferrable=deferrable,
        timeout=60,
        retry_from_failure=True,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )

reuse = _one_task("aom_reuse_existing_run", workflow_id="wf-long", reuse_existing_run=True)
by_name = _one_task("aom_by_name", workflow_name="{{ dag_run.conf['workflow_name'] }}", wait_for_completion=True)
