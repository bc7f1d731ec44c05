"""Benchmark 4 (and the data of 6): N concurrent deferred waits in one process, as a triggerer runs them.

Three processes:

* the emulator (``python -m airflow_provider_aom.emulator``), with workflow ``wf-bench`` lasting ``--duration`` s;
* the worker (this file with ``--worker``): one asyncio loop running N real
  ``AomWorkflowExecutionTrigger`` objects concurrently, each consumed with
  ``async for event in trigger.run()``; the connection comes from ``AIRFLOW_CONN_AOM_DEFAULT``
  (password auth, no project id);
* this parent: starts the executions, hands their ids to the worker, and samples the worker's
  RSS and TCP sockets with psutil from outside (so sampling costs the worker no CPU).

Worker sequence: import, warm-up (one trigger on a 0-second workflow: modules, token, project
id, connection pool), then the token cache and project-id cache are emptied so that the N waits
race for the token themselves; ``gc.collect()``; baseline RSS; launch all N; wait for all events.

``--mode shared`` is the product (one pool per loop, ``AomAsyncHook``); ``--mode naive`` is the
same trigger whose hook opens a new ``httpx.AsyncClient`` (so a new TCP connection) per request
and closes it after, with the same client settings (verify, timeout, trust_env).

Definitions (all from the emulator's request log, server clock = client clock, one machine):

* memory per wait = (median RSS sampled in the steady window - baseline RSS) / N; the steady
  window runs from one poll interval after launch (every wait has polled once and sleeps) to
  0.5 s before the first execution can end;
* CPU per poll round = worker CPU time in the steady window / status requests served in that
  window x N (what one poll of all N waits costs); also over the whole wait (launch to last event);
* minimum status requests of an execution = 1 + ceil((end - first poll) / poll interval): one
  request per poll interval from its first poll until its end, plus the one that sees the end;
* sockets = TCP connections of the worker process (psutil), peak and steady-window median.

    python bench/waits.py --n 1000 --mode shared
    python bench/waits.py --n 1000 --mode naive
    python bench/waits.py --n 1000 --mode shared --profile   # where the worker's CPU goes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PROJECT_ID,
    STATIC_TOKEN,
    Emulator,
    airflow_home,
    bench_env,
    conn_json,
    iam_token_calls,
    popen,
    profile_rows,
    stop,
    summary,
    write_json,
)

WORKFLOW, WARM_WORKFLOW = "wf-bench", "wf-warm"
#: Seconds between two samples of the worker's RSS and sockets (parent) and of its CPU time (worker).
SAMPLE_INTERVAL = 0.25
#: The steady window ends this many seconds before the first execution can end.
WINDOW_END_MARGIN = 0.5


# ============================================================================ worker


def _naive_trigger_class() -> Any:
    from airflow_provider_aom.api import ApiResponse
    from airflow_provider_aom.exceptions import AomTransportError
    from airflow_provider_aom.hooks.aom import AomAsyncHook
    from airflow_provider_aom.protocol import HttpRequest
    from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger

    class NaiveAomAsyncHook(AomAsyncHook):
        """The product hook, except for the transport: a new client (new connection) per request."""

        async def _send(self, request: HttpRequest, deadline: float) -> ApiResponse:
            import httpx

            config = await self.get_config()
            async with httpx.AsyncClient(
                verify=True if config.verify is None else config.verify,
                trust_env=config.proxies is None,
                timeout=httpx.Timeout(config.timeout),
                follow_redirects=False,
            ) as client:
                try:
                    response = await client.request(
                        request.method, request.url, headers=request.headers, content=request.body or None
                    )
                except httpx.HTTPError as exc:
                    raise AomTransportError(f"{request.api.action}: {type(exc).__name__}", sent=True) from None
            return ApiResponse.build(response.status_code, response.content, response.headers)

    class NaiveTrigger(AomWorkflowExecutionTrigger):
        def _hook(self) -> Any:
            return NaiveAomAsyncHook(aom_conn_id=self.aom_conn_id)

    return NaiveTrigger


def top_own_time(profiler: Any, top: int = 20) -> dict[str, Any]:
    """The functions with the most own time (cProfile), with their cumulative time."""
    entries = profile_rows(profiler)
    total = sum(row.tottime for row in entries)
    # Time blocked in the selector is the loop being idle, not CPU: leave it out of the shares.
    idle_row = "of 'select.epoll' objects"
    idle = sum(row.tottime for row in entries if idle_row in row.function)
    busy = total - idle
    rows: list[dict[str, Any]] = [
        {
            "function": row.function,
            "ncalls": row.ncalls,
            "tottime_s": row.tottime,
            "cumtime_s": row.cumtime,
            "tottime_share": row.tottime / busy if busy else 0.0,
        }
        for row in entries
        if idle_row not in row.function
    ]
    pool = [r for r in rows if r["function"].endswith("(_assign_requests_to_connections)")]
    rows.sort(key=lambda r: -r["tottime_s"])
    return {
        "total_s": total,
        "idle_s": idle,
        "busy_s": busy,
        "rows": rows[:top],
        "httpcore_assign_cumtime_s": sum(r["cumtime_s"] for r in pool),
    }


def worker(args: argparse.Namespace) -> int:
    import asyncio
    import gc

    import psutil

    events_out = os.fdopen(args.event_fd, "w", buffering=1)

    def emit(kind: str, **data: Any) -> None:
        events_out.write(json.dumps({"event": kind, "time": time.time(), "cpu": time.process_time(), **data}) + "\n")

    import airflow.sdk  # noqa: F401  (loaded first, as in a triggerer)

    from airflow_provider_aom import protocol
    from airflow_provider_aom.auth.tokens import TOKEN_CACHE
    from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger

    trigger_class = AomWorkflowExecutionTrigger if args.mode == "shared" else _naive_trigger_class()

    # Instrumentation only: count the TCP connections the loop opens (httpcore/httpx connect through
    # anyio, i.e. loop.create_connection), with their times, to show how often a connection is (re)opened.
    connects: list[float] = []
    original_create_connection = asyncio.base_events.BaseEventLoop.create_connection

    async def counting_create_connection(self: Any, *a: Any, **kw: Any) -> Any:
        connects.append(time.time())
        return await original_create_connection(self, *a, **kw)

    asyncio.base_events.BaseEventLoop.create_connection = counting_create_connection  # type: ignore[method-assign]
    me = psutil.Process()
    emit("ready")
    job = json.loads(sys.stdin.readline())

    async def wait(execution_id: str, workflow_id: str) -> list[str]:
        trigger = trigger_class(workflow_id=workflow_id, execution_id=execution_id, poll_interval=args.poll)
        return [event.payload["status"] async for event in trigger.run()]

    async def main() -> dict[str, Any]:
        warm = await wait(job["warm_id"], WARM_WORKFLOW)
        # The N waits must get their token themselves (concurrently): forget the warm-up's.
        TOKEN_CACHE.clear()
        protocol.RESOLVED.clear()
        gc.collect()
        await asyncio.sleep(0.2)
        emit("baseline", rss=me.memory_info().rss)
        samples: list[tuple[float, float]] = []

        async def sample_cpu() -> None:
            while True:
                samples.append((time.time(), time.process_time()))
                await asyncio.sleep(SAMPLE_INTERVAL)

        sampler = asyncio.create_task(sample_cpu())
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        tasks = [asyncio.create_task(wait(eid, WORKFLOW)) for eid in job["ids"]]
        emit("launched", n=len(tasks))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if profiler is not None:
            profiler.disable()
        emit("done", rss=me.memory_info().rss)
        sampler.cancel()
        statuses: dict[str, int] = {}
        for result in results:
            key = repr(result) if isinstance(result, BaseException) else ",".join(result)
            statuses[key] = statuses.get(key, 0) + 1
        import airflow_provider_aom

        package = str(Path(airflow_provider_aom.__file__ or "").parent)
        outcome = {"warm": warm, "statuses": statuses, "cpu_samples": samples, "connects": connects, "package": package}
        if profiler is not None:
            outcome["profile"] = top_own_time(profiler)
        return outcome

    outcome = asyncio.run(main())
    Path(args.result_file).write_text(json.dumps(outcome))
    emit("exit")
    return 0


# ============================================================================ parent


class Sampler(threading.Thread):
    """Samples the worker's RSS and TCP sockets every ``interval`` s (from outside the worker)."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                t = time.time()
                rss = self.proc.memory_info().rss
                conns = self.proc.net_connections(kind="tcp")
            except Exception:
                return
            established = sum(1 for c in conns if c.status == "ESTABLISHED")
            self.samples.append({"time": t, "rss": rss, "tcp": len(conns), "tcp_established": established})
            self.halt.wait(self.interval)


