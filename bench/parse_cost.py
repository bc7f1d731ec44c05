"""Benchmark 1: DAG-parse cost of importing the provider's operator and sensor modules.

Each run is a fresh interpreter that imports ``airflow.sdk`` first (every DAG file pays that),
then the target modules, under ``python -X importtime``. The cost is the sum of the cumulative
times of the top-level entries that ``-X importtime`` prints between two markers written
around the target imports, i.e. everything our import statements caused, including any
third-party module loaded for the first time on our behalf. The same figure is taken for
``airflow.providers.http.operators.http``. A second set of fresh runs without ``-X importtime``
times the same imports with ``time.perf_counter`` (importtime adds its own overhead).

The child also lists the modules the target import added to ``sys.modules``; for the AOM
modules none may be an HTTP client (``httpcore`` included), an async library (``anyio``
included), a retry library, the provider's own HTTP layer (transport, hooks, triggers) or its
emulator. ``airflow.sdk`` may have loaded some of those already (it loads httpcore and anyio's
top level, for one): only what our imports add counts, and what ``airflow.sdk`` had loaded is
recorded for reference.

    python bench/parse_cost.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, airflow_home, bench_env, summary, write_json

TARGETS = {
    "aom": ["airflow_provider_aom.operators.aom", "airflow_provider_aom.sensors.aom"],
    "http": ["airflow.providers.http.operators.http"],
}

#: Top-level names that must not be imported by our parse-time modules.
FORBIDDEN = {
    "http client": {"requests", "httpx", "httpcore", "urllib3", "aiohttp", "h11", "h2", "http.client"},
    "async library": {"asyncio", "anyio", "trio", "sniffio", "uvloop", "asgiref", "aiofiles", "aiosqlite"},
    "retry library": {"tenacity"},
    "provider HTTP layer": {
        "airflow_provider_aom.transport",
        "airflow_provider_aom.hooks",
        "airflow_provider_aom.triggers",
    },
    "emulator": {"airflow_provider_aom.emulator"},
}

START, END = "@@BENCH-IMPORT-START@@", "@@BENCH-IMPORT-END@@"

CHILD = rf"""
import json, sys, time
import airflow.sdk
before = set(sys.modules)
targets = sys.argv[2:]
sys.stderr.write("{START}\n"); sys.stderr.flush()
t0 = time.perf_counter()
for name in targets:
    exec("import " + name)  # an import statement: importlib.import_module bypasses -X importtime for itself
elapsed = time.perf_counter() - t0
sys.stderr.write("{END}\n"); sys.stderr.flush()
with open(sys.argv[1], "w") as out:
    json.dump({{"perf_ms": elapsed * 1000, "before": sorted(before), "new": sorted(set(sys.modules) - before)}}, out)
"""

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def parse_importtime(stderr: str) -> tuple[float, list[tuple[str, float]]]:
    """Sum of cumulative µs of the top-level entries between the markers, and those entries."""
    inside = False
    top: list[tuple[str, float]] = []
    for line in stderr.splitlines():
        if line.strip() == START:
            inside = True
            continue
        if line.strip() == END:
            break
        if not inside:
            continue
        match = _LINE.match(line)
        if match and len(match.group(3)) == 1:  # one space after "|": nesting level 0
            top.append((match.group(4), int(match.group(2)) / 1000))
    return sum(ms for _, ms in top), top


def one_run(targets: list[str], importtime: bool, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        cmd = [PYTHON, *(["-X", "importtime"] if importtime else []), "-c", CHILD, out, *targets]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"import of {targets} failed:\n{result.stderr[-3000:]}")
        data: dict[str, Any] = json.loads(Path(out).read_text())
    finally:
        os.unlink(out)
    if importtime:
        data["importtime_ms"], data["top_level"] = parse_importtime(result.stderr)
    return data


def forbidden_hits(modules: list[str]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for kind, names in FORBIDDEN.items():
        found = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))
        if found:
            hits[kind] = found
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per target and mode (>= 5)")
    parser.add_argument("--json-out", help="write the result here (default: stdout)")
    args = parser.parse_args()

    runs: dict[str, dict[str, list[Any]]] = {k: {"importtime": [], "perf": []} for k in TARGETS}
    with airflow_home("aom-bench-parse-") as home:
        env = bench_env(home)
        # One unmeasured import per target: writes airflow.cfg into the fresh home and the .pyc files.
        for targets in TARGETS.values():
            one_run(targets, importtime=False, env=env)
        for _ in range(args.runs):
            for key, targets in TARGETS.items():  # interleaved, so drift hits both alike
                runs[key]["importtime"].append(one_run(targets, importtime=True, env=env))
                runs[key]["perf"].append(one_run(targets, importtime=False, env=env))

    result: dict[str, Any] = {
        "runs": args.runs,
        "targets": TARGETS,
        "forbidden": {kind: sorted(names) for kind, names in FORBIDDEN.items()},
        "forbidden_names": sorted(name for names in FORBIDDEN.values() for name in names),
    }
    for key in TARGETS:
        timed = runs[key]["importtime"]
        new = timed[-1]["new"]
        result[key] = {
            "importtime_ms": summary([r["importtime_ms"] for r in timed]),
            "perf_ms": summary([r["perf_ms"] for r in runs[key]["perf"]]),
            "new_modules": new,
            "new_module_count": len(new),
            "top_level": timed[-1]["top_level"],
            "forbidden_new": forbidden_hits(new),
            "forbidden_new_count": sum(len(v) for v in forbidden_hits(new).values()),
            # Informational: what airflow.sdk had loaded before our import (not counted, not ours).
            "preloaded_by_airflow_sdk": forbidden_hits(timed[-1]["before"]),
            "preloaded_top_level": sorted(
                {m.split(".")[0] for v in forbidden_hits(timed[-1]["before"]).values() for m in v}
            ),
            "forbidden_new_top_level": sorted({m.split(".")[0] for v in forbidden_hits(new).values() for m in v}),
        }
    write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
