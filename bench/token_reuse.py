"""Benchmark 3: IAM token reuse across 1,000 executions started in one process (password auth).

A fresh ``AomHook`` per execution, as every operator instance creates its own hook; the
connection (``AIRFLOW_CONN_AOM_DEFAULT``) has password auth and no project id, so the project
id also comes from the token. The emulator (a separate process) counts the IAM calls.

    python bench/token_reuse.py --executions 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Emulator, airflow_home, bench_env, conn_json, count, iam_token_calls, write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--json-out")
    args = parser.parse_args()

    with airflow_home("aom-bench-token-") as home:
        os.environ.update(bench_env(home))
        with Emulator(["wf-bench:success:22"]) as emu:
            os.environ["AIRFLOW_CONN_AOM_DEFAULT"] = conn_json(emu.base_url, "password")
            import airflow.sdk  # noqa: F401  (what a worker has loaded anyway)

            from airflow_provider_aom.hooks.aom import AomHook

            ids = set()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(args.executions):
                hook = AomHook()  # fresh hook per execution, as an operator would
                ids.add(hook.execute_workflow("wf-bench"))
                hook.transport.close()
            cpu1, wall1 = time.process_time(), time.perf_counter()
            log = emu.requests_log()

    result = {
        "executions_requested": args.executions,
        "executions_started": len(ids),
        "execute_posts": count(log, "POST", "/v1/", "/executions"),
        "iam_token_calls": iam_token_calls(log),
        "iam_project_lookups": count(log, "GET", "/v3/projects"),
        "cpu_ms_per_execution": (cpu1 - cpu0) / args.executions * 1000,
        "wall_ms_per_execution": (wall1 - wall0) / args.executions * 1000,
    }
    write_json(args.json_out, result)
    return 0 if len(ids) == args.executions else 1


if __name__ == "__main__":
    sys.exit(main())
