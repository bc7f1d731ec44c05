"""A real triggerer: N deferred AOM tasks held by one ``airflow triggerer`` process of the production cluster.

Starts ``scripts/cluster.py``'s deployment (PostgreSQL, Redis, CeleryExecutor, api-server, scheduler,
dag-processor) with ONE triggerer and ``--workers`` Celery workers, the DAG ``bench/dags/aom_triggerer_bench.py``
and an ``aom_default`` connection with password (IAM token) auth and no project id, to an emulator this script
starts (``--pattern-workflows``: ``wf-slow-*`` never ends, ``wf-ok-*`` succeeds after 3 s). Then:

1. **cold idle**: the triggerer as started, no trigger yet: its session (the ``airflow triggerer`` supervisor and
   the trigger-runner child it forks) is sampled for ``--idle`` s;
2. **warm-up**: a run of ``--warmup`` mapped ``wf-ok-*`` waits (1 s poll) goes through the triggerer, which
   imports the provider's async stack, opens its pool and gets a token, as any triggerer that has served AOM
   waits before; then **warm idle** (no trigger) for ``--idle`` s: the baseline of the memory figures;
3. **arrival**: a run of N mapped ``wf-slow-*`` waits; the workers submit the N executions and defer one after
   the other to this triggerer (N task instances ``deferred``, N triggers held by it); then a steady window;
4. **restart**: the triggerer is stopped (SIGTERM, a graceful stop) and started again: a fresh process takes all
   N triggers at once. The workers are idle by then, so every IAM call in the emulator's log after the restart
   is the triggerer's; then a second steady window.

Steady windows as ``bench/waits.py`` defines them: from one poll interval after the first status poll, or half an
interval after the last trigger's first poll if that is later (arrival: half an interval after the last
trigger's first poll), for ``--window`` s. Figures (the triggerer's session sampled by this process with psutil
every 0.5 s, from outside), each window's under ``arrival`` and ``restart`` in the result:

* RSS per deferred task = (median session RSS in the steady window - median RSS in the warm idle window) / N,
  also per process (supervisor, trigger runner) and against the cold idle triggerer (which adds the one-time
  import of the provider's async stack). Arrival: the same process grew by that much; restart: a different
  process of the same code and configuration, which took the N triggers in one burst;
* CPU per poll = session CPU time (user + system, every process) in the steady window / status requests the
  emulator served in it (only the triggerer polls then); "net" first takes off the warm idle triggerer's CPU
  rate over the window (heartbeats, trigger table checks);
* polls due = N x window / poll interval; polls done = status requests served in the window;
* sockets = distinct TCP connections of the session (peak from the phase's start to the window's end, and median
  in the window), also split into those to the AOM endpoint and to PostgreSQL;
* IAM calls = ``POST /v3/auth/tokens`` in the emulator's log after the restart (the arrival's are the workers':
  one per task process, each with a token cache of its own).

``--trigger noop`` is the reference: the same sequence with N ``TimeDeltaSensor(deferrable=True)`` tasks of a day
(and a warm-up of one-minute ones), which defer to Airflow's own ``DateTimeTrigger``: it logs and sleeps, so it
shows what any deferred task costs a triggerer (the supervisor's per-trigger state and log file, the runner's
task and workload) and, against it, what an AOM wait adds.

Everything started is stopped at the end (and on SIGTERM); the result is one JSON object (``--json-out`` or
stdout), progress goes to stderr.

    python bench/triggerer.py --n 300
    python bench/triggerer.py --n 50 --window 30     # the --quick variant of bench/run.py
    python bench/triggerer.py --n 300 --trigger noop  # the reference
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import signal
import statistics
import sys
import threading
import time
import urllib.error
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from cluster import Cluster, ClusterConfig, ClusterError, install_signal_handlers, session_processes, wait_for
from common import Emulator, conn_json, iam_token_calls, write_json

BENCH_DIR = Path(__file__).resolve().parent
DAG_FILE = BENCH_DIR / "dags" / "aom_triggerer_bench.py"
DAG_ID = "aom_triggerer_bench"
#: What the N deferred tasks wait with: ours, or the reference (Airflow's own trigger that only sleeps).
TRIGGERS = {
    "aom": "airflow_provider_aom.triggers.aom.AomWorkflowExecutionTrigger",
    "noop": "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
}
TRIGGERER = "triggerer-1"
#: Seconds between two samples of the triggerer's session.
SAMPLE_INTERVAL = 0.5
#: Seconds the cluster is left alone before an idle window (after start-up, after the warm-up).
SETTLE = 10.0
UNFINISHED = ("scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "restarting", None)


def say(text: str) -> None:
    print(f"triggerer-bench: {text}", file=sys.stderr, flush=True)


# ============================================================================ sampling


class Sampler(threading.Thread):
    """Samples the triggerer's session (whatever process it is now) every ``interval`` s: per process RSS and CPU
    time, and the session's distinct TCP connections."""

    def __init__(self, cluster: Cluster, aom_port: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.aom_port = aom_port
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                sample = self.sample()
            except Exception:  # a process that went away mid-sample: take the next one
                self.errors += 1
                sample = None
            if sample is not None:
                self.samples.append(sample)
            self.halt.wait(self.interval)

    def sample(self) -> dict[str, Any] | None:
        component = self.cluster.components.get(TRIGGERER)
        if component is None or not component.alive or component.proc is None:
            return None
        sid = component.proc.pid
        t = time.time()
        rss: dict[int, int] = {}
        cpu: dict[int, float] = {}
        conns: set[tuple[Any, Any]] = set()
        aom = db = 0
        for proc in session_processes(sid):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                rss[proc.pid] = proc.memory_info().rss
                cpu[proc.pid] = times.user + times.system
                for conn in proc.net_connections(kind="tcp"):
                    key = (tuple(conn.laddr) if conn.laddr else None, tuple(conn.raddr) if conn.raddr else None)
                    if key in conns:  # a socket a forked child shares with its parent counts once
                        continue
                    conns.add(key)
                    port = conn.raddr.port if conn.raddr else None
                    aom += port == self.aom_port
                    db += port == self.cluster.pg_port
        if not rss:
            return None
        runner = sum(v for pid, v in rss.items() if pid != sid)
        return {
            "time": t,
            "sid": sid,
            "rss": sum(rss.values()),
            "rss_runner": runner,
            "cpu": cpu,
            "tcp": len(conns),
            "tcp_aom": aom,
            "tcp_db": db,
            "processes": len(rss),
        }

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if start <= s["time"] <= end]


