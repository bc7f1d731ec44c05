"""Benchmarks 4, 5 and 6 (and the data of 8): N concurrent deferred waits in one process, as a triggerer runs them.

Three processes:

* the emulator (``python -m airflow_provider_aom.emulator``), with workflow ``wf-bench`` lasting ``--duration`` s;
* the worker (this file with ``--worker``): one asyncio loop running N real
  ``AomWorkflowExecutionTrigger`` objects concurrently, each consumed with
  ``async for event in trigger.run()``; the connection comes from ``AIRFLOW_CONN_AOM_DEFAULT``
  (password auth, no project id);
* this parent: starts the executions (through the emulator's admin API, so an answer delay does
  not slow it), hands their ids to the worker, and samples the worker's RSS and TCP sockets and
  the emulator's CPU time with psutil from outside (so sampling costs the worker no CPU).

Worker sequence: import, warm-up (one trigger on a 0-second workflow: modules, token, project
id, connection pool), then the token cache and project-id cache are emptied so that the N waits
race for the token themselves; ``gc.collect()``; baseline RSS; launch all N; wait for all events.

``--mode shared`` is the product (one pool per loop, ``AomAsyncHook``); ``--mode naive`` is the
same trigger whose hook opens a new ``httpx.AsyncClient`` (so a new TCP connection) per request
and closes it after, with the same client settings (verify, timeout, trust_env); ``--mode http``
is the peer a user might write instead: the http provider's ``HttpSensorTrigger`` (what
``HttpSensor(deferrable=True)`` defers to) polling the same status URL with a static
``X-Auth-Token`` header. It fires on the first answer that is not a 404, so it can only keep
polling a status URL that answers 404: each polls an execution that does not exist, and the
worker stops them ``--duration`` s after the launch. ``--answer-delay`` makes the emulator hold
every AOM answer that long (a backend's latency).

``--pool httpcore`` (with ``--mode shared``) keeps everything of the product but its connection
handling: each endpoint host's requests go through ``httpcore.AsyncConnectionPool`` (the same 128
connections, keep-alive expiry and network backend, built by the transport's own pool arguments;
the pool queues the requests beyond 128 itself) instead of the transport's per-host stack
(``--pool stack``, the default): the benchmark of whether that stack pays.

Definitions (all from the emulator's request log, server clock = client clock, one machine):

* memory per wait = (median RSS sampled in the steady window - baseline RSS) / N; the steady
  window runs from one poll interval after launch, or half an interval after the last wait's
  first poll if that is later (every wait has polled once, and the spread first pauses put the
  waits' phases evenly over the interval), to 0.5 s before the first execution can end;
* CPU per poll round = worker CPU time in the steady window / status requests served in that
  window x N (what one poll of all N waits costs); also over the whole wait (launch to last event);
* polls due = N x (steady window) / poll interval; polls done = status requests served in it;
* minimum status requests of an execution = 1 + ceil((end - first poll) / poll interval): one
  request per poll interval from its first poll until its end, plus the one that sees the end;
* sockets = TCP connections of the worker process (psutil), peak and steady-window median;
  slot waits = share of the window's requests that found every socket slot of the host busy
  (the transport's slot wait, wrapped by the worker for this count only);
* emulator cores = the emulator process's CPU time per second of the window.

    python bench/waits.py --n 1000 --mode shared
    python bench/waits.py --n 1000 --mode naive
    python bench/waits.py --n 1000 --mode shared --profile   # where the worker's CPU goes
    python bench/waits.py --n 5000 --mode shared --answer-delay 0.1 --duration 75
    python bench/waits.py --n 1000 --mode http
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
import uuid
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
HTTP_CONN_ID = "http_bench"
DEFAULT_DURATION, DEFAULT_POLL = 22.0, 5.0
#: How each mode's wait ends: with a success event, or (``http``) still polling when it is stopped.
EXPECTED = {"shared": "success", "naive": "success", "http": "polling"}
#: Seconds between two samples of the worker's RSS and sockets (parent) and of its CPU time (worker).
SAMPLE_INTERVAL = 0.25
#: The steady window ends this many seconds before the first execution can end.
WINDOW_END_MARGIN = 0.5


# ============================================================================ worker


def _naive_trigger_class() -> Any:
    from airflow_provider_aom.api import ApiRequest
    from airflow_provider_aom.exceptions import AomTransportError
    from airflow_provider_aom.hooks.aom import AomAsyncHook
    from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger
    from airflow_provider_aom.wire import ApiResponse, HttpRequest

    class NaiveAomAsyncHook(AomAsyncHook):
        """The product hook, except for the transport: a new client (new connection) per request."""

        async def _send(self, request: HttpRequest[ApiRequest], deadline: float) -> ApiResponse:
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


#: Where own time (cProfile ``tottime``) goes, by the file of each function: the first match names it.
PROFILE_LAYERS = (
    ("ours", ("airflow_provider_aom/",)),
    ("httpcore", ("httpcore/",)),
    ("h11", ("h11/",)),
    ("anyio", ("anyio/", "sniffio/")),
    ("asyncio", ("asyncio/", "selectors.py", "contextvars")),
    ("proxy lookup", ("urllib/request.py", "<frozen os>", "<frozen _collections_abc>")),
    ("builtins", ("~:0(",)),
)


def layer_of(function: str) -> str:
    """The layer a profiled function belongs to (see :data:`PROFILE_LAYERS`); ``other`` for the rest."""
    for layer, marks in PROFILE_LAYERS:
        if any(mark in function for mark in marks):
            return layer
    return "other"


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
    layers: dict[str, float] = {}
    for r in rows:
        layer = layer_of(r["function"])
        layers[layer] = layers.get(layer, 0.0) + r["tottime_share"]
    rows.sort(key=lambda r: -r["tottime_s"])
    return {
        "total_s": total,
        "idle_s": idle,
        "busy_s": busy,
        "rows": rows[:top],
        "layers": layers,
        "httpcore_assign_cumtime_s": sum(r["cumtime_s"] for r in pool),
    }


def _http_trigger_class() -> Any:
    """``HttpSensorTrigger`` with the arguments ``HttpSensor(deferrable=True)`` gives it, for one status URL."""
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    def make(workflow_id: str, execution_id: str, poll_interval: float) -> Any:
        return HttpSensorTrigger(
            endpoint=f"/v1/{PROJECT_ID}/cms/workflow/{workflow_id}/executions/{execution_id}/status",
            http_conn_id=HTTP_CONN_ID,
            method="GET",
            headers={"X-Auth-Token": STATIC_TOKEN},
            poke_interval=poll_interval,
        )

    return make


#: The httpcore pools ``--pool httpcore`` built (one per endpoint host): proof that the swap took effect.
HTTPCORE_POOLS: list[Any] = []


def use_httpcore_pool(transport_class: Any) -> None:
    """``--pool httpcore``: every endpoint host of ``AsyncTransport`` served by ``httpcore.AsyncConnectionPool``.

    The transport already sends through such a pool for a proxied endpoint (its per-host stack cannot
    tunnel); this gives every host one, built from the same arguments (``max_connections`` and
    ``max_keepalive_connections`` 128, ``keepalive_expiry``) on the same network backend, and lifts the
    transport's slot semaphore so that the pool, not the stack's slots, queues the requests beyond 128.
    """
    import asyncio

    import httpcore

    module = sys.modules[transport_class.__module__]
    hosts, pool_kwargs = module._HostConnections, module._pool_kwargs
    original_init = hosts.__init__

    def init(self: Any, endpoint: Any, size: int) -> None:
        original_init(self, endpoint, size)
        if self.proxied is None:
            self.proxied = httpcore.AsyncConnectionPool(**pool_kwargs(endpoint, size), network_backend=self.backend)
            self.slots = asyncio.Semaphore(2**30)
            HTTPCORE_POOLS.append(self.proxied)

    hosts.__init__ = init


def _status(payload: Any) -> str:
    """Our events carry a status; HttpSensorTrigger's payload is ``True``."""
    return str(payload["status"]) if isinstance(payload, dict) else f"event {payload!r}"