def start_executions(base_url: str, workflow_id: str, n: int) -> list[str]:
    """Start ``n`` executions with the static token (no IAM call), over one kept-alive connection."""
    import http.client

    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    path = f"/v1/{PROJECT_ID}/cms/workflow/{workflow_id}/executions"
    headers = {"Content-Type": "application/json", "X-Auth-Token": STATIC_TOKEN}
    ids = []
    try:
        for _ in range(n):
            conn.request("POST", path, body=b"", headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"starting an execution failed: {response.status} {body[:200]!r}")
            ids.append(json.loads(body)["execution_id"])
    finally:
        conn.close()
    return ids


def analyse(
    args: argparse.Namespace,
    events: dict[str, dict[str, Any]],
    outcome: dict[str, Any],
    samples: list[dict[str, Any]],
    log: list[dict[str, Any]],
    executions: list[dict[str, Any]],
    ids: list[str],
) -> dict[str, Any]:
    n = len(ids)
    wanted = set(ids)
    launched, done = events["launched"]["time"], events["done"]["time"]
    begin = {e["execution_id"]: e["begin_time"] / 1000 for e in executions if e["execution_id"] in wanted}
    end = {eid: b + args.duration for eid, b in begin.items()}
    first_end = min(end.values())

    polls: dict[str, list[float]] = {eid: [] for eid in ids}
    for record in log:
        if record["method"] == "GET" and record["path"].endswith("/status"):
            eid = record["path"].split("/")[-2]
            if eid in polls:
                polls[eid].append(record["time"])
    actual = {eid: len(times) for eid, times in polls.items()}
    minimum = {
        eid: 1 + max(0, math.ceil((end[eid] - min(times)) / args.poll)) if times else 1 for eid, times in polls.items()
    }
    first_polls = [min(t) for t in polls.values() if t]
    first_round_done = max(first_polls) - launched if first_polls else math.nan

    window = (launched + args.poll, first_end - WINDOW_END_MARGIN)
    in_window = [s for s in samples if window[0] <= s["time"] <= window[1]]
    during = [s for s in samples if launched <= s["time"] <= done]
    baseline_rss = events["baseline"]["rss"]
    steady_rss = statistics.median(s["rss"] for s in in_window) if in_window else math.nan

    cpu_samples = [tuple(s) for s in outcome["cpu_samples"]]
    cpu_in = [c for c in cpu_samples if window[0] <= c[0] <= window[1]]
    steady: dict[str, Any] = {"cpu_s": math.nan, "requests": 0, "seconds": math.nan}
    if len(cpu_in) >= 2:
        (t0, c0), (t1, c1) = cpu_in[0], cpu_in[-1]
        requests = sum(1 for times in polls.values() for t in times if t0 <= t < t1)
        steady = {"cpu_s": c1 - c0, "requests": requests, "seconds": t1 - t0}
    total_requests = sum(actual.values())
    min_requests = sum(minimum.values())
    nominal_per_execution = math.ceil(args.duration / args.poll) + 1
    nominal_requests = n * nominal_per_execution
    peak_rss = max((s["rss"] for s in during), default=math.nan)
    total_cpu = events["done"]["cpu"] - events["launched"]["cpu"]

    def per_round(cpu: float, reqs: int) -> float:
        return cpu / reqs * n if reqs else math.nan

    return {
        "n": n,
        "mode": args.mode,
        "duration_s": args.duration,
        "poll_interval_s": args.poll,
        "sample_interval_s": SAMPLE_INTERVAL,
        "window_end_margin_s": WINDOW_END_MARGIN,
        "nominal_requests_per_execution": nominal_per_execution,
        "package": outcome["package"],
        "profile": outcome.get("profile"),
        "statuses": outcome["statuses"],
        "all_success": outcome["statuses"] == {"success": n},
        "waits_without_success": n - outcome["statuses"].get("success", 0),
        "warmup_events": outcome["warm"],
        "wait_seconds": done - launched,
        "first_round_seconds": first_round_done,
        "steady_window_s": [window[0] - launched, window[1] - launched],
        "steady_samples": len(in_window),
        "rss_baseline_mb": baseline_rss / 2**20,
        "rss_steady_mb": steady_rss / 2**20,
        "rss_peak_mb": peak_rss / 2**20,
        "kb_per_wait": (steady_rss - baseline_rss) / n / 1024,
        "kb_per_wait_peak": (peak_rss - baseline_rss) / n / 1024,
        "cpu_per_round_ms_steady": per_round(steady["cpu_s"], steady["requests"]) * 1000,
        "cpu_per_round_ms_total": per_round(total_cpu, total_requests) * 1000,
        "cpu_us_per_request_steady": steady["cpu_s"] / steady["requests"] * 1e6 if steady["requests"] else math.nan,
        "cpu_total_s": total_cpu,
        "steady": steady,
        "sockets_peak": max((s["tcp"] for s in during), default=0),
        "sockets_steady_median": statistics.median(s["tcp"] for s in in_window) if in_window else math.nan,
        "iam_token_calls_total": iam_token_calls(log),
        "iam_token_calls_waits": iam_token_calls([r for r in log if r["time"] >= launched]),
        "tcp_connects_waits": sum(1 for t in outcome["connects"] if t >= launched),
        "tcp_connects_steady": sum(1 for t in outcome["connects"] if window[0] <= t <= window[1]),
        "status_requests": total_requests,
        "status_requests_min": min_requests,
        "requests_ratio": total_requests / min_requests,
        "status_requests_nominal": nominal_requests,
        "requests_ratio_nominal": total_requests / nominal_requests,
        "requests_per_execution": {k: v for k, v in summary(list(actual.values())).items() if k != "values"},
        "excess_executions": sum(1 for eid in ids if actual[eid] > minimum[eid]),
    }