def cpu_delta(first: dict[str, Any], last: dict[str, Any], runner_only: bool = False) -> float:
    """CPU seconds the session used between two samples (a process that appeared in between counts in full)."""
    pids = [pid for pid in last["cpu"] if not (runner_only and pid == last["sid"])]
    return float(sum(last["cpu"][pid] - first["cpu"].get(pid, 0.0) for pid in pids))


def median_of(samples: list[dict[str, Any]], key: str) -> float:
    return statistics.median(s[key] for s in samples) if samples else math.nan


def idle_figures(samples: list[dict[str, Any]]) -> dict[str, float]:
    """RSS (median) and CPU rate of an idle window."""
    seconds = samples[-1]["time"] - samples[0]["time"] if len(samples) >= 2 else 0.0
    if not seconds:
        return {"rss": math.nan, "rss_runner": math.nan, "cores": math.nan, "cores_runner": math.nan}
    return {
        "rss": median_of(samples, "rss"),
        "rss_runner": median_of(samples, "rss_runner"),
        "cores": cpu_delta(samples[0], samples[-1]) / seconds,
        "cores_runner": cpu_delta(samples[0], samples[-1], runner_only=True) / seconds,
    }


# ============================================================================ the cluster


def wait_for_dag(cluster: Cluster, timeout: float = 300) -> None:
    """Until the dag-processor has parsed the DAG (unpaused, should it be paused)."""

    def ready() -> bool:
        try:
            dag = cluster.api("GET", f"/api/v2/dags/{DAG_ID}")
        except (urllib.error.URLError, OSError):
            errors = cluster.api("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise ClusterError(f"the benchmark DAG does not parse: {errors}") from None
            return False
        if dag.get("is_paused"):
            cluster.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
            return False
        return True

    wait_for(ready, timeout, f"the DAG {DAG_ID} to be parsed", interval=2)


def trigger(cluster: Cluster, run_id: str, conf: dict[str, Any]) -> None:
    cluster.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})


