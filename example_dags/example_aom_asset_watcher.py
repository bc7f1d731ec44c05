"""Schedule a DAG on AOM events: verify the fleet after every successful run of ``nightly-patching``.

AOM starts ``nightly-patching`` itself (its own cron trigger), or someone starts it in the console.
The asset ``aom_nightly_patching`` is fed by a watcher: ``AomWorkflowExecutionEventTrigger`` reads the
workflow's execution list once a minute (one AOM call per poll) and sends one asset event for each
execution that succeeded after the watch began. ``example_aom_after_patching`` runs on those events
and reads the execution ids from them; one DAG run can carry several events, so it reads them all.

Needs Airflow 3.0 or later (asset watchers). The watcher starts once the DAG is unpaused. On Airflow
2 this file defines nothing: there, schedule the DAG on a timetable and wait with
``AomWorkflowExecutionSensor``. Against the local emulator, ``nightly-patching`` is ``wf-nightly``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_aom.triggers.aom import AomWorkflowExecutionEventTrigger

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2: no asset watchers
    DAG = None

if DAG is not None:
    nightly_patching = Asset(
        name="aom_nightly_patching",
        watchers=[
            AssetWatcher(
                name="aom_nightly_patching_succeeded",
                trigger=AomWorkflowExecutionEventTrigger(
                    workflow_name="nightly-patching", statuses=["success"], poll_interval=60
                ),
            )
        ],
    )

    with DAG(
        dag_id="example_aom_after_patching",
        start_date=datetime(2026, 1, 1),
        schedule=[nightly_patching],
        catchup=False,
        tags=["aom", "example"],
    ):

        @task
        def verify_patched_fleet(triggering_asset_events: Any = None) -> list[str]:
            """One line per AOM execution that triggered this run; the ids go to XCom."""
            execution_ids = []
            for event in triggering_asset_events[nightly_patching]:
                payload = event.extra["payload"]
                print(
                    f"AOM execution {payload['execution_id']} of workflow {payload['workflow_id']} "
                    f"ended {payload['status']} at {payload['end_time']}; {len(payload['nodes'])} node(s)."
                )
                execution_ids.append(payload["execution_id"])
            return execution_ids

        verify_patched_fleet()
