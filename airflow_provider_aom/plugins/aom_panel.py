"""The AOM execution panel, registered with Airflow through the ``airflow.plugins`` entry point.

Every Airflow component imports this module (scheduler, workers, triggerer, dag-processor): its top level
imports only Airflow's plugin base. The FastAPI app (:mod:`~airflow_provider_aom.plugins.app`) is built on
the first request the api-server routes to ``/aom``.

* Airflow ≥ 3.1: a FastAPI app mounted at ``/aom`` and a task-instance view (``external_views``,
  ``destination="task_instance"``) whose iframe shows ``/aom/ti/{dag_id}/{run_id}/{task_id}``.
* Airflow 2.x (and 3.0): the plugin loads and offers nothing (there is no FastAPI plugin app to mount);
  the console link (``AomWorkflowExecutionLink``) stays the way to the execution.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow import __version__ as _airflow_version
from airflow.plugins_manager import AirflowPlugin

#: Where the panel's app is mounted on the api-server.
URL_PREFIX = "/aom"
#: The view's route under the task instance (``.../tasks/{task_id}/plugin/aom-execution``).
URL_ROUTE = "aom-execution"


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


#: Plugin apps and external views exist from Airflow 3.1.
SUPPORTED = _release(_airflow_version) >= (3, 1)


class LazyPanelApp:
    """The ASGI app the plugin mounts: builds the FastAPI app on its first request, once."""

    def __init__(self) -> None:
        self._app: Any = None
        self._guard = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            with self._guard:
                if self._app is None:
                    from airflow_provider_aom.plugins.app import create_app

                    self._app = create_app()
        await self._app(scope, receive, send)


def _fastapi_apps() -> list[dict[str, Any]]:
    if not SUPPORTED:
        return []
    return [{"app": LazyPanelApp(), "url_prefix": URL_PREFIX, "name": "AOM execution panel"}]


def _external_views() -> list[dict[str, Any]]:
    if not SUPPORTED:
        return []
    return [
        {
            "name": "AOM Execution",
            "href": URL_PREFIX + "/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": URL_ROUTE,
        }
    ]


class AomExecutionPanelPlugin(AirflowPlugin):
    """Huawei Cloud AOM: the execution of an AOM task, and its node operations, on the task instance page."""

    name = "aom_execution_panel"
    fastapi_apps = _fastapi_apps()
    external_views = _external_views()