def wait_states(cluster: Cluster, run_id: str, task_id: str = "wait") -> Counter[str | None]:
    """States of the run's mapped task instances of ``task_id``."""
    rows = cluster.query(
        "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s GROUP BY state",
        (DAG_ID, run_id, task_id),
    )
    return Counter({state: int(count) for state, count in rows})


def run_state(cluster: Cluster, run_id: str) -> str | None:
    rows = cluster.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id))
    return str(rows[0][0]) if rows else None


def count_triggers(cluster: Cluster, triggerer_job: int | None = None) -> int:
    if triggerer_job is None:
        return int(cluster.query("SELECT count(*) FROM trigger")[0][0])
    return int(cluster.query("SELECT count(*) FROM trigger WHERE triggerer_id = %s", (triggerer_job,))[0][0])


def await_run(cluster: Cluster, run_id: str, n: int, done: str, timeout: float, task_id: str = "wait") -> float:
    """Until all ``n`` mapped tasks are ``done`` (``success`` or ``deferred``); returns the seconds it took."""
    began, last_report = time.monotonic(), 0.0

    def reached() -> bool:
        nonlocal last_report
        states = wait_states(cluster, run_id, task_id)
        if run_state(cluster, run_id) == "failed" or states.get("failed") or states.get("upstream_failed"):
            raise ClusterError(f"run {run_id} failed: {dict(states)}")
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            say(f"run {run_id}: {dict(states)} after {last_report - began:.0f} s")
        return states.get(done, 0) == n and not any(states.get(s) for s in UNFINISHED)

    wait_for(reached, timeout, f"{n} tasks of {run_id} to be {done}", interval=2)
    return time.monotonic() - began


# ============================================================================ the benchmark


def status_polls(log: list[dict[str, Any]], ids: set[str], since: float) -> dict[str, list[float]]:
    """Times of the status requests of each execution in ``ids`` served from ``since`` on."""
    polls: dict[str, list[float]] = {eid: [] for eid in ids}
    for record in log:
        if record["time"] >= since and record["method"] == "GET" and record["path"].endswith("/status"):
            eid = record["path"].split("/")[-2]
            if eid in polls:
                polls[eid].append(record["time"])
    return polls


class Phase:
    """One steady window of the triggerer holding the N deferred tasks."""

    def __init__(self, name: str, since: float) -> None:
        self.name = name
        self.since = since  # the emulator's log and the samples count from here (the run's trigger, the restart)
        self.start = self.end = math.nan
        self.launched = self.last_first = math.nan


def await_window(args: argparse.Namespace, emu: Emulator, ids: set[str], phase: Phase, held_at: float) -> None:
    """Open ``phase``'s steady window as ``bench/waits.py`` does: one poll interval after the first status poll, or
    half an interval after the last trigger's first poll if later (the reference, which does not poll: one poll
    interval after every trigger was held); sleep until it has passed."""
    if args.trigger == "aom":

        def first_polls() -> dict[str, float] | None:
            polls = status_polls(emu.requests_log(), ids, phase.since)
            return {eid: min(t) for eid, t in polls.items() if t} if all(polls.values()) else None

        firsts = wait_for(first_polls, 60 + args.n / 10, f"every one of the {len(ids)} triggers to poll once", 1.0)
        phase.launched, phase.last_first = min(firsts.values()), max(firsts.values())
    else:
        phase.launched = phase.last_first = held_at
    phase.start = max(phase.launched + args.poll, phase.last_first + args.poll / 2)
    if phase.name == "arrival":  # the tasks arrived over minutes: the window waits for the last one only
        phase.start = phase.last_first + args.poll / 2 if args.trigger == "aom" else held_at + args.poll / 2
    phase.end = phase.start + args.window
    say(f"{phase.name}: window from {phase.start - phase.since:.0f} to {phase.end - phase.since:.0f} s after its start")
    time.sleep(max(0.0, phase.end - time.time()) + 2 * SAMPLE_INTERVAL)


