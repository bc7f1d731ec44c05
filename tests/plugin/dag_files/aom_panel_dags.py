"""DAGs the panel tests run (tests/plugin/): executions stopped where the panel's buttons apply."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

try:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.empty import EmptyOperator  # type: ignore[no-redef]

START = datetime(2026, 1, 1)


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False) as dag:
        AomExecuteWorkflowOperator(task_id="run", **{"poll_interval": 0.2, "retries": 0, **kwargs})
    return dag


# Started, not waited for: the execution goes on in the emulator and stops where a person must act.
panel_pause = _dag("aom_panel_pause", workflow_id="wf-panel-pause")
panel_flaky = _dag("aom_panel_flaky", workflow_id="wf-panel-flaky")
panel_long = _dag("aom_panel_long", workflow_id="wf-panel-long")
# Follows an execution someone else started: it may not terminate it.
panel_adopted = _dag("aom_panel_adopted", workflow_id="wf-panel-adopt", reuse_existing_run=True)
# Waited for: ends failed with the execution stopped (ended) at its failed node.
panel_fail = _dag("aom_panel_fail", workflow_id="wf-panel-fail", wait_for_completion=True, timeout=60)

with DAG(dag_id="aom_panel_mixed", start_date=START, schedule=None, catchup=False) as panel_mixed:
    EmptyOperator(task_id="not_aom")