def parent(args: argparse.Namespace) -> int:
    with airflow_home("aom-bench-waits-") as home:
        result_file = os.path.join(home, "worker-result.json")
        worker_log = open(os.path.join(home, "worker.log"), "w")  # noqa: SIM115 - closed in finally
        proc = None
        deadline = time.time() + args.timeout
        try:
            with Emulator([f"{WORKFLOW}:success:{args.duration:g}", f"{WARM_WORKFLOW}:success:0"]) as emu:
                env = bench_env(home, AIRFLOW_CONN_AOM_DEFAULT=conn_json(emu.base_url, "password"))
                read_fd, write_fd = os.pipe()
                cmd = [sys.executable, __file__, "--worker", "--mode", args.mode, "--poll", str(args.poll)]
                cmd += ["--profile"] if args.profile else []
                cmd += ["--event-fd", str(write_fd), "--result-file", result_file]
                proc = popen(
                    cmd,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=worker_log,
                    stderr=worker_log,
                    pass_fds=(write_fd,),
                    text=True,
                )
                os.close(write_fd)
                events_in = os.fdopen(read_fd)
                events: dict[str, dict[str, Any]] = {}

                def next_event(expected: str) -> dict[str, Any]:
                    import select

                    while True:
                        remaining = deadline - time.time()
                        if remaining <= 0 or not select.select([events_in], [], [], remaining)[0]:
                            raise TimeoutError(f"worker: no {expected!r} event within --timeout {args.timeout:g} s")
                        line = events_in.readline()
                        if not line:
                            raise RuntimeError(f"worker exited before {expected!r} (see its log)")
                        event = json.loads(line)
                        events[event["event"]] = event
                        if event["event"] == expected:
                            return event

                next_event("ready")
                sampler = Sampler(proc.pid)
                warm_id = start_executions(emu.base_url, WARM_WORKFLOW, 1)[0]
                ids = start_executions(emu.base_url, WORKFLOW, args.n)
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"warm_id": warm_id, "ids": ids}) + "\n")
                proc.stdin.flush()
                next_event("baseline")
                sampler.start()
                next_event("launched")
                next_event("done")
                sampler.halt.set()
                sampler.join(5)
                next_event("exit")
                proc.wait(30)
                outcome = json.loads(Path(result_file).read_text())
                log, executions = emu.requests_log(), emu.executions()
            result = analyse(args, events, outcome, sampler.samples, log, executions, ids)
            result["command"] = f"python bench/waits.py --n {args.n} --mode {args.mode}" + (
                " --profile" if args.profile else ""
            )
            write_json(args.json_out, result)
            return 0 if result["all_success"] else 1
        except Exception:
            worker_log.flush()
            tail = Path(worker_log.name).read_text()[-3000:]
            print(f"waits: worker log tail:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop(proc)
            worker_log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="concurrent waits")
    parser.add_argument("--mode", choices=["shared", "naive"], default="shared")
    parser.add_argument("--duration", type=float, default=22.0, help="seconds each execution runs")
    parser.add_argument("--poll", type=float, default=5.0, help="trigger poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile the worker during the wait (slower)")
    parser.add_argument("--json-out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--event-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return worker(args) if args.worker else parent(args)


if __name__ == "__main__":
    sys.exit(main())