def window_figures(
    args: argparse.Namespace,
    sampler: Sampler,
    log: list[dict[str, Any]],
    ids: set[str],
    phase: Phase,
    baselines: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """RSS, CPU per poll, polls and sockets of one steady window."""
    window = sampler.between(phase.start, phase.end)
    held = sampler.between(phase.since, phase.end)
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} samples of the triggerer in the {phase.name} window")
    first, last = window[0], window[-1]
    seconds = last["time"] - first["time"]
    polls = status_polls(log, ids, phase.since)
    done = sum(1 for times in polls.values() for t in times if first["time"] <= t < last["time"])
    errors = sum(
        1
        for r in log
        if first["time"] <= r["time"] < last["time"] and r["path"].endswith("/status") and r["status"] != 200
    )
    cpu, cpu_runner = cpu_delta(first, last), cpu_delta(first, last, runner_only=True)
    rss, rss_runner = median_of(window, "rss"), median_of(window, "rss_runner")
    warm, cold = baselines["warm"], baselines["cold"]
    due = args.n * seconds / args.poll if args.trigger == "aom" else math.nan

    def per_poll(value: float) -> float:
        return value / done * 1000 if done else math.nan

    return {
        "steady_window_s": [phase.start - phase.since, phase.end - phase.since],
        "steady_window": f"{phase.start - phase.since:.0f} to {phase.end - phase.since:.0f}",
        "steady_seconds": seconds,
        "steady_samples": len(window),
        "first_round_s": phase.last_first - phase.launched,
        "steady_rss_mb": rss / 2**20,
        "steady_rss_runner_mb": rss_runner / 2**20,
        "peak_rss_mb": max(s["rss"] for s in held) / 2**20,
        "kb_per_task": (rss - warm["rss"]) / args.n / 1024,
        "kb_per_task_runner": (rss_runner - warm["rss_runner"]) / args.n / 1024,
        "kb_per_task_supervisor": (rss - rss_runner - warm["rss"] + warm["rss_runner"]) / args.n / 1024,
        "kb_per_task_cold": (rss - cold["rss"]) / args.n / 1024,
        "cpu_s_steady": cpu,
        "steady_cores": cpu / seconds if seconds else math.nan,
        "cpu_ms_per_poll": per_poll(cpu),
        "cpu_ms_per_poll_runner": per_poll(cpu_runner),
        "cpu_ms_per_poll_net": per_poll(cpu - warm["cores"] * seconds),
        "cpu_ms_per_poll_runner_net": per_poll(cpu_runner - warm["cores_runner"] * seconds),
        "polls_due": due,
        "polls_done": done,
        "polls_done_ratio": done / due if due else math.nan,
        "status_errors": errors,
        "sockets_peak": max(s["tcp"] for s in held),
        "sockets_median": median_of(window, "tcp"),
        "sockets_aom_peak": max(s["tcp_aom"] for s in held),
        "sockets_aom_median": median_of(window, "tcp_aom"),
        "sockets_db_median": median_of(window, "tcp_db"),
    }


