"""Benchmark DAG of ``bench/triggerer.py``: N mapped deferrable AOM waits held by one real triggerer.

One DAG run per phase, sized by its conf: ``{"n": N, "kind": "slow" | "ok" | "noop", "tag": "<tag>", "poll": SECONDS,
"minutes": M}``.
Task ``wait`` is mapped N ways over ``wf-<kind>-<tag>-<i>``: the emulator's ``--pattern-workflows`` make
``wf-slow-*`` run for ten years (the wait stays deferred) and ``wf-ok-*`` succeed after 3 s (the warm-up).
Each mapped task submits its execution on a Celery worker and defers to ``AomWorkflowExecutionTrigger``.

``kind="noop"`` is the reference: task ``sleep`` is mapped N ways instead (``wait`` maps over nothing and is
skipped), a ``TimeDeltaSensor(deferrable=True)`` of ``minutes`` (default a day) that defers to Airflow's own
``DateTimeTrigger``, which logs and sleeps: what any deferred task costs a triggerer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

from airflow_provider_aom.operators.aom import AomExecuteWorkflowOperator

DAG_ID = "aom_triggerer_bench"
N_DEFAULT = 300
POLL_DEFAULT = 15.0


def _conf(context: dict[str, Any]) -> tuple[int, str, str, float]:
    conf = context["dag_run"].conf or {}
    n, kind, tag = int(conf.get("n", N_DEFAULT)), str(conf.get("kind", "slow")), str(conf.get("tag", "bench"))
    return n, kind, tag, float(conf.get("poll", POLL_DEFAULT))


with DAG(dag_id=DAG_ID, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, tags=["aom", "bench"]):

    @task
    def waits(**context: Any) -> list[dict[str, Any]]:
        """The AOM waits' arguments (none for the reference run)."""
        n, kind, tag, poll = _conf(context)
        n = 0 if kind == "noop" else n
        return [{"workflow_id": f"wf-{kind}-{tag}-{i}", "poll_interval": poll} for i in range(n)]

    @task
    def sleeps(**context: Any) -> list[int]:
        """The reference sleeps' ``delta`` in minutes (none unless ``kind="noop"``)."""
        n, kind, _, _ = _conf(context)
        return [int(context["dag_run"].conf.get("minutes", 24 * 60))] * (n if kind == "noop" else 0)

    AomExecuteWorkflowOperator.partial(
        task_id="wait", aom_conn_id="aom_default", wait_for_completion=True, deferrable=True, retries=0
    ).expand_kwargs(waits())
    TimeDeltaSensor.partial(task_id="sleep", deferrable=True, retries=0).expand(delta=sleeps())
