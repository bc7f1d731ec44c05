"""Benchmark 5: per-task overhead of 50 mapped workflow starts under ``airflow dags test``.

Two DAGs in ``bench/dags`` (the DAGs folder of a private ``AIRFLOW_HOME`` under /tmp, migrated
first): ``bench_aom_mapped`` maps ``AomExecuteWorkflowOperator`` (no wait) 50 ways against the
emulator (AK/SK auth, from ``AIRFLOW_CONN_AOM_DEFAULT``); ``bench_noop_mapped`` maps a
PythonOperator that returns a string 50 ways. Runs alternate between the two DAGs.

Per run: the wall time and the CPU time (user+sys, of the ``airflow dags test`` process and its
children) of the whole command, and the task instances' own durations from the metadata DB.
The overhead per task is (AOM - no-op) / 50 for the wall and CPU times, and the difference of
the median task-instance durations.

    python bench/dag_overhead.py --runs 3
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, PYTHON, Emulator, airflow_home, bench_env, conn_json, summary, write_json

DAGS = {"aom": "bench_aom_mapped", "noop": "bench_noop_mapped"}
MAP_SIZE = 50


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def task_durations(db: str, dag_id: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()[0]
        rows = conn.execute(
            "SELECT duration, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchall()
    durations = [float(r[0]) for r in rows if r[0] is not None]
    return {
        "run_id": run_id,
        "tasks": len(rows),
        "success": sum(1 for r in rows if r[1] == "success"),
        "median_s": statistics.median(durations) if durations else float("nan"),
        "mean_s": statistics.fmean(durations) if durations else float("nan"),
        # The first task of a run also starts the in-process execution API (seconds): the median ignores it.
        "max_s": max(durations, default=float("nan")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each DAG")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on one airflow command, seconds")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    with airflow_home("aom-bench-dags-", under="/tmp") as home:  # noqa: S108 - mkdtemp: private
        log_path = Path(home) / "dags-test.log"
        with Emulator(["wf-bench:success:22"]) as emu:
            env = bench_env(
                home,
                AIRFLOW__CORE__DAGS_FOLDER=str(BENCH / "dags"),
                AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                AIRFLOW_CONN_AOM_DEFAULT=conn_json(emu.base_url, "aksk"),
            )
            airflow = [PYTHON, "-m", "airflow"]
            subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=args.timeout)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in DAGS}
            for rnd in range(args.runs):
                order = list(DAGS) if rnd % 2 == 0 else list(reversed(DAGS))
                for key in order:
                    before = len(emu.executions())
                    cpu0, wall0 = children_cpu(), time.perf_counter()
                    with open(log_path, "a") as log:
                        proc = subprocess.run(
                            [*airflow, "dags", "test", DAGS[key]],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            timeout=args.timeout,
                            check=False,
                        )
                    wall, cpu = time.perf_counter() - wall0, children_cpu() - cpu0
                    tis = task_durations(f"{home}/airflow.db", DAGS[key])
                    started = len(emu.executions()) - before
                    ok = proc.returncode == 0 and tis["success"] == MAP_SIZE
                    ok = ok and (started == MAP_SIZE if key == "aom" else started == 0)
                    runs[key].append(
                        {
                            "wall_s": wall,
                            "cpu_s": cpu,
                            "rc": proc.returncode,
                            "ok": ok,
                            "executions_started": started,
                            **tis,
                        }
                    )
                    if not ok:
                        raise RuntimeError(
                            f"{DAGS[key]} run {rnd} failed: {runs[key][-1]}\n" + log_path.read_text()[-3000:]
                        )

    def per_task(metric: str, scale: float = 1000 / MAP_SIZE) -> dict[str, Any]:
        pairs = zip(runs["aom"], runs["noop"], strict=True)
        return summary([(a[metric] - b[metric]) * scale for a, b in pairs])

    result = {
        "map_size": MAP_SIZE,
        "runs": args.runs,
        "aom": {m: summary([r[m] for r in runs["aom"]]) for m in ("wall_s", "cpu_s", "median_s", "mean_s")},
        "noop": {m: summary([r[m] for r in runs["noop"]]) for m in ("wall_s", "cpu_s", "median_s", "mean_s")},
        "per_task_wall_ms": per_task("wall_s"),
        "per_task_cpu_ms": per_task("cpu_s"),
        "per_task_ti_median_ms": per_task("median_s", 1000),
        "raw": runs,
    }
    write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