def measure(args: argparse.Namespace, cluster: Cluster, emu: Emulator, began: float) -> dict[str, Any]:
    aom_port = int(emu.base_url.rsplit(":", 1)[1])
    tag = secrets.token_hex(3)
    sampler = Sampler(cluster, aom_port)
    sampler.start()
    result: dict[str, Any] = {
        "n": args.n,
        "trigger": TRIGGERS[args.trigger],
        "poll_interval_s": args.poll,
        "window_s": args.window,
        "idle_s": args.idle,
        "warmup_tasks": args.warmup,
        "workers": args.workers,
        "worker_concurrency": args.concurrency,
        "sample_interval_s": SAMPLE_INTERVAL,
        "cluster_start_s": time.monotonic() - began,
    }
    wait_for_dag(cluster)
    component = cluster.components[TRIGGERER]
    assert component.proc is not None
    result["processes"] = [
        {"pid": p.pid, "leader": p.pid == component.proc.pid, "cmdline": " ".join(p.cmdline())[:120]}
        for p in session_processes(component.proc.pid)
    ]
    baselines: dict[str, dict[str, float]] = {}

    # 1. The triggerer as started: no trigger has run in it yet.
    time.sleep(SETTLE)
    t0 = time.time()
    time.sleep(args.idle)
    baselines["cold"] = cold = idle_figures(sampler.between(t0, time.time()))
    say(f"cold idle: session RSS {cold['rss'] / 2**20:.1f} MB, {cold['cores']:.3f} cores")

    # 2. Warm-up: a few waits go through it; then it is idle again. The reference's warm-up runs its own trigger
    # (so neither baseline holds what the other's import adds).
    warm_run, task_id = f"warmup-{tag}", "wait" if args.trigger == "aom" else "sleep"
    warm_conf = {"n": args.warmup, "kind": "ok" if args.trigger == "aom" else "noop", "tag": tag, "poll": 1}
    trigger(cluster, warm_run, {**warm_conf, "minutes": 1})
    result["warmup_s"] = await_run(cluster, warm_run, args.warmup, "success", 300, task_id)
    wait_for(lambda: count_triggers(cluster) == 0, 60, "the warm-up's triggers to go")
    time.sleep(SETTLE)
    t0 = time.time()
    time.sleep(args.idle)
    baselines["warm"] = warm = idle_figures(sampler.between(t0, time.time()))
    say(f"warm idle: session RSS {warm['rss'] / 2**20:.1f} MB, {warm['cores']:.3f} cores")

    # 3. Arrival: the workers submit the N executions and defer, one after the other, to this triggerer.
    main_run = f"bench-{tag}"
    arrival = Phase("arrival", time.time())
    kind = "slow" if args.trigger == "aom" else "noop"
    trigger(cluster, main_run, {"n": args.n, "kind": kind, "tag": tag, "poll": args.poll})
    result["submit_s"] = await_run(cluster, main_run, args.n, "deferred", args.submit_timeout, task_id)
    job = component.job_id
    wait_for(lambda: count_triggers(cluster, job) == args.n, 120, f"the triggerer to hold {args.n} triggers")
    held_at = time.time()
    say(f"{args.n} tasks deferred in {result['submit_s']:.0f} s, all held by the triggerer")
    prefix = f"wf-slow-{tag}-"
    executions = [e for e in emu.executions() if str(e.get("workflow_id", "")).startswith(prefix)]
    ids = {str(e["execution_id"]) for e in executions}
    result["executions"] = len(executions)
    result["workflows_with_several_executions"] = sum(
        1 for c in Counter(e["workflow_id"] for e in executions).values() if c > 1
    )
    await_window(args, emu, ids, arrival, held_at)
    result["triggers_held"] = count_triggers(cluster, job)

    # 4. Restart: SIGTERM, then a fresh triggerer takes all N at once. The workers are idle now, so every IAM
    # call from here on is the triggerer's.
    stopping = time.monotonic()
    cluster.kill(TRIGGERER, signal.SIGTERM)
    result["triggerer_stop_s"] = time.monotonic() - stopping
    restart = Phase("restart", time.time())
    cluster.restart(TRIGGERER)
    job = component.job_id
    wait_for(lambda: count_triggers(cluster, job) == args.n, 120, f"the new triggerer to take {args.n} triggers")
    result["pickup_s"] = time.time() - restart.since
    await_window(args, emu, ids, restart, time.time())
    result["triggers_held_restart"] = count_triggers(cluster, job)
    result["tasks_deferred"] = wait_states(cluster, main_run, task_id).get("deferred", 0)
    sampler.halt.set()
    sampler.join(10)
    log = emu.requests_log()

    # 5. Figures.
    result["arrival"] = window_figures(args, sampler, log, ids, arrival, baselines)
    result["restart"] = window_figures(args, sampler, log, ids, restart, baselines)
    after = [r for r in log if r["time"] >= restart.since]
    result.update(
        {
            "idle_cold_rss_mb": cold["rss"] / 2**20,
            "idle_cold_rss_runner_mb": cold["rss_runner"] / 2**20,
            "idle_cold_cores": cold["cores"],
            "idle_rss_mb": warm["rss"] / 2**20,
            "idle_rss_runner_mb": warm["rss_runner"] / 2**20,
            "idle_cores": warm["cores"],
            "idle_cores_runner": warm["cores_runner"],
            "sockets_peak": max(result["arrival"]["sockets_peak"], result["restart"]["sockets_peak"]),
            "iam_calls_triggerer": iam_token_calls(after),
            "iam_other_calls_triggerer": sum(
                1 for r in after if r["path"].startswith("/v3/") and not r["path"].startswith("/v3/auth/tokens")
            ),
            "iam_calls_arrival": iam_token_calls([r for r in log if arrival.since <= r["time"] < restart.since]),
            "sampler_errors": sampler.errors,
        }
    )
    return result


