"""``make chaos``: a seeded chaos campaign against the ``make cluster`` deployment.

Starts the cluster (``scripts/cluster.py``) with short failure-detection times and the DAG of
``tests/chaos/aom_chaos_dag.py``, triggers ``--runs`` DAG runs (``--parallel`` at a time), and meanwhile
SIGKILLs ``--kills`` times, at seeded moments, a triggerer, a Celery worker (its whole process tree) or the
scheduler, restarting each after a seeded delay (``--triggerer-signal TERM`` stops triggerers gracefully
instead, to measure the handover of a clean shutdown), and ``--stalls`` times SIGSTOPs a triggerer past its
health threshold, then SIGCONTs it (its triggers move, then it wakes up holding them). AOM-side faults, on the
emulator, planned among the kills at seeded places: ``--aom-blackholes`` (SIGSTOP: connections are accepted
and never answered), ``--aom-downs`` (stopped, then started again on the same port with its executions: its
``--state-file``), ``--aom-storms`` (a seeded share of the AOM calls answered 503 or 429 with Retry-After),
each for a seeded duration (``--aom-outage-seconds``, ``--aom-storm-seconds``), and ``--aom-skew`` (AOM's
clock off the hosts' by that many seconds, a seeded sign, for the whole run). Database and broker faults,
planned the same way: ``--pg-outages`` (PostgreSQL stopped with ``pg_ctl stop -m fast``, started again after a
seeded ``--pg-outage-seconds``), ``--pg-restarts`` (``pg_ctl restart -m fast``, no pause) and ``--redis-outages``
(Redis stopped, started again empty on its port after a seeded ``--redis-outage-seconds``); the campaign's own
queries skip the rounds they fail in meanwhile. Throughout, a supervisor starts again, after RESTART_SEC, any
component that exited without the campaign stopping it (as systemd's ``Restart=always``). Then it checks,
through the AOM API (the execution list of every workflow id, with the same ``aom_default`` connection as
the components) and the metadata DB:

- every task instance ended in its expected state (``success``, or ``failed`` for the timeouts), except one
  Airflow failed because its last try could not be sent to the broker during a Redis outage (``unsent_failures``);
- every ``wf-ok-*`` id has exactly one execution (a retry reattached instead of starting another);
- every ``wf-slow-*`` execution ended ``cancel``, at or after its deadline (a retry after an execution that
  ended ``cancel`` submits a new one, which must end the same way);
- no trigger is left, no task instance unfinished.

Prints a summary per run, then (on failure) the details and the components' log tails, and last one JSON
line: ``runs, tasks, kills, tasks_ok, tasks_wrong, duplicate_executions, lost_waits, terminated_on_deadline,
seconds``, ``faults`` (how many of each kind), ``aom_skew`` and ``by_fault``: per fault kind (and ``none``: tasks
no fault overlapped) the tasks it overlapped, their outcomes, their retries (task tries and the provider's
logged HTTP retries), the delay from each execution's end to its task's end and the deadline lateness of the
terminated ``wf-slow`` executions (median, max); ``supervisor_restarts`` (per component kind),
``unsent_failures``, ``skipped_during_outages``, ``stuck_in_queued_requeued``/``_failed`` and
``faults_not_made``. Exits 0 only when tasks_wrong, duplicate_executions and lost_waits are all 0.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import secrets
import signal
import statistics
import sys
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cluster import (
    CHAOS_SETTINGS,
    ROOT,
    Cluster,
    ClusterConfig,
    ClusterError,
    install_signal_handlers,
    session_processes,
    tail,
)

DAG_FILE = ROOT / "tests" / "chaos" / "aom_chaos_dag.py"
DAG_ID = "aom_chaos"
#: The DAG's ``timeout`` of the wf-slow tasks, seconds from the first submit.
SLOW_TIMEOUT = 20.0
#: A deadline is counted from just before the submit; AOM's begin_time is a little later.
DEADLINE_TOLERANCE = 1.0
KINDS = ("triggerer", "worker", "scheduler")
#: A triggerer SIGSTOPped past its health threshold, then SIGCONTed (``--stalls``).
STALL = "stall"
#: AOM-side faults on the emulator: frozen (SIGSTOP), stopped and started again, a storm of 503/429 answers.
AOM_BLACKHOLE = "aom-blackhole"
AOM_DOWN = "aom-down"
AOM_STORM = "aom-storm"
AOM_KINDS = (AOM_BLACKHOLE, AOM_DOWN, AOM_STORM)
#: Faults of the cluster's own services: PostgreSQL stopped then started again (``pg_ctl stop -m fast``), restarted
#: at once (``pg_ctl restart -m fast``), and Redis, the Celery broker, stopped then started again on its port.
PG_OUTAGE = "pg-outage"
PG_RESTART = "pg-restart"
REDIS_OUTAGE = "redis-outage"
SERVICE_KINDS = (PG_OUTAGE, PG_RESTART, REDIS_OUTAGE)
ALL_KINDS = (*KINDS, STALL, *AOM_KINDS, *SERVICE_KINDS)
#: Seconds the campaign's supervisor waits before it starts an exited component again (systemd's RestartSec=).
RESTART_SEC = 5.0
#: A database or broker fault is over once every component has run again this long without exiting.
SETTLE_SECONDS = 15.0
#: Seconds after a database or broker fault during which a failure of the campaign's own queries is still its.
OUTAGE_GRACE = 30.0
#: The scheduler's log line of a task it could not send to the broker (the Celery executor fails that try).
UNSENT = re.compile(
    r"^(\S+) \[error\s*\] Error sending Celery workload.*?\n(?:.*\n){0,3}?Celery Task ID: TaskInstanceKey\("
    r"dag_id='([^']*)', task_id='([^']*)', run_id='([^']*)', try_number=(\d+), map_index=(-?\d+)\)",
    re.MULTILINE,
)
#: Task → its upstream, for a task ``upstream_failed`` because its upstream could not be sent (the DAG's one edge).
UPSTREAM = {"sensor": "start"}
#: The AOM calls a storm answers (IAM is not AOM's gateway; AK/SK callers never call it anyway).
STORM_PATH = "^/v1/"
#: The provider's log line of one HTTP retry (airflow_provider_aom/retry.py).
RETRY_EVENT = re.compile(r"^Attempt \d+ failed \(.*\); retrying in [\d.]+ s\.$", re.DOTALL)
#: scripts/cluster.py's CHAOS_SETTINGS: seconds without a heartbeat before a triggerer's triggers move.
TRIGGERER_HEALTH_THRESHOLD = float(CHAOS_SETTINGS["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"])
#: Seconds a due kill may wait for its victim to hold something (a trigger, a running task).
KILL_PATIENCE = 30.0
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


def describe_execution(execution: dict[str, Any]) -> str:
    """``id status begin→end`` (UTC clock times) of an execution brief."""

    def clock(ms: Any) -> str:
        if not isinstance(ms, int) or ms <= 0:
            return "-"
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]

    return (
        f"{execution.get('execution_id')} {execution.get('status')} "
        f"{clock(execution.get('begin_time'))}→{clock(execution.get('end_time'))}"
    )


@dataclass(frozen=True)
class Expected:
    """One task instance of a run: its workflow id suffix (None: it starts none) and its expected state."""

    task_id: str
    map_index: int
    workflow: str | None
    state: str

    def workflow_id(self, run: str) -> str | None:
        if self.workflow is None:
            return None
        prefix = "wf-slow" if self.state == "failed" else "wf-ok"
        return f"{prefix}-{run}-{self.workflow}"


#: Mirrors the table in tests/chaos/aom_chaos_dag.py.
EXPECTED = (
    Expected("defer_a", -1, "defer-a", "success"),
    Expected("defer_b", -1, "defer-b", "success"),
    Expected("sync_a", -1, "sync-a", "success"),
    Expected("sync_b", -1, "sync-b", "success"),
    Expected("start", -1, "start", "success"),
    Expected("sensor", -1, None, "success"),
    Expected("mapped", 0, "mapped-0", "success"),
    Expected("mapped", 1, "mapped-1", "success"),
    Expected("slow_defer", -1, "slow-defer", "failed"),
    Expected("slow_sync", -1, "slow-sync", "failed"),
)


@dataclass
class Kill:
    """One SIGKILL of the campaign and what it hit."""

    number: int
    kind: str
    victim: str = ""
    at: float = 0.0  # seconds since the campaign started
    restart_delay: float = 0.0
    pids: int = 0
    hit: list[str] = field(default_factory=list)  # what the victim held: task instances or triggers
    triggers: set[int] = field(default_factory=set)
    job_id: int | None = None
    restarted_after: float | None = None  # seconds from the kill until it was ready again
    handover: float | None = None  # triggerer: seconds until another triggerer held all its triggers
    recovered_after: float | None = None  # DB/broker fault: seconds until every component ran again
    signal: str = "SIGKILL"
    moved: set[int] = field(default_factory=set)  # triggers seen held by another triggerer after the kill
    began: float = 0.0  # epoch seconds of the kill
    ended: float | None = None  # epoch seconds when the victim was back (ready, resumed, the fault over)

    def window(self) -> tuple[float, float]:
        """Epoch seconds from the kill until the victim was back (a restart still pending: until now)."""
        return self.began, self.ended if self.ended is not None else time.time()

    def describe(self) -> str:
        if self.kind in SERVICE_KINDS:
            text = f"fault {self.number} at {self.at:.0f} s: {self.kind} ({self.signal})"
            text += f" for {self.restart_delay:.1f} s" if self.kind != PG_RESTART else ""
            text += f"; {len(self.hit)} tasks in flight"
            if self.restarted_after is not None:
                text += f"; {self.victim} back {self.restarted_after:.1f} s after it began"
            if self.recovered_after is not None:
                text += f", every component running again after {self.recovered_after:.1f} s"
            return text
        if self.kind in AOM_KINDS:
            text = (
                f"fault {self.number} at {self.at:.0f} s: {self.kind} ({self.signal}) for {self.restart_delay:.1f} s; "
                f"{len(self.hit)} waits in flight"
            )
            if self.restarted_after is not None:
                text += f"; AOM answered again {self.restarted_after:.1f} s after it began"
            return text
        held = f", held {len(self.hit)}: {', '.join(self.hit[:6])}{' ...' if len(self.hit) > 6 else ''}"
        text = (
            f"kill {self.number} at {self.at:.0f} s: {self.signal} {self.victim} ({self.pids} processes)"
            f"{held if self.hit else ''}"
        )
        if self.handover is not None:
            text += f"; {len(self.moved)} triggers moved to the other triggerer {self.handover:.1f} s after the kill"
        if self.restarted_after is not None:
            text += f"; restarted after {self.restart_delay:.1f} s, ready {self.restarted_after:.1f} s after the kill"
        return text


@dataclass
class Run:
    """One DAG run of the campaign (times in seconds since the campaign started)."""

    number: int
    run: str  # the conf value, part of every workflow id
    run_id: str
    triggered: float = 0.0
    state: str = "queued"
    ended: float | None = None


@dataclass
class Figures:
    """The last stdout line (JSON)."""

    runs: int = 0
    tasks: int = 0
    kills: int = 0
    tasks_ok: int = 0
    tasks_wrong: int = 0
    duplicate_executions: int = 0
    lost_waits: int = 0
    terminated_on_deadline: int = 0
    seconds: float = 0.0
    #: How many faults of each kind (kills, stalls, AOM faults) were made.
    faults: dict[str, int] = field(default_factory=dict)
    #: Seconds AOM's clock is ahead of the hosts' (``--aom-skew``, its seeded sign).
    aom_skew: float = 0.0
    #: Per fault kind (and "none"): tasks, outcomes, retries, end delays, deadline lateness.
    by_fault: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Components the supervisor started again after they exited on their own, per kind.
    supervisor_restarts: dict[str, int] = field(default_factory=dict)
    #: Tasks Airflow failed because their last try could not be sent to the broker during a Redis outage (allowed:
    #: not in tasks_wrong, see tests/chaos/README.md), and the downstream tasks that ended upstream_failed for it.
    unsent_failures: int = 0
    #: The campaign's own DB/REST calls that failed during a database or broker fault and were skipped.
    skipped_during_outages: int = 0
    #: Task instances the scheduler found stuck in QUEUED past task_queued_timeout (their Celery message lost, e.g.
    #: with an emptied broker) and set back to scheduled, and those it failed after two such requeues.
    stuck_in_queued_requeued: int = 0
    stuck_in_queued_failed: int = 0
    #: Planned kills and faults the campaign did not make (the runs all ended first), in plan order.
    faults_not_made: list[str] = field(default_factory=list)


@dataclass
class TaskRecord:
    """One task instance as the check saw it (epoch seconds, host clock)."""

    name: str
    state: str | None
    tries: int
    start: float | None
    end: float | None
    #: From its wait's execution's end (AOM's clock, the skew taken off) to the task's end.
    end_delay: float | None = None
    #: Seconds each terminated wf-slow execution ended after its deadline.
    lateness: list[float] = field(default_factory=list)

    def overlaps(self, window: tuple[float, float]) -> bool:
        return self.start is not None and self.start <= window[1] and (self.end is None or self.end >= window[0])


class Campaign:
    """Runs, kills and checks; ``rng`` (seeded) decides every kill's moment, kind, victim and restart delay."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster) -> None:
        self.args = args
        self.cluster = cluster
        self.rng = random.Random(args.seed)  # noqa: S311 - reproducible chaos, not cryptography
        # Part of every workflow id, so two campaigns against one persistent endpoint never share an id.
        self.tag = secrets.token_hex(3)
        self.runs = [Run(n, f"{self.tag}-{n:03d}", f"chaos-{self.tag}-{n:03d}") for n in range(1, args.runs + 1)]
        self.kills: list[Kill] = []
        self.kinds = self._plan_kinds(args.kills, args.stalls)
        for kind, count in (
            (AOM_BLACKHOLE, args.aom_blackholes),
            (AOM_DOWN, args.aom_downs),
            (AOM_STORM, args.aom_storms),
            (PG_OUTAGE, args.pg_outages),
            (PG_RESTART, args.pg_restarts),
            (REDIS_OUTAGE, args.redis_outages),
        ):
            for _ in range(count):  # at seeded places, as the stalls
                self.kinds.insert(self.rng.randint(0, len(self.kinds)), kind)
        #: The emulator's request log, gathered before each restart (a restart starts a new one) and at the end.
        self.requests: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.restarting: threading.Thread | None = None
        self.pending_restart: tuple[Kill, float] | None = None  # (kill, when to restart)
        self.next_kill_at: float | None = None
        self.errors: list[str] = []
        self.retried = 0
        self.heartbeat_age: dict[str, float] = {}
        self.slow_resubmits = 0
        self.notes: list[str] = []
        #: Components the campaign stopped and will start itself: the supervisor leaves them alone.
        self.held: set[str] = set()
        #: Per component kind: serialises its restarts, the campaign's and the supervisor's (a job row is known
        #: to be a process's by its start time, so two components of one kind never start at once).
        self.kind_locks = {c.kind: threading.Lock() for c in cluster.components.values()}
        self.supervisors: list[threading.Thread] = []
        self.supervising = threading.Event()
        #: Components whose supervisor is between seeing the exit and the restart's readiness.
        self.supervisor_busy: set[str] = set()
        self.supervisor_restarts: Counter[str] = Counter()
        #: (seconds since the start, component, exit status) of each exit the campaign did not cause.
        self.exits: list[tuple[float, str, int | None]] = []
        #: The database or broker fault in progress, and the epoch second its grace ends after it.
        self.service_down: Kill | None = None
        self.outage_until = 0.0
        self.skipped = 0
        self.allowed: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def _plan_kinds(self, kills: int, stalls: int) -> list[str]:
        """Rounds of three kills, each round every kind once in a seeded order: with 3 kills or more, every
        kind is killed, and no kind is starved in a long campaign. Stalls go at seeded places among them."""
        kinds: list[str] = []
        while len(kinds) < kills:
            kinds += self.rng.sample(KINDS, len(KINDS))
        kinds = kinds[:kills]
        for _ in range(stalls):
            kinds.insert(self.rng.randint(0, len(kinds)), STALL)
        return kinds

    # ------------------------------------------------------------------ runs

    def wait_for_dag(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                dag = self.cluster.api("GET", f"/api/v2/dags/{DAG_ID}")
                if not dag.get("is_paused"):
                    return
                self.cluster.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
            except (urllib.error.URLError, OSError):
                pass
            errors = self.cluster.api("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise ClusterError(f"the chaos DAG does not parse: {errors}")
            time.sleep(1)
        raise ClusterError(f"the DAG {DAG_ID} was not parsed within {timeout:g} s")

    def trigger(self, run: Run) -> None:
        body = {"dag_run_id": run.run_id, "logical_date": None, "conf": {"run": run.run}}
        for attempt in range(5):
            try:
                self.cluster.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", body)
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # an earlier attempt got through
                    break
                if attempt == 4:
                    raise
            except (urllib.error.URLError, OSError):
                if attempt == 4:
                    raise
            time.sleep(2)
        run.triggered = self.now()
        run.state = "queued"

    def refresh_runs(self) -> None:
        states = dict(self.cluster.query("SELECT run_id, state FROM dag_run WHERE dag_id = %s", (DAG_ID,)))
        for run in self.runs:
            if run.triggered and run.ended is None and run.run_id in states:
                run.state = states[run.run_id]
                if run.state in ("success", "failed"):
                    run.ended = self.now()
                    print(
                        f"chaos: {self.now():5.0f} s  run {run.number:03d} ended {run.state} "
                        f"after {run.ended - run.triggered:.0f} s",
                        flush=True,
                    )

    # ------------------------------------------------------------------ kills

    def schedule_next_kill(self) -> None:
        """A seeded gap: the estimated time left shared among the kills left, times 0.5-1.5."""
        left = len(self.kinds) - len(self.kills)
        if left <= 0:
            self.next_kill_at = None
            return
        done = [r.ended - r.triggered for r in self.runs if r.ended is not None]
        per_run = statistics.mean(done) if done else 60.0
        unfinished = sum(1 for r in self.runs if r.ended is None)
        remaining = max(20.0, unfinished * per_run / self.args.parallel)
        gap = self.rng.uniform(0.5, 1.5) * remaining / (left + 1)
        self.next_kill_at = self.now() + max(5.0, gap)

    def kill(self, kind: str, patient: bool) -> bool:
        """SIGKILL the busiest component of ``kind``; while ``patient``, only if it holds something (a kill of
        an idle component proves little). True when it killed."""
        if kind in AOM_KINDS:
            return self.aom_fault(kind, patient)
        if kind in SERVICE_KINDS:
            return self.service_fault(kind, patient)
        loads = {name: self._load(name) for name in self.cluster.names("triggerer" if kind == STALL else kind)}
        top = max(len(v[0]) for v in loads.values())
        if top == 0 and patient:
            return False
        kill = Kill(len(self.kills) + 1, kind, restart_delay=self.rng.uniform(2.0, 12.0))
        if kind == STALL:  # silent past the health threshold, so the other triggerer takes its triggers over
            kill.restart_delay = TRIGGERER_HEALTH_THRESHOLD + self.rng.uniform(10.0, 20.0)
        # The busiest victim makes the kill count; a seeded choice between equals.
        kill.victim = self.rng.choice(sorted(n for n, v in loads.items() if len(v[0]) == top))
        kill.hit, kill.triggers = loads[kill.victim]
        kill.job_id = self.cluster.components[kill.victim].job_id
        kill.at = self.now()
        kill.began = time.time()
        self.held.add(kill.victim)  # before the kill: the supervisor must not take it for an exit of its own
        if kind == STALL:
            kill.signal = signal.SIGSTOP.name
            kill.pids = len(self.cluster.pause(kill.victim))
        else:
            sig = signal.SIGTERM if kind == "triggerer" and self.args.triggerer_signal == "TERM" else signal.SIGKILL
            kill.signal = sig.name
            kill.pids = len(self.cluster.kill(kill.victim, sig))
        self.kills.append(kill)
        print(
            f"chaos: {kill.at:5.0f} s  {kill.signal} {kill.victim} ({kill.pids} processes; held {len(kill.hit)})",
            flush=True,
        )
        self.pending_restart = (kill, kill.at + kill.restart_delay)
        return True

    def aom_fault(self, kind: str, patient: bool) -> bool:
        """Freeze, stop or storm the emulator for a seeded duration; while ``patient``, only while some task
        waits on AOM (running or deferred). True when it began."""
        rows = self.cluster.query(
            "SELECT run_id, task_id, map_index FROM task_instance "
            "WHERE dag_id = %s AND state IN ('running', 'deferred')",
            (DAG_ID,),
        )
        if not rows and patient:
            return False
        low, high = self.args.aom_storm_seconds if kind == AOM_STORM else self.args.aom_outage_seconds
        kill = Kill(len(self.kills) + 1, kind, victim="emulator", restart_delay=self.rng.uniform(low, high))
        kill.hit = [self._ti_name(*r) for r in rows]
        seed, retry_after = (self.rng.randrange(1, 2**31), self.rng.randint(1, 5)) if kind == AOM_STORM else (0, 0)
        kill.at, kill.began = self.now(), time.time()
        if kind == AOM_BLACKHOLE:
            kill.signal = signal.SIGSTOP.name
            kill.pids = len(self.cluster.pause("emulator"))
        elif kind == AOM_DOWN:
            self.save_requests()
            self.held.add("emulator")
            kill.signal = signal.SIGTERM.name
            kill.pids = len(self.cluster.kill("emulator", signal.SIGTERM, grace=10))
        else:
            share = self.args.aom_storm_share
            fault = {"kind": "storm", "path": STORM_PATH, "duration": kill.restart_delay, "share": share}
            status = self.args.aom_storm_status
            fault["status"] = 0 if status == "mixed" else int(status)
            self.cluster.emulator_admin("POST", "faults", {**fault, "seed": seed, "retry_after": retry_after})
            shown = "503/429" if status == "mixed" else status
            kill.signal = f"{share:.0%} of AOM calls {shown}, Retry-After {retry_after} s, seed {seed}"
        self.kills.append(kill)
        print(f"chaos: {kill.at:5.0f} s  {kind}: {kill.signal} for {kill.restart_delay:.1f} s", flush=True)
        self.pending_restart = (kill, kill.at + kill.restart_delay)
        return True

    def service_fault(self, kind: str, patient: bool) -> bool:
        """Stop PostgreSQL or Redis for a seeded duration, or restart PostgreSQL at once; while ``patient``, only
        while some task is queued, running or deferred. True when it began."""
        rows = self.cluster.query(
            "SELECT run_id, task_id, map_index FROM task_instance "
            "WHERE dag_id = %s AND state IN ('queued', 'running', 'deferred')",
            (DAG_ID,),
        )
        if not rows and patient:
            return False
        low, high = self.args.redis_outage_seconds if kind == REDIS_OUTAGE else self.args.pg_outage_seconds
        duration = self.rng.uniform(low, high)
        victim = "redis" if kind == REDIS_OUTAGE else "postgres"
        kill = Kill(len(self.kills) + 1, kind, victim=victim, restart_delay=0.0 if kind == PG_RESTART else duration)
        kill.hit = [self._ti_name(*r) for r in rows]
        kill.at, kill.began = self.now(), time.time()
        self.service_down = kill
        self.kills.append(kill)
        if kind == PG_OUTAGE:
            kill.signal = "pg_ctl stop -m fast"
            self.cluster.pg_stop()
        elif kind == PG_RESTART:
            kill.signal = "pg_ctl restart -m fast"
            began = time.monotonic()
            self.cluster.pg_restart()
            kill.restart_delay = time.monotonic() - began
        else:
            self.held.add("redis")
            kill.signal = signal.SIGTERM.name
            kill.pids = len(self.cluster.kill("redis", signal.SIGTERM, grace=10))
        shown = f"for {kill.restart_delay:.1f} s" if kind != PG_RESTART else f"(back in {kill.restart_delay:.1f} s)"
        print(f"chaos: {kill.at:5.0f} s  {kind}: {kill.signal} {shown}; {len(kill.hit)} tasks in flight", flush=True)
        self.pending_restart = (kill, kill.at + kill.restart_delay)
        return True

    def in_outage(self) -> bool:
        """A database or broker fault is in progress, or ended less than OUTAGE_GRACE s ago."""
        return self.service_down is not None or time.time() < self.outage_until

    # ------------------------------------------------------------------ the supervisor

    def start_supervisor(self) -> None:
        """What systemd's Restart=always does for every component: one that exited without being stopped by the
        campaign is started again after RESTART_SEC. One watcher per component, as one unit each; components of
        one kind start one at a time (the cluster tells their job rows apart by start time)."""
        self.supervising.set()
        for name in self.cluster.components:
            thread = threading.Thread(target=self._supervise, args=(name,), name=f"supervisor-{name}", daemon=True)
            self.supervisors.append(thread)
            thread.start()

    def stop_supervisor(self) -> None:
        self.supervising.clear()
        for thread in self.supervisors:
            thread.join(timeout=self.cluster.config.start_timeout + 30)
        self.supervisors = []

    def _exited(self) -> list[str]:
        return [
            name
            for name, c in self.cluster.components.items()
            if name not in self.held and c.proc is not None and c.proc.poll() is not None
        ]

    def _supervise(self, name: str) -> None:
        component = self.cluster.components[name]
        while self.supervising.is_set():
            if name in self.held or component.proc is None or component.proc.poll() is None:
                time.sleep(0.5)
                continue
            self.supervisor_busy.add(name)
            try:
                code = component.proc.returncode
                self.exits.append((self.now(), name, code))
                print(
                    f"chaos: {self.now():5.0f} s  supervisor: {name} exited ({code}) on its own; starting it again "
                    f"in {RESTART_SEC:g} s",
                    flush=True,
                )
                time.sleep(RESTART_SEC)
                if not self.supervising.is_set():
                    return
                with self.kind_locks[component.kind]:
                    if name in self.held or component.alive:
                        continue
                    self.supervisor_restarts[component.kind] += 1
                    try:
                        self.cluster.restart(name)
                    except Exception as exc:  # it exited again (the DB or broker still out): the next round
                        print(f"chaos: {self.now():5.0f} s  supervisor: {name} not ready: {str(exc)[:120]}", flush=True)
                        continue
                print(f"chaos: {self.now():5.0f} s  supervisor: {name} started again and ready", flush=True)
            finally:
                self.supervisor_busy.discard(name)

    def whole(self) -> bool:
        """Every component runs (none held down by the campaign, none exited) and the supervisor is idle."""
        return not self.held and not self.supervisor_busy and not self._exited()

    def _await_whole(self, timeout: float) -> bool:
        """Until the cluster has been whole for SETTLE_SECONDS (a component may exit some seconds after its DB
        went away: the triggerers do); False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            if self.whole():
                since = since or time.monotonic()
                if time.monotonic() - since >= SETTLE_SECONDS:
                    return True
            else:
                since = None
            time.sleep(0.5)
        return False

    def save_requests(self) -> None:
        """Add the emulator's request log so far to ``requests`` (before a restart forgets it)."""
        if self.cluster.emulator_url is None:
            return
        try:
            self.requests += self.cluster.emulator_admin("GET", "requests", timeout=30)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.notes.append(f"the emulator's request log could not be read: {exc}")

    def _load(self, name: str) -> tuple[list[str], set[int]]:
        """What the component holds now: running task instances (worker), triggers (triggerer), or the
        queued/running task instances (scheduler)."""
        component = self.cluster.components[name]
        if component.kind == "triggerer":
            rows = self.cluster.query(
                "SELECT t.id, ti.run_id, ti.task_id, ti.map_index FROM trigger t "
                "LEFT JOIN task_instance ti ON ti.trigger_id = t.id WHERE t.triggerer_id = %s",
                (component.job_id,),
            )
            return [self._ti_name(r[1], r[2], r[3]) for r in rows], {int(r[0]) for r in rows}
        if component.kind == "worker":
            pids = {p.pid for p in session_processes(component.proc.pid)} if component.proc else set()
            rows = self.cluster.query(
                "SELECT run_id, task_id, map_index, pid FROM task_instance WHERE dag_id = %s AND state = 'running'",
                (DAG_ID,),
            )
            return [self._ti_name(r[0], r[1], r[2]) for r in rows if r[3] in pids], set()
        rows = self.cluster.query(
            "SELECT run_id, task_id, map_index FROM task_instance WHERE dag_id = %s AND state IN ('queued', 'running')",
            (DAG_ID,),
        )
        return [self._ti_name(*r) for r in rows], set()

    def _ti_name(self, run_id: str | None, task_id: str | None, map_index: int | None) -> str:
        number = next((r.number for r in self.runs if r.run_id == run_id), 0)
        index = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
        return f"{number:03d}.{task_id}{index}"

    def tend_kills(self) -> None:
        """Restart the killed component when its delay has passed; measure a triggerer's handover."""
        self.start_due_restart()
        for kill in self.kills:
            if kill.kind in ("triggerer", STALL) and kill.handover is None and kill.triggers:
                rows = dict(
                    self.cluster.query(
                        "SELECT id, triggerer_id FROM trigger WHERE id = ANY(%s)", (sorted(kill.triggers),)
                    )
                )
                # A trigger whose event was stored before the kill is deleted, not moved: only a trigger now
                # held by another triggerer counts as moved.
                kill.moved |= {t for t, owner in rows.items() if owner is not None and owner != kill.job_id}
                if all(owner is not None and owner != kill.job_id for owner in rows.values()):
                    kill.handover = self.now() - kill.at
                    print(
                        f"chaos: {self.now():5.0f} s  {len(kill.moved)} of the {len(kill.triggers)} triggers of "
                        f"{kill.victim} moved to another triggerer ({kill.handover:.1f} s after the kill)",
                        flush=True,
                    )

    def start_due_restart(self) -> None:
        """Start the pending restart (or the end of a fault) in a thread once its delay has passed."""
        if self.pending_restart is not None:
            kill, when = self.pending_restart
            if self.now() >= when:
                self.pending_restart = None
                self.restarting = threading.Thread(target=self._restart, args=(kill,), daemon=True)
                self.restarting.start()

    def sample_heartbeats(self) -> None:
        """The age of the live triggerers' and scheduler's last heartbeat: how close a live one comes to
        looking dead (triggerer_health_check_threshold, scheduler_health_check_threshold)."""
        jobs = {
            c.job_id: c.kind
            for c in self.cluster.components.values()
            if c.kind in ("triggerer", "scheduler") and c.job_id is not None and c.alive
        }
        if not jobs:
            return
        for job_id, age in self.cluster.query(
            "SELECT id, extract(epoch FROM now() - latest_heartbeat) FROM job WHERE id = ANY(%s)", (sorted(jobs),)
        ):
            kind = jobs[job_id]
            self.heartbeat_age[kind] = max(self.heartbeat_age.get(kind, 0.0), float(age))

    def _restart(self, kill: Kill) -> None:
        try:
            if kill.kind in SERVICE_KINDS:
                self._end_service_fault(kill)
                return
            if kill.kind in AOM_KINDS:
                if kill.kind == AOM_BLACKHOLE:
                    self.cluster.resume("emulator")
                elif kill.kind == AOM_DOWN:
                    with self.kind_locks["emulator"]:
                        self.cluster.restart("emulator")
                # A storm ends by itself in the emulator (its duration).
                kill.ended = time.time()
                kill.restarted_after = self.now() - kill.at
                print(f"chaos: {self.now():5.0f} s  {kill.kind} over: AOM answers again", flush=True)
                return
            if kill.kind == STALL:
                # It wakes up holding triggers that are now another triggerer's: Airflow cancels them there
                # as if a user had killed the task, and the provider must not terminate their executions.
                self.cluster.resume(kill.victim)
                kill.ended = time.time()
                kill.restarted_after = self.now() - kill.at
                print(f"chaos: {self.now():5.0f} s  {kill.victim} resumed (SIGCONT)", flush=True)
                return
            with self.kind_locks[self.cluster.components[kill.victim].kind]:
                self.cluster.restart(kill.victim)
            kill.ended = time.time()
            kill.restarted_after = self.now() - kill.at
            print(f"chaos: {self.now():5.0f} s  {kill.victim} restarted and ready", flush=True)
        except Exception as exc:  # reported at the end; the supervisor starts it again if it is down
            self.errors.append(f"restarting {kill.victim} failed: {exc}")
        finally:
            self.held.discard(kill.victim)
            if kill.kind == AOM_DOWN:
                self.held.discard("emulator")
            if kill.kind in SERVICE_KINDS:
                if kill.ended is None:
                    kill.ended = time.time()
                self.service_down = None
                self.outage_until = time.time() + OUTAGE_GRACE

    def _end_service_fault(self, kill: Kill) -> None:
        """Start PostgreSQL or Redis again (a restart is back already), then wait while the supervisor brings back
        what exited: the fault lasts until the cluster is whole again."""
        if kill.kind == PG_OUTAGE:
            self.cluster.pg_start()
        elif kill.kind == REDIS_OUTAGE:
            with self.kind_locks["redis"]:
                self.cluster.restart("redis")
            self.held.discard("redis")
        kill.restarted_after = self.now() - kill.at
        print(f"chaos: {self.now():5.0f} s  {kill.kind} over: {kill.victim} answers again", flush=True)
        if not self._await_whole(self.cluster.config.start_timeout):
            self.errors.append(
                f"after {kill.kind} {kill.number} the cluster was not whole again within "
                f"{self.cluster.config.start_timeout:g} s"
            )
        kill.ended = time.time()
        kill.recovered_after = self.now() - kill.at
        print(f"chaos: {self.now():5.0f} s  {kill.kind}: every component runs again", flush=True)

    def idle(self) -> bool:
        """No restart pending or in progress, nothing exited waiting for the supervisor."""
        restarting = self.restarting is not None and self.restarting.is_alive()
        return self.pending_restart is None and not restarting and not self.supervisor_busy and not self._exited()

    # ------------------------------------------------------------------ the campaign

    def execute(self) -> None:
        import psycopg2  # the cluster's driver, imported late as in cluster.py (--help without it)

        self.wait_for_dag()
        self.started = time.monotonic()
        self.start_supervisor()
        outages = self.args.aom_blackholes + self.args.aom_downs
        # A DB or broker fault also waits for the supervisor to bring back what exited (a minute or two).
        services = (
            (90 + self.args.pg_outage_seconds[1]) * self.args.pg_outages
            + 90 * self.args.pg_restarts
            + (90 + self.args.redis_outage_seconds[1]) * self.args.redis_outages
        )
        timeout = self.args.timeout or (
            180
            + 30 * self.args.runs
            + 45 * self.args.kills
            + (30 + self.args.aom_outage_seconds[1]) * outages
            + (30 + self.args.aom_storm_seconds[1]) * self.args.aom_storms
            + services
        )
        queue = list(self.runs)
        print(
            f"chaos: seed {self.args.seed}, {len(self.runs)} runs ({self.args.parallel} at a time), "
            f"kills planned: {', '.join(self.kinds) or 'none'}; workflow ids wf-*-{self.tag}-NNN-*",
            flush=True,
        )
        self.schedule_next_kill()
        failures = 0
        while self.now() < timeout:
            self.start_due_restart()  # needs no DB: a DB outage ends on time
            try:
                if self.step(queue):
                    break
            except (psycopg2.Error, OSError) as exc:  # URLError and HTTPError are OSErrors
                # Its own queries and REST calls fail while the DB (or the api-server) is out: skip this round.
                if self.in_outage():
                    self.skipped += 1
                else:
                    failures += 1
                    if failures <= 5:
                        self.errors.append(f"the campaign's own call failed outside any DB or broker fault: {exc}")
            time.sleep(1)
        else:
            self.errors.append(f"the runs did not all end within {timeout:g} s")
        # Whatever is still down comes back before the checks (a restart may be due, or running).
        while not self.idle():
            if self.pending_restart is not None:
                self.pending_restart = (self.pending_restart[0], 0.0)
            with contextlib.suppress(psycopg2.Error, OSError):
                self.tend_kills()
            time.sleep(0.5)
        if not self._await_whole(self.cluster.config.start_timeout):
            self.errors.append("the cluster was not whole again before the checks")
        self.stop_supervisor()
        self.refresh_runs()

    def step(self, queue: list[Run]) -> bool:
        """One round of the campaign loop; True when every run has ended."""
        self.refresh_runs()
        active = [r for r in self.runs if r.triggered and r.ended is None]
        # The last run is held back while more than one fault is left (unless nothing else runs), so the
        # campaign's faults, which take their time one after the other, all find runs in flight.
        faults_left = len(self.kinds) - len(self.kills)
        hold = 1 if faults_left > 1 and active else 0
        while len(queue) > hold and len(active) < self.args.parallel and self.service_down is None:
            run = queue.pop(0)
            try:
                self.trigger(run)
            except BaseException:
                queue.insert(0, run)
                raise
            active.append(run)
        self.tend_kills()
        if not self.in_outage():  # the heartbeats of components cut off from their DB say nothing
            self.sample_heartbeats()
        if len(queue) <= hold and self.next_kill_at is not None:
            # Every run has started (but the held one): the kills left are due now, or the last runs would end
            # without them (and a short campaign without a kill of each kind).
            self.next_kill_at = min(self.next_kill_at, self.now())
        due = self.next_kill_at is not None and self.now() >= self.next_kill_at
        if due and self.idle() and active and self.service_down is None:
            assert self.next_kill_at is not None
            patient = self.now() < self.next_kill_at + KILL_PATIENCE
            if self.kill(self.kinds[len(self.kills)], patient):
                self.schedule_next_kill()
        return not queue and not active

    # ------------------------------------------------------------------ checks

    def wait_for_quiet(self, timeout: float = 90) -> None:
        """Triggers and unfinished task instances of ended runs go away shortly after the runs end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.cluster.query(
                "SELECT (SELECT count(*) FROM trigger), (SELECT count(*) FROM task_instance "
                "WHERE dag_id = %s AND (state IS NULL OR state NOT IN ('success', 'failed', 'skipped', "
                "'upstream_failed', 'removed')))",
                (DAG_ID,),
            )[0]
            if left == (0, 0):
                return
            time.sleep(2)

    def check(self) -> tuple[Figures, list[str]]:
        from airflow_provider_aom.exceptions import AomNotFoundError
        from airflow_provider_aom.hooks.aom import AomHook  # after the cluster's env is ours (the connection)

        hook = AomHook(aom_conn_id="aom_default")
        figures = Figures(runs=len(self.runs), kills=len(self.kills))
        problems: list[str] = list(self.errors)
        rows = self.cluster.query(
            "SELECT run_id, task_id, map_index, state, try_number, extract(epoch FROM start_date), "
            "extract(epoch FROM end_date) FROM task_instance WHERE dag_id = %s",
            (DAG_ID,),
        )
        tis = {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}
        times = {(r[0], r[1], r[2]): (_epoch(r[5]), _epoch(r[6])) for r in rows}
        # A retried task's first try began earlier than the task instance row now says.
        for run_id, task_id, map_index, first in self.cluster.query(
            "SELECT run_id, task_id, map_index, extract(epoch FROM min(start_date)) FROM task_instance_history "
            "WHERE dag_id = %s GROUP BY run_id, task_id, map_index",
            (DAG_ID,),
        ):
            key = (run_id, task_id, map_index)
            if key in times and first is not None:
                start, end = times[key]
                times[key] = (min(float(first), start) if start is not None else float(first), end)
        skew = self.args.aom_skew_applied
        records: list[TaskRecord] = []
        lateness: list[tuple[float, str]] = []
        self.retried = 0
        unsent = self.unsent_tries()
        for run in self.runs:
            wrong: list[str] = []
            retried: list[str] = []
            executions: dict[str, list[dict[str, Any]]] = {}
            for expected in EXPECTED:
                workflow_id = expected.workflow_id(run.run)
                if workflow_id is None:
                    continue
                try:
                    executions[workflow_id] = [e.to_dict() for e in hook.list_executions(workflow_id)]
                except AomNotFoundError:
                    executions[workflow_id] = []
            for expected in EXPECTED:
                figures.tasks += 1
                name = self._ti_name(run.run_id, expected.task_id, expected.map_index)
                key = (run.run_id, expected.task_id, expected.map_index)
                state, tries = tis.get(key, (None, 0))
                start, end = times.get(key, (None, None))
                record = TaskRecord(name, state, tries or 0, start, end)
                records.append(record)
                workflow_id = expected.workflow_id(run.run)
                seen = executions.get(workflow_id, []) if workflow_id else []
                shown = [describe_execution(e) for e in seen]
                ok = state == expected.state
                lost = False  # one lost wait per task, whatever shows it
                # Airflow failed it, its last try never sent to the broker (Redis out): allowed, counted apart.
                upstream = UPSTREAM.get(expected.task_id)
                unsent_last = state == "failed" and tries in unsent.get(key, set())
                up_key = (run.run_id, upstream or "", -1)
                up_state, up_tries = tis.get(up_key, (None, 0))
                unsent_upstream = (
                    state == "upstream_failed" and up_state == "failed" and up_tries in unsent.get(up_key, set())
                )
                if unsent_last or unsent_upstream:
                    figures.unsent_failures += 1
                    why = "its last try" if unsent_last else f"its upstream {upstream}'s last try"
                    self.allowed.append(
                        f"{name}: {state} (try {tries}): {why} could not be sent to the broker during a Redis outage; "
                        f"executions {shown}"
                    )
                if state not in FINISHED:
                    lost = True
                    problems.append(f"{name}: left unfinished ({state}, try {tries}); executions {shown}")
                if workflow_id is not None and expected.state == "success":
                    figures.duplicate_executions += max(0, len(seen) - 1)
                    if len(seen) > 1 or not (seen or unsent_last):
                        problems.append(f"{name}: {len(seen)} executions of {workflow_id}: {shown}")
                if workflow_id is not None and expected.state == "failed":
                    if not seen and unsent_last:
                        pass  # never ran: nothing to terminate
                    elif not seen:
                        ok = False
                        problems.append(f"{name}: ended {state} without starting {workflow_id}")
                    elif len(seen) > 1:
                        # Allowed (each must still end cancel after its deadline): a try that terminated its
                        # execution at the deadline and was lost before its failure was recorded is retried,
                        # and a retry after a cancelled execution submits a new one.
                        self.slow_resubmits += len(seen) - 1
                        self.notes.append(f"{name}: {len(seen)} executions of {workflow_id} (tries {tries}): {shown}")
                succeeded = any(e.get("status") == "success" for e in seen)
                # The sensor waits on the start task's execution.
                waited = executions.get(f"wf-ok-{run.run}-start", []) if expected.task_id == "sensor" else seen
                ended = [e["end_time"] for e in waited if isinstance(e.get("end_time"), int) and e["end_time"] > 0]
                if ended and end is not None:
                    record.end_delay = end - (max(ended) / 1000 - skew)
                if expected.state == "success" and workflow_id is not None and not succeeded and not unsent_last:
                    lost = True
                    problems.append(f"{name}: no execution of {workflow_id} succeeded: {shown}")
                if expected.state == "failed":
                    for execution in seen:
                        status = execution.get("status")
                        begin, end = execution.get("begin_time") or 0, execution.get("end_time") or 0
                        if status != "cancel" or not end:
                            lost = True
                            why = (
                                " (Airflow failed the task's last try unsent to the broker: the try that would "
                                "have terminated it never ran)"
                                if unsent_last
                                else ""
                            )
                            problems.append(
                                f"{name}: execution {execution.get('execution_id')} is {status}, not terminated{why}"
                            )
                            continue
                        # The deadline counts from the first submit attempt: just before the execution's begin,
                        # unless AOM was out then and the submit got through late (its begin is later, the
                        # deadline is not). The task's first start (host clock) comes before that attempt, so
                        # a cancel is early only when early against both.
                        reference = begin / 1000 - skew
                        if start is not None:
                            reference = min(reference, start)
                        late = (end / 1000 - skew) - reference - SLOW_TIMEOUT
                        if late < -DEADLINE_TOLERANCE:
                            ok = False
                            problems.append(
                                f"{name}: execution {execution.get('execution_id')} was cancelled "
                                f"{-late:.1f} s before its deadline"
                            )
                            continue
                        figures.terminated_on_deadline += 1
                        lateness.append((late, name))
                        record.lateness.append(late)
                figures.lost_waits += lost
                if unsent_last or unsent_upstream:
                    wrong.append(
                        f"{expected.task_id}{'' if expected.map_index < 0 else f'[{expected.map_index}]'}="
                        f"{state}(unsent, allowed)"
                    )
                elif not ok:
                    wrong.append(
                        f"{expected.task_id}{'' if expected.map_index < 0 else f'[{expected.map_index}]'}={state}"
                    )
                    problems.append(
                        f"{name}: ended {state} (try {tries}), expected {expected.state}; executions {shown}"
                    )
                    figures.tasks_wrong += 1
                else:
                    figures.tasks_ok += 1
                if tries > 1:
                    self.retried += 1
                    retried.append(
                        f"{expected.task_id}{'' if expected.map_index < 0 else f'[{expected.map_index}]'}(try {tries})"
                    )
            duration = f"{run.ended - run.triggered:.0f} s" if run.ended is not None else "unfinished"
            count = sum(len(v) for v in executions.values())
            really = [w for w in wrong if not w.endswith("(unsent, allowed)")]
            verdict = "as expected" if not really else f"WRONG: {', '.join(really)}"
            if len(really) < len(wrong):
                verdict += f"; Airflow failed unsent: {', '.join(w for w in wrong if w not in really)}"
            print(
                f"run {run.number:03d} {run.run_id}: {run.state} in {duration}; {len(EXPECTED) - len(wrong)}/"
                f"{len(EXPECTED)} tasks {verdict}; {count} executions for {len(executions)} workflow ids"
                f"{'; retried ' + ', '.join(retried) if retried else ''}"
            )
        left = self.cluster.query(
            "SELECT (SELECT count(*) FROM trigger), (SELECT count(*) FROM task_instance WHERE dag_id = %s AND "
            "state = 'deferred')",
            (DAG_ID,),
        )[0]
        if left != (0, 0):
            figures.lost_waits += int(left[0])
            problems.append(f"{left[0]} triggers left, {left[1]} task instances still deferred")
        figures.by_fault = self.by_fault(records)
        if lateness:
            lateness.sort()
            latest = ", ".join(f"{n} +{late:.1f} s" for late, n in lateness[-3:])
            print(
                f"chaos: wf-slow executions terminated {lateness[0][0]:.1f} to {lateness[-1][0]:.1f} s after their "
                f"deadline (median {statistics.median(v for v, _ in lateness):.1f} s; latest: {latest})"
            )
        return figures, problems

    def stuck_in_queued(self) -> tuple[int, int]:
        """The scheduler's "Task stuck in queued; will try to requeue" and "... exceeded max; marking failed"."""
        text = "\n".join(
            self.cluster.components[n].log.read_text(errors="replace") for n in self.cluster.names("scheduler")
        )
        return text.count("Task stuck in queued; will try to requeue"), text.count("Task requeue attempts exceeded max")

    def unsent_tries(self) -> dict[tuple[str, str, int], set[int]]:
        """Per task instance, the tries the scheduler could not send to the broker during a Redis outage (its
        log: "Error sending Celery workload" then the TaskInstanceKey; the Celery executor fails such a try)."""
        windows = [k.window() for k in self.kills if k.kind == REDIS_OUTAGE]
        found: dict[tuple[str, str, int], set[int]] = {}
        if not windows:
            return found
        text = "\n".join(
            self.cluster.components[n].log.read_text(errors="replace") for n in self.cluster.names("scheduler")
        )
        for match in UNSENT.finditer(text):
            stamp, dag_id, task_id, run_id, try_number, map_index = match.groups()
            try:
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            if dag_id == DAG_ID and any(a - 1 <= when <= b + 1 for a, b in windows):
                found.setdefault((run_id, task_id, int(map_index)), set()).add(int(try_number))
        return found

    def by_fault(self, records: list[TaskRecord]) -> dict[str, dict[str, Any]]:
        """Per fault kind (and "none": tasks no fault overlapped): the tasks it overlapped and what became of
        them. A task overlaps a fault when it ran or waited (first try's start to its end) at some moment from
        the fault's beginning until its victim was back."""
        windows: dict[str, list[tuple[float, float]]] = {}
        for kill in self.kills:
            windows.setdefault(kill.kind, []).append(kill.window())
        retries = self.http_retries()
        storm_answers = [r for r in self.requests if r.get("fault") == "storm"]
        skew = self.args.aom_skew_applied
        summary: dict[str, dict[str, Any]] = {}
        for kind in [k for k in ALL_KINDS if k in windows] + ["none"]:
            if kind == "none":
                every = [w for spans in windows.values() for w in spans]
                affected = [r for r in records if not any(r.overlaps(w) for w in every)]
                spans: list[tuple[float, float]] = []
                logged = [t for t in retries if not any(a <= t <= b for a, b in every)]
            else:
                spans = windows[kind]
                affected = [r for r in records if any(r.overlaps(w) for w in spans)]
                logged = [t for t in retries if any(a <= t <= b for a, b in spans)]
            delays = [r.end_delay for r in affected if r.end_delay is not None]
            late = [value for r in affected for value in r.lateness]
            entry: dict[str, Any] = {
                "events": len(spans),
                "seconds": round(sum(b - a for a, b in spans), 1),
                "tasks": len(affected),
                "outcomes": dict(Counter(str(r.state) for r in affected)),
                "task_retries": sum(max(0, r.tries - 1) for r in affected),
                "http_retries": len(logged),
                "end_delay_median": _rounded(statistics.median(delays)) if delays else None,
                "end_delay_max": _rounded(max(delays)) if delays else None,
                "deadline_lateness_median": _rounded(statistics.median(late)) if late else None,
                "deadline_lateness_max": _rounded(max(late)) if late else None,
            }
            if kind == AOM_STORM:
                # The request log's times are AOM's clock.
                entry["storm_answers"] = sum(
                    1 for r in storm_answers if any(a <= float(r["time"]) - skew <= b + 1 for a, b in spans)
                )
            summary[kind] = entry
        return summary

    def http_retries(self) -> list[float]:
        """Epoch seconds of every HTTP retry the provider logged (task and trigger logs)."""
        found: list[float] = []
        for path in (self.cluster.home / "logs" / f"dag_id={DAG_ID}").glob("**/attempt=*.log*"):
            for line in path.read_text(errors="replace").splitlines():
                if "retrying in" not in line:
                    continue
                try:
                    entry = json.loads(line)
                    if RETRY_EVENT.match(str(entry.get("event", ""))):
                        found.append(datetime.fromisoformat(str(entry["timestamp"])).timestamp())
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return found

    def report_kills(self) -> None:
        """What each kill hit and how the cluster recovered (all measured here)."""
        counts = Counter(k.kind for k in self.kills)
        print(f"chaos: {len(self.kills)} kills and faults: " + ", ".join(f"{counts[k]} {k}" for k in ALL_KINDS))
        if len(self.kills) < len(self.kinds):
            print(f"chaos: not made (the runs ended first): {', '.join(self.kinds[len(self.kills) :])}")
        if self.args.aom_skew_applied:
            print(f"chaos: AOM's clock was {self.args.aom_skew_applied:+.0f} s off the hosts' for the whole run")
        for kill in self.kills:
            print(f"chaos: {kill.describe()}")
        if self.exits:
            print(
                f"chaos: {len(self.exits)} components exited on their own and the supervisor started them again "
                f"({sum(self.supervisor_restarts.values())} starts: "
                + ", ".join(f"{n} {kind}" for kind, n in sorted(self.supervisor_restarts.items()))
                + "); exits: "
                + ", ".join(f"{name} ({code}) at {at:.0f} s" for at, name, code in self.exits)
            )
        if self.skipped:
            print(f"chaos: {self.skipped} rounds of the campaign's own DB/REST calls skipped during DB/broker faults")
        if self.allowed:
            print(f"chaos: {len(self.allowed)} tasks Airflow failed without running them (allowed, not wrong):")
            for line in self.allowed:
                print(f"  - {line}")
        handovers = [k.handover for k in self.kills if k.handover is not None and k.moved]
        if handovers:
            print(
                f"chaos: {sum(len(k.moved) for k in self.kills)} triggers moved after {len(handovers)} triggerer "
                f"kills, {min(handovers):.1f} to {max(handovers):.1f} s after the kill "
                f"(median {statistics.median(handovers):.1f} s)"
            )
        if self.heartbeat_age:
            print(
                "chaos: oldest heartbeat of a live component: "
                + ", ".join(f"{kind} {age:.1f} s" for kind, age in sorted(self.heartbeat_age.items()))
            )
        if self.notes:
            print(f"chaos: {self.slow_resubmits} wf-slow retries submitted a new execution (allowed, see the check):")
            for note in self.notes:
                print(f"  - {note}")
        lost = sum(len(k.hit) for k in self.kills if k.kind == "worker")
        print(f"chaos: {lost} task instances were running on killed workers; {self.retried} needed a retry")
        moved, repeated = self.moved_waits()
        print(
            f"chaos: {moved} deferred waits ran on more than one triggerer; {repeated} of them logged the status "
            "they had already logged once more"
        )
        cancelled, spared, unread = self.cancelled_as_user_action()
        print(
            f"chaos: {cancelled} triggers were cancelled as by a user (on_kill); {spared} of them saw their task "
            f"still waiting on another triggerer and left the execution running; {unread} could not read the "
            "task's state"
        )

    def cancelled_as_user_action(self) -> tuple[int, int, int]:
        """Trigger logs where Airflow invoked on_kill, where the provider saw a moved wait, where it could not
        tell (it then terminates, as Airflow asked)."""
        cancelled = spared = unread = 0
        for path in (self.cluster.home / "logs" / f"dag_id={DAG_ID}").glob("**/attempt=*.log.trigger.*.log"):
            text = path.read_text(errors="replace")
            cancelled += "cancelled by user action" in text
            spared += "This wait moved to another triggerer" in text
            unread += "Could not read the task's state" in text
        return cancelled, spared, unread

    def moved_waits(self) -> tuple[int, int]:
        """Deferred waits whose trigger ran on two triggerer jobs (from the trigger log files), and how many
        of those logged the same status again on the new triggerer (its kwargs are those of the deferral)."""
        moved = repeated = 0
        base = self.cluster.home / "logs" / f"dag_id={DAG_ID}"
        groups: dict[Path, list[Path]] = {}
        for path in base.glob("**/attempt=*.log.trigger.*.log"):
            groups.setdefault(path.with_name(path.name.split(".log.trigger.")[0]), []).append(path)
        for paths in groups.values():
            if len(paths) < 2:
                continue
            moved += 1
            statuses = [self._statuses(p) for p in sorted(paths, key=lambda p: p.stat().st_mtime)]
            if any(a and b and a[-1] == b[0] for a, b in itertools.pairwise(statuses)):
                repeated += 1
        return moved, repeated

    @staticmethod
    def _statuses(path: Path) -> list[str]:
        """The status lines a trigger logged (``Execution X of workflow Y is S.``), in order."""
        found = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = str(json.loads(line).get("event", ""))
            except ValueError:
                continue
            if event.startswith("Execution ") and " is " in event and " of workflow " in event:
                found.append(event)
        return found

    def task_log_tails(self, problems: list[str]) -> Iterator[tuple[str, str]]:
        """The last attempt's log of each task named in ``problems``."""
        base = self.cluster.home / "logs" / f"dag_id={DAG_ID}"
        for problem in problems[:10]:
            name = problem.split(":", 1)[0]
            if "." not in name:
                continue
            number, task = name.split(".", 1)
            run = next((r for r in self.runs if f"{r.number:03d}" == number), None)
            if run is None:
                continue
            task_id, _, index = task.partition("[")
            folder = base / f"run_id={run.run_id}" / f"task_id={task_id}"
            if index:
                folder = folder / f"map_index={index.rstrip(']')}"
            logs = sorted(folder.glob("attempt=*.log"))
            if logs:
                yield f"{name} {logs[-1].name}", tail(logs[-1], 25)


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value)


def _rounded(value: float) -> float:
    return round(value, 1)


def seconds_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` (or one number) seconds, 0 < LOW <= HIGH."""
    low_text, _, high_text = text.partition(":")
    try:
        low, high = float(low_text), float(high_text or low_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH seconds, got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 < LOW <= HIGH, got {text!r}")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="DAG runs")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kills (default: a random one, printed)")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs of a triggerer, a worker or the scheduler")
    parser.add_argument(
        "--stalls",
        type=int,
        default=0,
        help="SIGSTOPs of a triggerer past its health threshold, then SIGCONT (its triggers move meanwhile)",
    )
    parser.add_argument(
        "--aom-blackholes", type=int, default=0, help="AOM outages where connections hang: the emulator SIGSTOPped"
    )
    parser.add_argument(
        "--aom-downs",
        type=int,
        default=0,
        help="AOM outages where connections are refused: the emulator stopped, then started on the same port "
        "with its executions",
    )
    parser.add_argument(
        "--aom-storms", type=int, default=0, help="episodes where a share of AOM calls get 503/429 with Retry-After"
    )
    parser.add_argument(
        "--aom-outage-seconds",
        type=seconds_range,
        default=(30.0, 120.0),
        metavar="LOW:HIGH",
        help="seeded duration of a blackhole or a down",
    )
    parser.add_argument(
        "--aom-storm-seconds", type=seconds_range, default=(30.0, 90.0), metavar="LOW:HIGH", help="duration of a storm"
    )
    parser.add_argument("--aom-storm-share", type=float, default=0.5, help="share of AOM calls a storm answers")
    parser.add_argument(
        "--aom-storm-status",
        choices=("mixed", "503", "429"),
        default="mixed",
        help="what a storm answers: a seeded mix of 503 and 429, or only one of them",
    )
    parser.add_argument(
        "--pg-outages",
        type=int,
        default=0,
        help="PostgreSQL outages: pg_ctl stop -m fast, then start again after a seeded --pg-outage-seconds",
    )
    parser.add_argument(
        "--pg-restarts", type=int, default=0, help="PostgreSQL restarts at once: pg_ctl restart -m fast (no pause)"
    )
    parser.add_argument(
        "--pg-outage-seconds", type=seconds_range, default=(20.0, 60.0), metavar="LOW:HIGH", help="a PG outage's length"
    )
    parser.add_argument(
        "--redis-outages",
        type=int,
        default=0,
        help="Redis (the Celery broker) outages: stopped, then started again on its port, empty (no persistence)",
    )
    parser.add_argument(
        "--redis-outage-seconds",
        type=seconds_range,
        default=(20.0, 60.0),
        metavar="LOW:HIGH",
        help="a Redis outage's length",
    )
    parser.add_argument(
        "--aom-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="AOM's clock this far off the hosts' for the whole run, the sign seeded (with --aom-conn: the caller's "
        "AOM's known skew, signed, used to measure end delays)",
    )
    parser.add_argument("--parallel", type=int, default=3, help="DAG runs in flight at once")
    parser.add_argument("--aom-conn", help="aom_default for every component (JSON) instead of the emulator")
    parser.add_argument("--timeout", type=float, default=0, help="seconds for the runs (default: from runs, kills)")
    parser.add_argument(
        "--triggerer-signal",
        choices=("KILL", "TERM"),
        default="KILL",
        help="how triggerers are stopped: KILL (host loss, the default) or TERM (a graceful stop: measures handover)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the cluster's work directory (logs, DB)")
    parser.add_argument("--workdir", type=Path, help="the cluster's work directory (default: a fresh temp dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    if args.runs < 1 or args.kills < 0 or args.stalls < 0 or args.parallel < 1:
        raise SystemExit("--runs and --parallel must be at least 1, --kills and --stalls at least 0")
    if min(args.aom_blackholes, args.aom_downs, args.aom_storms) < 0 or not 0 < args.aom_storm_share <= 1:
        raise SystemExit("--aom-blackholes, --aom-downs, --aom-storms must be at least 0, --aom-storm-share in (0, 1]")
    if min(args.pg_outages, args.pg_restarts, args.redis_outages) < 0:
        raise SystemExit("--pg-outages, --pg-restarts, --redis-outages must be at least 0")
    if args.aom_conn:
        # Another AOM stand-in: its faults are the caller's; the campaign only counts.
        if args.aom_blackholes or args.aom_downs or args.aom_storms:
            print("chaos: --aom-conn: AOM-side faults are the caller's; none is injected here", flush=True)
        args.aom_blackholes = args.aom_downs = args.aom_storms = 0
        args.aom_skew_applied = args.aom_skew
    else:
        # Its own generator: the kills' plan of a seed stays what it was without --aom-skew.
        sign = random.Random(f"aom-skew-{args.seed}").choice((-1, 1))  # noqa: S311 - reproducible chaos
        args.aom_skew_applied = sign * abs(args.aom_skew)
    install_signal_handlers()
    began = time.monotonic()
    campaigns: list[Campaign] = []
    cluster = Cluster(
        ClusterConfig(
            workdir=args.workdir,
            keep=args.keep,
            dag_files=[DAG_FILE],
            aom_conn=args.aom_conn,
            chaos=True,
            aom_clock_skew=0.0 if args.aom_conn else args.aom_skew_applied,
        )
    )
    try:
        cluster.start()
        print(
            f"chaos: cluster ready in {time.monotonic() - began:.0f} s ({cluster.workdir}); UI {cluster.api_url}",
            flush=True,
        )
        # The check reads the AOM API through the very connection the components use.
        os.environ.update(cluster.env)
        campaign = Campaign(args, cluster)
        campaigns.append(campaign)
        campaign.execute()
        campaign.wait_for_quiet()
        campaign.save_requests()
        figures, problems = campaign.check()
        figures.faults = {kind: sum(1 for k in campaign.kills if k.kind == kind) for kind in ALL_KINDS}
        figures.aom_skew = args.aom_skew_applied
        figures.supervisor_restarts = dict(sorted(campaign.supervisor_restarts.items()))
        figures.skipped_during_outages = campaign.skipped
        figures.faults_not_made = campaign.kinds[len(campaign.kills) :]
        figures.stuck_in_queued_requeued, figures.stuck_in_queued_failed = campaign.stuck_in_queued()
        try:
            cluster.check_loopback()
        except ClusterError as exc:
            problems.append(str(exc))
            figures.tasks_wrong += 1  # a listener beyond loopback fails the campaign too
        campaign.report_kills()
        figures.seconds = round(time.monotonic() - began, 1)
        failed = figures.tasks_wrong or figures.duplicate_executions or figures.lost_waits
        if failed or problems:
            print(f"chaos: {len(problems)} problems:")
            for problem in problems:
                print(f"  - {problem}")
        if failed:
            cluster.config.keep = True  # the evidence: task logs, component logs, the DB files
            print(f"chaos: the work directory is kept for inspection: {cluster.workdir}")
            for name, text in campaign.task_log_tails(problems):
                print(f"--- task log {name}\n{text}")
            for name, text in cluster.log_tails():
                print(f"--- tail of {name}\n{text}")
        print(f"chaos: seed {args.seed}; {figures.seconds:.0f} s in all, cluster start-up included", flush=True)
        print(json.dumps(figures.__dict__), flush=True)
        return 1 if failed else 0
    except ClusterError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 1
    finally:
        for campaign in campaigns:  # before the cluster stops: it must not start what stop() takes down
            campaign.stop_supervisor()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
