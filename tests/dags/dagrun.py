"""Run a DAG with ``dag.test()`` on Airflow 2.11 or 3.x and read what it left behind."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dag_files"


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLE_DAGS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def load_test_dag(dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location("aom_test_dags", TEST_DAGS / "aom_test_dags.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = {id(v): v for v in vars(module).values() if hasattr(v, "task_dict") and v.dag_id == dag_id}
    [dag] = dags.values()
    return dag


def run(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    """Run the DAG once in-process (deferrable tasks run their trigger in-process too)."""
    return dag.test(run_conf=conf) if conf else dag.test()


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        from airflow.models import TaskInstance

        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        )
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(
                getattr(ti.state, "value", ti.state)
            )
            for ti in rows
        }


def try_numbers(dag_run: Any) -> dict[str, int]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        )
        return {ti.task_id: ti.try_number for ti in rows}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.utils.session import create_session

    with create_session() as session:
        if AIRFLOW_3:
            from airflow.models.xcom import XComModel

            query = XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key, map_indexes=map_index
            )
            row = session.scalars(query).first()
            return XComModel.deserialize_value(row) if row is not None else None
        from airflow.models.xcom import XCom

        return XCom.get_one(
            run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key, map_index=map_index, session=session
        )


def stored_sizes(dag_run: Any) -> dict[str, int]:
    """Bytes each XCom row of the run (``task_id:key``) and each task's ``next_kwargs`` take in the metadata DB."""
    import json

    from airflow.utils.session import create_session
    from sqlalchemy import text

    sizes: dict[str, int] = {}
    with create_session() as session:
        rows = session.execute(
            text("SELECT task_id, key, value FROM xcom WHERE dag_id = :dag AND run_id = :run"),
            {"dag": dag_run.dag_id, "run": dag_run.run_id},
        )
        for task_id, key, value in rows:
            sizes[f"{task_id}:{key}"] = len(value if isinstance(value, (bytes, str)) else json.dumps(value))
        rows = session.execute(
            text("SELECT task_id, next_kwargs FROM task_instance WHERE dag_id = :dag AND run_id = :run"),
            {"dag": dag_run.dag_id, "run": dag_run.run_id},
        )
        for task_id, next_kwargs in rows:
            if next_kwargs is not None:
                size = len(next_kwargs if isinstance(next_kwargs, (bytes, str)) else json.dumps(next_kwargs))
                sizes[f"{task_id}:next_kwargs"] = size
    return sizes