def leftovers(cluster: Cluster, grace: float = 15.0) -> list[int]:
    """Pids of anything the cluster started that is still alive ``grace`` s after ``stop`` (zombies aside)."""

    def alive() -> list[int]:
        procs = [p for c in cluster.components.values() if c.proc is not None for p in session_processes(c.proc.pid)]
        if cluster.pg_pid is not None and psutil.pid_exists(cluster.pg_pid):
            with contextlib.suppress(psutil.Error):
                postmaster = psutil.Process(cluster.pg_pid)
                if cluster.pg_bin is not None and postmaster.exe().startswith(str(cluster.pg_bin)):
                    procs += [postmaster, *postmaster.children(recursive=True)]
        found = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
        return found

    deadline = time.monotonic() + grace
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def command(args: argparse.Namespace) -> str:
    text = f"python bench/triggerer.py --n {args.n}" + (f" --trigger {args.trigger}" if args.trigger != "aom" else "")
    defaults = {"poll": 15.0, "window": 60.0, "idle": 20.0, "warmup": 5, "workers": 2, "concurrency": 4}
    for name, default in defaults.items():
        value = getattr(args, name)
        text += f" --{name} {value:g}" if value != default else ""
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="deferred AOM tasks (mapped, at most 1024)")
    parser.add_argument(
        "--trigger",
        choices=sorted(TRIGGERS),
        default="aom",
        help="aom: N AOM waits (the product); noop: N TimeDeltaSensor(deferrable=True), Airflow's reference",
    )
    parser.add_argument("--poll", type=float, default=15.0, help="poll_interval of the waits, seconds")
    parser.add_argument("--window", type=float, default=60.0, help="length of the steady window, seconds")
    parser.add_argument("--idle", type=float, default=20.0, help="length of each idle window, seconds")
    parser.add_argument("--warmup", type=int, default=5, help="wf-ok waits of the warm-up run")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers")
    parser.add_argument("--concurrency", type=int, default=4, help="task slots per Celery worker")
    parser.add_argument("--submit-timeout", type=float, default=0, help="seconds for the N tasks to defer")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's work directory (logs, DB)")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    if not 1 <= args.n <= 1024 or args.warmup < 1:
        raise SystemExit("--n must be 1 to 1024 (Airflow's max_map_length), --warmup at least 1")
    args.submit_timeout = args.submit_timeout or 120 + 4 * args.n
    install_signal_handlers()
    began = time.monotonic()
    emu = Emulator()
    emu.cmd.append("--pattern-workflows")
    cluster: Cluster | None = None
    try:
        emu.start()
        cluster = Cluster(
            ClusterConfig(
                keep=args.keep,
                dag_files=[DAG_FILE],
                aom_conn=conn_json(emu.base_url, "password"),
                triggerers=1,
                workers=args.workers,
                worker_concurrency=args.concurrency,
                extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"},
            )
        )
        cluster.start()
        say(f"cluster ready in {time.monotonic() - began:.0f} s ({cluster.workdir})")
        result = measure(args, cluster, emu, began)
    except ClusterError as exc:
        say(str(exc))
        if cluster is not None:
            for name, text in cluster.log_tails(20):
                say(f"--- tail of {name}\n{text}")
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
        emu.stop()
    left = leftovers(cluster)
    result["leftover_processes"] = len(left)
    result["seconds"] = time.monotonic() - began
    result["command"] = command(args)
    say(f"done in {result['seconds']:.0f} s; {len(left)} processes left behind {left}")
    write_json(args.json_out, result)
    held = result["triggers_held"] == result["triggers_held_restart"] == result["tasks_deferred"] == args.n
    return 0 if not left and held else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
