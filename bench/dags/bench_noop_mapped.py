"""Benchmark DAG: the baseline for bench_aom_mapped, a no-op PythonOperator mapped 50 ways (returns a string)."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator  # type: ignore[no-redef]

MAP_SIZE = 50


def noop(workflow_id: str) -> str:
    return f"noop-{workflow_id}"


with DAG(dag_id="bench_noop_mapped", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator.partial(task_id="start", python_callable=noop, retries=0).expand(
        op_kwargs=[{"workflow_id": "wf-bench"}] * MAP_SIZE
    )