def worker(args: argparse.Namespace) -> int:
    import asyncio
    import gc

    import psutil

    events_out = os.fdopen(args.event_fd, "w", buffering=1)

    def emit(kind: str, **data: Any) -> None:
        events_out.write(json.dumps({"event": kind, "time": time.time(), "cpu": time.process_time(), **data}) + "\n")

    import airflow.sdk  # noqa: F401  (loaded first, as in a triggerer)

    from airflow_provider_aom import auth_flow, transport
    from airflow_provider_aom.auth.tokens import TOKEN_CACHE
    from airflow_provider_aom.triggers.aom import AomWorkflowExecutionTrigger

    trigger_class = {
        "shared": lambda: AomWorkflowExecutionTrigger,
        "naive": _naive_trigger_class,
        "http": _http_trigger_class,
    }[args.mode]()

    # Instrumentation only: count the TCP connections the loop opens (httpcore/httpx/aiohttp connect through
    # loop.create_connection), with their times, to show how often a connection is (re)opened.
    connects: list[float] = []
    original_create_connection = asyncio.base_events.BaseEventLoop.create_connection

    async def counting_create_connection(self: Any, *a: Any, **kw: Any) -> Any:
        connects.append(time.time())
        return await original_create_connection(self, *a, **kw)

    asyncio.base_events.BaseEventLoop.create_connection = counting_create_connection  # type: ignore[method-assign]

    # Instrumentation only: every request's wait for a socket slot of its host (0 when one was free).
    slot_waits: list[tuple[float, float]] = []
    original_acquire = transport.AsyncTransport._acquire

    async def timed_acquire(self: Any, slots: asyncio.Semaphore, *a: Any) -> None:
        if not slots.locked():
            slot_waits.append((time.time(), 0.0))
            return await original_acquire(self, slots, *a)
        started = time.monotonic()
        try:
            return await original_acquire(self, slots, *a)
        finally:
            slot_waits.append((time.time(), time.monotonic() - started))

    transport.AsyncTransport._acquire = timed_acquire  # type: ignore[method-assign,assignment]
    if args.pool == "httpcore":
        use_httpcore_pool(transport.AsyncTransport)
    me = psutil.Process()
    emit("ready")
    job = json.loads(sys.stdin.readline())

    async def wait(execution_id: str, workflow_id: str) -> list[str]:
        trigger = trigger_class(workflow_id=workflow_id, execution_id=execution_id, poll_interval=args.poll)
        return [_status(event.payload) async for event in trigger.run()]

    async def until_stopped(execution_id: str, workflow_id: str, stop_at: float) -> list[str]:
        """A wait that never ends by itself (``--mode http``), stopped at ``stop_at`` (epoch seconds)."""
        task = asyncio.ensure_future(wait(execution_id, workflow_id))
        done, _ = await asyncio.wait([task], timeout=max(0.0, stop_at - time.time()))
        if done:
            return task.result()
        task.cancel()
        return ["polling"]

    async def main() -> dict[str, Any]:
        if args.mode == "http":
            # Modules, the connection, aiohttp: one trigger polls once, then is stopped.
            warm = await until_stopped(job["warm_id"], WARM_WORKFLOW, time.time() + 1.0)
        else:
            warm = await wait(job["warm_id"], WARM_WORKFLOW)
        # The N waits must get their token themselves (concurrently): forget the warm-up's.
        TOKEN_CACHE.clear()
        auth_flow.RESOLVED.clear()
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
        if args.mode == "http":
            stop_at = time.time() + args.duration
            tasks = [asyncio.create_task(until_stopped(eid, WORKFLOW, stop_at)) for eid in job["ids"]]
        else:
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
        outcome = {
            "warm": warm,
            "statuses": statuses,
            "cpu_samples": samples,
            "connects": connects,
            "package": package,
            "max_connections_per_host": transport.MAX_CONNECTIONS_PER_HOST,
            "slot_waits": slot_waits,
            "httpcore_pools": len(HTTPCORE_POOLS),
        }
        if profiler is not None:
            outcome["profile"] = top_own_time(profiler)
            if os.environ.get("BENCH_PSTATS"):  # the whole profile, for pstats / snakeviz
                profiler.dump_stats(os.environ["BENCH_PSTATS"])
        return outcome

    outcome = asyncio.run(main())
    Path(args.result_file).write_text(json.dumps(outcome))
    emit("exit")
    return 0


