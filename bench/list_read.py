"""Benchmark: one read of a long execution list, against ``json.loads`` of the same bytes.

AOM's execution list (``GET /v1/{project}/cms/workflow/{wf}/executions``) is a bare JSON array of
a workflow's whole history, without paging. The provider reads it as a stream
(:mod:`airflow_provider_aom.execution_list`: ijson's C backend, rows kept only when ``keep``
chooses them, never node results). This step measures one such read of ``--rows`` seeded
executions of ``--nodes`` node results each (the emulator's ``history``/``history_nodes``,
streamed by the emulator in a separate process, never held by it), each side in a fresh
interpreter started for it, so that its memory figures are its own:

* **json.loads** (a child that never imports Airflow): the raw list bytes fetched once with
  ``http.client`` (same URL, same token auth, same emulator configuration as the hook's read:
  the same answer), their size; then ``time.process_time()`` of ``json.loads(raw)``, best of
  three (gc enabled as normal; each result freed before the next); the peak RSS growth of the
  first ``json.loads`` is kept too (the RSS high-water mark reset by writing 5 to
  ``/proc/self/clear_refs``), and for reference the CPU of one more ``json.loads`` with the
  cyclic GC disabled;
* **hook read** (another fresh child): ``AomAsyncHook.list_executions("wf-success", keep=...)``
  on an asyncio loop, ``AIRFLOW_CONN_AOM_DEFAULT`` a static-token connection. First a warm-up
  read with a 10-row history (imports, connection, pool, first request done; its newest row
  gives the floor), then the history set to ``--rows``, ``gc.collect()``, and ONE read with
  ``keep=since(floor)`` where the floor keeps the 10 newest rows (``--keep all``: ``keep=None``,
  every row kept). Measured over that read: ``time.process_time()`` delta, peak RSS growth
  (VmHWM after, reset just before, minus VmRSS before) and the longest event-loop block (a
  concurrent task sleeping 1 ms in a loop records the largest gap between its wake-ups, minus
  1 ms). The monitor's own CPU is in the read's CPU; its cost per wake-up is calibrated after
  the read and reported (``read_cpu_net_s``) but not taken off the budgeted figure.

    python bench/list_read.py --rows 100000
    python bench/list_read.py --rows 10000 --keep all
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import http.client
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PROJECT_ID,
    PYTHON,
    STATIC_TOKEN,
    Emulator,
    airflow_home,
    bench_env,
    conn_json,
    popen,
    stop,
    write_json,
)

from airflow_provider_aom.emulator.history import RUN_BUDGET_MS, SPACING

WORKFLOW = "wf-success"  # a built-in workflow of the emulator: its list is the seeded history alone
WARM_ROWS = 10  # rows of the warm-up read, and how many newest rows the measured read keeps
LOADS_RUNS = 3
MONITOR_SLEEP = 0.001  # seconds the loop monitor sleeps between wake-ups
CHILD_TIMEOUT = 900.0
MB = 1024 * 1024


# ============================================================================ memory


def _status_kb(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def reset_peak() -> int:
    """Reset the RSS high-water mark to the current RSS; returns VmRSS (bytes) just before."""
    rss = _status_kb("VmRSS") * 1024
    Path("/proc/self/clear_refs").write_text("5")
    return rss


def peak() -> int:
    """VmHWM (bytes): the highest RSS since :func:`reset_peak`."""
    return _status_kb("VmHWM") * 1024


# ============================================================================ children


def configure(base_url: str, rows: int, nodes: int) -> None:
    """The emulator's seeded history: ``rows`` ended executions of ``nodes`` nodes per workflow (admin API)."""
    body = json.dumps({"history": rows, "history_nodes": nodes}).encode()
    request = urllib.request.Request(f"{base_url}/_emulator/config", data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
        answer = json.load(response)
    if answer.get("history") != rows or answer.get("history_nodes") != nodes:
        raise RuntimeError(f"the emulator did not take the history configuration: {answer}")


def fetch_list(base_url: str) -> bytes:
    """The raw list answer, as the hook asks for it (same path, same static token), without compression."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        conn.request(
            "GET",
            f"/v1/{PROJECT_ID}/cms/workflow/{WORKFLOW}/executions",
            headers={"X-Auth-Token": STATIC_TOKEN, "Accept": "application/json", "Accept-Encoding": "identity"},
        )
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"the list answered {response.status}: {data[:300]!r}")
        if response.getheader("Content-Encoding", "identity") != "identity":
            raise RuntimeError("the list came compressed")
        return data
    finally:
        conn.close()


def child_loads(base_url: str, rows: int, nodes: int) -> dict[str, Any]:
    """Fetch the raw list once; ``json.loads`` it three times (best CPU), the first with its peak RSS growth."""
    configure(base_url, rows, nodes)
    raw = fetch_list(base_url)
    out: dict[str, Any] = {
        "list_bytes": len(raw),
        "list_sha256": hashlib.sha256(raw).hexdigest()[:16],
    }
    gc.collect()
    cpu_runs, rss_growth, parsed_rows = [], 0, 0
    for attempt in range(LOADS_RUNS):
        before = reset_peak()
        cpu0 = time.process_time()
        parsed = json.loads(raw)
        cpu_runs.append(time.process_time() - cpu0)
        if attempt == 0:
            rss_growth = peak() - before
            parsed_rows = len(parsed)
        del parsed
        gc.collect()
    # For reference, once more without the cyclic GC (which json.loads of a large list keeps waking).
    gc.disable()
    cpu0 = time.process_time()
    parsed = json.loads(raw)
    nogc = time.process_time() - cpu0
    gc.enable()
    del parsed, raw
    gc.collect()
    out.update(
        json_loads_nogc_cpu_s=nogc,
        json_loads_cpu_s=min(cpu_runs),
        json_loads_cpu_runs_s=cpu_runs,
        json_loads_rss_growth_mb=rss_growth / MB,
        json_loads_rows=parsed_rows,
    )
    return out


def child_read(base_url: str, rows: int, nodes: int, keep_all: bool) -> dict[str, Any]:
    """A warm-up read of a 10-row history, then ONE read of ``rows`` rows, measured."""
    from airflow_provider_aom.execution_list import since
    from airflow_provider_aom.hooks.aom import AomAsyncHook

    async def main() -> dict[str, Any]:
        hook = AomAsyncHook("aom_default")
        configure(base_url, WARM_ROWS, nodes)
        warm_cpu = time.process_time()
        warm = await hook.list_executions(WORKFLOW, keep=since(0))
        warm_cpu = time.process_time() - warm_cpu
        if len(warm) != WARM_ROWS:
            raise RuntimeError(f"the warm-up read found {len(warm)} rows, not {WARM_ROWS}")
        # The warm-up rows are the 10 newest of any longer history; each seeded row began SPACING s after the
        # next older one and ran less than that (RUN_BUDGET_MS), so this floor keeps exactly those 10.
        assert RUN_BUDGET_MS < SPACING * 1000
        floor = min(row.begin_time or 0 for row in warm) - 1
        keep = None if keep_all else since(floor)
        configure(base_url, rows, nodes)

        gaps = {"max": 0.0, "wakeups": 0, "stop": False}

        async def monitor() -> None:
            last = time.perf_counter()
            while not gaps["stop"]:
                await asyncio.sleep(MONITOR_SLEEP)
                now = time.perf_counter()
                gaps["max"] = max(gaps["max"], now - last - MONITOR_SLEEP)
                gaps["wakeups"] += 1
                last = now

        del warm
        gc.collect()
        task = asyncio.create_task(monitor())
        await asyncio.sleep(0.1)  # the monitor runs; gc and imports are done
        gaps.update(max=0.0, wakeups=0)
        before = reset_peak()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = await hook.list_executions(WORKFLOW, keep=keep)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        hwm = peak()
        block, wakeups = float(gaps["max"]), int(gaps["wakeups"])
        gaps["stop"] = True
        await task
        kept, read_rows, invalid = len(result), result.rows, result.invalid
        del result

        # What one wake-up of the monitor costs on an otherwise idle loop (its share of the read's CPU).
        gaps.update(stop=False, wakeups=0)
        task = asyncio.create_task(monitor())
        cal_cpu = time.process_time()
        await asyncio.sleep(1.0)
        cal_cpu = time.process_time() - cal_cpu
        gaps["stop"] = True
        await task
        per_wakeup = cal_cpu / max(1, int(gaps["wakeups"]))
        return {
            "warmup_rows": WARM_ROWS,
            "warmup_cpu_s": warm_cpu,
            "floor_ms": None if keep_all else floor,
            "read_cpu_s": cpu1 - cpu0,
            "read_wall_s": wall1 - wall0,
            "read_rss_before_mb": before / MB,
            "read_rss_peak_mb": hwm / MB,
            "read_rss_growth_mb": (hwm - before) / MB,
            "longest_block_ms": block * 1000,
            "monitor_wakeups": wakeups,
            "monitor_cpu_per_wakeup_us": per_wakeup * 1e6,
            "read_cpu_net_s": (cpu1 - cpu0) - wakeups * per_wakeup,
            "rows_read": read_rows,
            "rows_kept": kept,
            "rows_invalid": invalid,
        }

    return asyncio.run(main())


# ============================================================================ parent


def run_child(mode: str, base_url: str, args: argparse.Namespace, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """One measurement in a fresh interpreter (dies with us); its JSON."""
    cmd = [PYTHON, __file__, "--child", mode, "--base-url", base_url, "--child-out", str(out)]
    cmd += ["--rows", str(args.rows), "--nodes", str(args.nodes), "--keep", args.keep]
    proc = popen(cmd, env=env)
    try:
        rc = proc.wait(CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = -1
    finally:
        stop(proc)
    if rc != 0 or not out.exists():
        raise RuntimeError(f"the {mode} child failed (exit {rc})")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="executions in the list")
    parser.add_argument("--nodes", type=int, default=20, help="node results per execution")
    parser.add_argument(
        "--keep", choices=("recent", "all"), default="recent", help="keep the 10 newest rows, or every row"
    )
    parser.add_argument("--json-out")
    parser.add_argument("--child", choices=("loads", "read"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.child == "loads":
            outcome = child_loads(args.base_url, args.rows, args.nodes)
        else:
            outcome = child_read(args.base_url, args.rows, args.nodes, args.keep == "all")
        Path(args.child_out).write_text(json.dumps(outcome))
        return 0

    with airflow_home("aom-bench-list-") as home, Emulator() as emu:
        env = bench_env(home, AIRFLOW_CONN_AOM_DEFAULT=conn_json(emu.base_url, "token"))
        loads = run_child("loads", emu.base_url, args, Path(home) / "loads.json", env)
        read = run_child("read", emu.base_url, args, Path(home) / "read.json", env)

    result: dict[str, Any] = {
        "rows": args.rows,
        "nodes": args.nodes,
        "keep": args.keep,
        "kept_rows_target": None if args.keep == "all" else WARM_ROWS,
        "workflow": WORKFLOW,
        "json_loads_runs": LOADS_RUNS,
        "list_mb": loads["list_bytes"] / MB,
        "bytes_per_row": loads["list_bytes"] / args.rows,
        **loads,
        **read,
        "cpu_ratio": read["read_cpu_s"] / loads["json_loads_cpu_s"],
        "cpu_ratio_net": read["read_cpu_net_s"] / loads["json_loads_cpu_s"],
        "read_mb_per_cpu_s": loads["list_bytes"] / MB / read["read_cpu_s"],
        "loads_mb_per_cpu_s": loads["list_bytes"] / MB / loads["json_loads_cpu_s"],
    }
    write_json(args.json_out, result)
    expected_kept = args.rows if args.keep == "all" else WARM_ROWS
    ok = loads["json_loads_rows"] == args.rows == read["rows_read"] and read["rows_kept"] == expected_kept
    if not ok:
        print(
            f"list_read: rows json.loads {loads['json_loads_rows']}, read {read['rows_read']}, "
            f"kept {read['rows_kept']} (expected {args.rows} and {expected_kept})",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
