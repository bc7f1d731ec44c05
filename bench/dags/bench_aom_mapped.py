"""Benchmark DAG: 50 mapped workflow starts (no wait) against the emulator (see bench/dag_overhead.py)."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

MAP_SIZE = 50

with DAG(dag_id="bench_aom_mapped", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    AomExecuteWorkflowOperator.partial(task_id="start", aom_conn_id="aom_default", retries=0).expand(
        workflow_id=["wf-bench"] * MAP_SIZE
    )