# ============================================================================ parent


class Sampler(threading.Thread):
    """Samples the worker's RSS and TCP sockets and the emulator's CPU time every ``interval`` s (from outside)."""

    def __init__(self, pid: int, server_pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.server = psutil.Process(server_pid)
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                t = time.time()
                rss = self.proc.memory_info().rss
                conns = self.proc.net_connections(kind="tcp")
                server = self.server.cpu_times()
            except Exception:
                return
            established = sum(1 for c in conns if c.status == "ESTABLISHED")
            self.samples.append(
                {
                    "time": t,
                    "rss": rss,
                    "tcp": len(conns),
                    "tcp_established": established,
                    "server_cpu": server.user + server.system,
                }
            )
            self.halt.wait(self.interval)


def analyse(
    args: argparse.Namespace,
    events: dict[str, dict[str, Any]],
    outcome: dict[str, Any],
    samples: list[dict[str, Any]],
    log: list[dict[str, Any]],
    begin: dict[str, float],
    ids: list[str],
) -> dict[str, Any]:
    """The figures of one run; ``begin`` is when each execution began (epoch seconds)."""
    n = len(ids)
    launched, done = events["launched"]["time"], events["done"]["time"]
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

    start = max(launched + args.poll, launched + first_round_done + args.poll / 2) if first_polls else math.inf
    window = (start, first_end - WINDOW_END_MARGIN)
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
    # The emulator's CPU, sampled by the parent over (almost) the same window: cores it kept busy.
    server_share = math.nan
    if len(in_window) >= 2 and in_window[-1]["time"] > in_window[0]["time"]:
        first, last = in_window[0], in_window[-1]
        server_share = (last["server_cpu"] - first["server_cpu"]) / (last["time"] - first["time"])
    acquired = [w for t, w in outcome.get("slot_waits", []) if window[0] <= t <= window[1]]
    slot_waits = [w for w in acquired if w > 0]
    total_requests = sum(actual.values())
    min_requests = sum(minimum.values())
    nominal_per_execution = math.ceil(args.duration / args.poll) + 1
    nominal_requests = n * nominal_per_execution
    peak_rss = max((s["rss"] for s in during), default=math.nan)
    total_cpu = events["done"]["cpu"] - events["launched"]["cpu"]
    polls_due = n * steady["seconds"] / args.poll
    cpu_us = steady["cpu_s"] / steady["requests"] * 1e6 if steady["requests"] else math.nan

    def per_round(cpu: float, reqs: int) -> float:
        return cpu / reqs * n if reqs else math.nan

    return {
        "n": n,
        "mode": args.mode,
        "pool": args.pool,
        "httpcore_pools": outcome.get("httpcore_pools", 0),
        "duration_s": args.duration,
        "poll_interval_s": args.poll,
        "answer_delay_s": args.answer_delay,
        "answer_delay_ms": round(args.answer_delay * 1000),
        "max_connections_per_host": outcome.get("max_connections_per_host"),
        "sample_interval_s": SAMPLE_INTERVAL,
        "window_end_margin_s": WINDOW_END_MARGIN,
        "nominal_requests_per_execution": nominal_per_execution,
        "package": outcome["package"],
        "profile": outcome.get("profile"),
        "statuses": outcome["statuses"],
        "all_success": outcome["statuses"] == {EXPECTED[args.mode]: n},
        "waits_without_success": n - outcome["statuses"].get(EXPECTED[args.mode], 0),
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
        "cpu_us_per_request_steady": cpu_us,
        "cpu_ms_per_poll_steady": cpu_us / 1000,
        "waits_per_core_15s": 15.0 / (cpu_us * 1e-6) if cpu_us else math.nan,
        "worker_cpu_share_steady": steady["cpu_s"] / steady["seconds"] if steady["seconds"] else math.nan,
        "server_cpu_us_per_request_steady": server_share * steady["seconds"] / steady["requests"] * 1e6
        if steady["requests"]
        else math.nan,
        "server_cpu_share_steady": server_share,
        "cpu_total_s": total_cpu,
        "steady": steady,
        "polls_due_steady": polls_due,
        "polls_done_steady": steady["requests"],
        "polls_done_ratio": steady["requests"] / polls_due if polls_due else math.nan,
        "polls_done_ratio_ideal": args.poll / (args.poll + args.answer_delay),
        "slot_wait_share": len(slot_waits) / len(acquired) if acquired else math.nan,
        "slot_wait_ms_mean": statistics.fmean(slot_waits) * 1000 if slot_waits else 0.0,
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
        workflows = [f"{WORKFLOW}:success:{args.duration:g}", f"{WARM_WORKFLOW}:success:0"]
        try:
            with Emulator(workflows, answer_delay=args.answer_delay) as emu:
                assert emu.proc is not None
                env = bench_env(home, AIRFLOW_CONN_AOM_DEFAULT=conn_json(emu.base_url, "password"))
                host, port = emu.base_url.removeprefix("http://").split(":")
                http_conn = {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
                env[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = json.dumps(http_conn)
                read_fd, write_fd = os.pipe()
                cmd = [sys.executable, __file__, "--worker", "--mode", args.mode, "--poll", str(args.poll)]
                cmd += ["--duration", str(args.duration), "--pool", args.pool]
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
                        event: dict[str, Any] = json.loads(line)
                        events[event["event"]] = event
                        if event["event"] == expected:
                            return event

                next_event("ready")
                sampler = Sampler(proc.pid, emu.proc.pid)
                if args.mode == "http":
                    # Executions that do not exist: the status URL answers 404, so HttpSensorTrigger keeps polling.
                    warm_id, ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(args.n)]
                else:
                    warm_id = emu.start_executions(WARM_WORKFLOW, 1)[0]
                    ids = emu.start_executions(WORKFLOW, args.n)
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"warm_id": warm_id, "ids": ids}) + "\n")
                proc.stdin.flush()
                next_event("baseline")
                sampler.start()
                launched = next_event("launched")["time"]
                next_event("done")
                sampler.halt.set()
                sampler.join(5)
                next_event("exit")
                proc.wait(30)
                outcome = json.loads(Path(result_file).read_text())
                log = emu.requests_log()
                if args.mode == "http":
                    begin = dict.fromkeys(ids, launched)
                else:
                    wanted = set(ids)
                    begin = {e["execution_id"]: e["begin_time"] / 1000 for e in emu.executions()}
                    begin = {eid: b for eid, b in begin.items() if eid in wanted}
            result = analyse(args, events, outcome, sampler.samples, log, begin, ids)
            result["command"] = command(args)
            write_json(args.json_out, result)
            # A wait the httpcore pool could not serve in time is a result of that comparison, not a failure.
            return 0 if result["all_success"] or args.pool == "httpcore" else 1
        except Exception:
            worker_log.flush()
            tail = Path(worker_log.name).read_text()[-3000:]
            print(f"waits: worker log tail:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop(proc)
            worker_log.close()


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options at their defaults left out)."""
    text = f"python bench/waits.py --n {args.n} --mode {args.mode}"
    text += f" --answer-delay {args.answer_delay:g}" if args.answer_delay else ""
    text += f" --duration {args.duration:g}" if args.duration != DEFAULT_DURATION else ""
    text += f" --poll {args.poll:g}" if args.poll != DEFAULT_POLL else ""
    text += f" --pool {args.pool}" if args.pool != "stack" else ""
    return text + (" --profile" if args.profile else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="concurrent waits")
    parser.add_argument("--mode", choices=sorted(EXPECTED), default="shared")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="seconds each execution runs")
    parser.add_argument("--poll", type=float, default=DEFAULT_POLL, help="trigger poll interval, seconds")
    parser.add_argument("--answer-delay", type=float, default=0.0, help="seconds the emulator holds each AOM answer")
    parser.add_argument(
        "--pool",
        choices=("stack", "httpcore"),
        default="stack",
        help="connection handling of --mode shared: the transport's stack, or httpcore.AsyncConnectionPool",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile the worker during the wait (slower)")
    parser.add_argument("--json-out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--event-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pool != "stack" and args.mode != "shared":
        parser.error("--pool applies to --mode shared only")
    return worker(args) if args.worker else parent(args)


if __name__ == "__main__":
    sys.exit(main())
