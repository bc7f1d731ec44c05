"""Recover at the failed node instead of from scratch, pass a pause node, take over a workflow's schedule.

* ``take_over_schedule`` disables the AOM workflow's own cron trigger: Airflow schedules it now.
* ``patch_fleet`` finds the workflow by name and waits for it; when a node fails and the execution
  pauses there, the node is restarted (``on_node_failure="restart"``) instead of failing the task,
  and if the task still fails, its Airflow retry restarts the failed node of the same execution
  (``retry_from_failure``) instead of running every node on every host again.
* ``read_outputs`` reads the nodes' outputs of that execution.
* ``start_gated`` starts a workflow that stops at a manual pause node; ``wait_for_gate`` waits until it
  is there (a sensor whose success status is ``pausing``) and ``pass_the_gate`` continues past it
  (``node_id=None``: the node the execution waits at) and waits for the end.

Against the local emulator the names and ids below exist (``flaky-patching`` = ``wf-flaky``,
``gated-cleanup`` = ``wf-gated``, ``nightly-patching`` = ``wf-nightly``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_aom.operators.aom import (
    AomExecuteWorkflowOperator,
    AomGetWorkflowExecutionOperator,
    AomSetWorkflowTriggerOperator,
    AomWorkflowNodeActionOperator,
)
from airflow_provider_aom.sensors.aom import AomWorkflowExecutionSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(
    dag_id="example_aom_recover",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["aom", "example"],
) as dag:
    take_over = AomSetWorkflowTriggerOperator(
        task_id="take_over_schedule", workflow_name="nightly-patching", enable=False
    )
    patch = AomExecuteWorkflowOperator(
        task_id="patch_fleet",
        workflow_name="flaky-patching",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=3600,
        on_node_failure="restart",
        max_node_restarts=2,
        retry_from_failure=True,
        retries=1,
        retry_delay=timedelta(seconds=5),
    )
    read = AomGetWorkflowExecutionOperator(
        task_id="read_outputs",
        workflow_id="{{ ti.xcom_pull(task_ids='patch_fleet', key='execution_detail')['workflow_id'] }}",
        execution_id="{{ ti.xcom_pull(task_ids='patch_fleet', key='execution_id') }}",
    )
    take_over >> patch >> read

    start_gated = AomExecuteWorkflowOperator(task_id="start_gated", workflow_id="wf-gated")
    wait_for_gate = AomWorkflowExecutionSensor(
        task_id="wait_for_gate",
        workflow_id="wf-gated",
        execution_id="{{ ti.xcom_pull(task_ids='start_gated', key='execution_id') }}",
        success_statuses=["pausing"],
        on_node_failure="wait",
        poke_interval=1,
        timeout=600,
    )
    pass_the_gate = AomWorkflowNodeActionOperator(
        task_id="pass_the_gate",
        workflow_id="wf-gated",
        execution_id="{{ ti.xcom_pull(task_ids='start_gated', key='execution_id') }}",
        action="continue",
        wait_for_completion=True,
        poll_interval=1,
        timeout=600,
    )
    start_gated >> wait_for_gate >> pass_the_gate
