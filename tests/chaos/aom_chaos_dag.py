"""The chaos campaign's DAG (``scripts/chaos.py`` copies it into the cluster's DAGs folder).

One DAG run per campaign run, with ``conf={"run": "<run>"}``. Every task that must succeed starts its own
workflow ``wf-ok-<run>-<task>`` (the emulator's ``--pattern-workflows``: success after 3 s); the two that
must time out start ``wf-slow-<run>-<task>`` (never ends) and must fail after terminating it (``cancel``).
Every task retries, so one lost with a killed worker, triggerer or scheduler is tried again: a durable
retry must reattach to the execution of the earlier try, never start another.

Task ids and their workflow ids (``scripts/chaos.py`` checks each one):

=============== ============================ ======== =====================================================
task            workflow id                  expected what it proves
=============== ============================ ======== =====================================================
defer_a/_b      wf-ok-<run>-defer-a/-b       success  deferrable waits move to the other triggerer
sync_a/_b       wf-ok-<run>-sync-a/-b        success  durable sync waits reattach after worker loss
start           wf-ok-<run>-start            success  start only (no wait), durable
sensor          (start's execution)          success  deferrable sensor on an upstream execution
mapped[0], [1]  wf-ok-<run>-mapped-0/-1      success  dynamic task mapping, deferrable
slow_defer      wf-slow-<run>-slow-defer     failed   deferrable timeout: the deadline survives a move
slow_sync       wf-slow-<run>-slow-sync      failed   durable sync timeout: the deadline survives a retry
=============== ============================ ======== =====================================================
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_aom.exceptions import AomExecutionTimeoutError
from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator
from airflow_provider_aom.sensors.aom import AomWorkflowExecutionSensor

try:
    from airflow.sdk import DAG, Context
except ImportError:  # Airflow 2 (the campaign needs 3.3, but the file must still import)
    from airflow import DAG
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined,unused-ignore]

DAG_ID = "aom_chaos"
#: Seconds from the first submit after which a wf-slow execution is terminated (scripts/chaos.py reads it).
TIMEOUT = 20
RUN = "{{ dag_run.conf['run'] }}"
#: Every task: enough tries to survive one kill of each kind, and backing off (5, 10, 20, 40 s, each up to
#: twice that with Airflow's jitter) so that a broker outage of a minute does not use them all up: the Celery
#: executor fails a try it cannot send to Redis at once. Airflow 3 takes the multiplier; Airflow 2 a flag.
AIRFLOW_3 = not DAG.__module__.startswith("airflow.models")
DEFAULT_ARGS: dict[str, Any] = {
    "retries": 4,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": 2.0 if AIRFLOW_3 else True,
    "max_retry_delay": timedelta(seconds=60),
}


class TimeoutIsFinal(AomExecuteWorkflowOperator):
    """A passed ``timeout`` fails the task for good.

    The provider's timeout error is retryable, and a retry after an execution that ended ``cancel`` starts
    a new one (that is what retrying a failed task means). Here the timeout is the expected end, so it must
    not be retried; losses (a killed worker, a heartbeat timeout) still are.
    """

    def execute(self, context: Context) -> str:
        try:
            return super().execute(context)
        except AomExecutionTimeoutError as exc:
            raise AirflowFailException(str(exc)) from exc

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        try:
            return super().execute_complete(context, event)
        except AomExecutionTimeoutError as exc:
            raise AirflowFailException(str(exc)) from exc


with DAG(
    dag_id=DAG_ID,
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    max_active_runs=16,
    default_args=DEFAULT_ARGS,
    tags=["aom", "chaos"],
) as dag:
    for name in ("defer_a", "defer_b"):
        AomExecuteWorkflowOperator(
            task_id=name,
            workflow_id=f"wf-ok-{RUN}-{name.replace('_', '-')}",
            wait_for_completion=True,
            deferrable=True,
            poll_interval=1,
        )
    for name in ("sync_a", "sync_b"):
        AomExecuteWorkflowOperator(
            task_id=name,
            workflow_id=f"wf-ok-{RUN}-{name.replace('_', '-')}",
            wait_for_completion=True,
            deferrable=False,
            durable=True,
            poll_interval=1,
        )
    start = AomExecuteWorkflowOperator(task_id="start", workflow_id=f"wf-ok-{RUN}-start", durable=True)
    sensor = AomWorkflowExecutionSensor(
        task_id="sensor",
        workflow_id=f"wf-ok-{RUN}-start",
        execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )
    start >> sensor
    AomExecuteWorkflowOperator.partial(
        task_id="mapped",
        workflow_id=f"wf-ok-{RUN}-mapped-{{{{ ti.map_index }}}}",
        wait_for_completion=True,
        deferrable=True,
    ).expand(poll_interval=[1.0, 1.5])
    TimeoutIsFinal(
        task_id="slow_defer",
        workflow_id=f"wf-slow-{RUN}-slow-defer",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=TIMEOUT,
    )
    TimeoutIsFinal(
        task_id="slow_sync",
        workflow_id=f"wf-slow-{RUN}-slow-sync",
        wait_for_completion=True,
        deferrable=False,
        durable=True,
        poll_interval=1,
        timeout=TIMEOUT,
    )
