"""``make bench``: run every benchmark step declared below, store the results, render BENCHMARKS.md.

Each step is a separate script in ``bench/`` that starts (and stops) its own emulator process and
writes one JSON result. This runner starts each in its own process group with a timeout, kills
the group if it overruns, skips optional steps that would overrun ``--budget-minutes``, stores
each step's result as ``bench/results/<step>.json`` (with its command, status and duration) next to
``machine.json`` (the machine, versions, commit, load average at start and end), then calls
``bench/render.py``. Step logs go to ``bench/results/logs/`` (not committed).

Exit status: 0 when every required step ran (budget misses are reported, not fatal; ``--strict``
makes them fatal), 1 when a required step failed or timed out.

    python bench/run.py              # the full run
    python bench/run.py --quick      # smaller sizes, fewer runs (a smoke test of the harness)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT
from render import RESULTS, print_summary, render

REL_PY = ".venv/bin/python"  # how commands are shown (make bench uses the project venv)
VERSIONS = (
    "airflow-provider-aom",
    "apache-airflow",
    "apache-airflow-task-sdk",
    "apache-airflow-providers-common-compat",
    "apache-airflow-providers-http",
    "httpcore",
    "h11",
    "anyio",
    "httpx",
    "requests",
    "psutil",
    "matplotlib",
)


# ============================================================================ the steps


@dataclass(frozen=True)
class Step:
    """One process: ``python ARGS... --json-out bench/results/NAME.json`` (``NAME_i`` when repeated)."""

    name: str
    args: tuple[str, ...]
    quick: tuple[str, ...] | None = None  # the arguments under --quick (None: the same)
    _: KW_ONLY
    repeat: int = 1
    quick_repeat: int = 1  # 0: not run under --quick
    timeout: float = 300.0  # seconds, then the step's process group is killed
    estimate: float = 30.0  # seconds, for the total time budget
    optional: bool = False  # skipped when it would overrun the total time budget

    def instances(self, quick: bool) -> list[tuple[str, tuple[str, ...]]]:
        """(result name, arguments) of each run of this step."""
        count = self.quick_repeat if quick else self.repeat
        args = self.quick if quick and self.quick is not None else self.args
        names = [self.name] if self.repeat == 1 else [f"{self.name}_{i}" for i in range(count)]
        return [(name, args) for name in names[:count]]


B = "bench/"


def waits(name: str, n: int, mode: str, repeat: int, quick_repeat: int, *extra: str, **kw: Any) -> Step:
    """Runs of bench/waits.py; ``optional`` (the scaling runs) unless told otherwise."""
    args = (B + "waits.py", "--n", str(n), "--mode", mode, *extra)
    return Step(name, args, repeat=repeat, quick_repeat=quick_repeat, **{"timeout": 400, "optional": True, **kw})


def client(auth: str) -> Step:
    args = (B + "client_overhead.py", "--auth", auth)
    full, quick = (*args, "--rounds", "15", "--calls", "300"), (*args, "--rounds", "5", "--calls", "200")
    return Step(f"client_{auth}", full, quick, estimate=45)


#: The latency/burst matrix: concurrent waits x answer delay; seconds each execution runs, per size (the steady
#: window opens half an interval after the last wait's first poll, which takes longer the more waits there are).
MATRIX_DURATION = {200: 22, 1000: 25, 2000: 40, 5000: 75}


def matrix(n: int, delay_ms: int) -> Step:
    args: tuple[str, ...] = (B + "waits.py", "--n", str(n), "--mode", "shared", "--duration", str(MATRIX_DURATION[n]))
    args += ("--answer-delay", f"{delay_ms / 1000:g}") if delay_ms else ()
    big = n > 1000
    return Step(f"matrix_{delay_ms}ms_{n}", args, quick_repeat=0 if big else 1, timeout=MATRIX_DURATION[n] + 240,
                estimate=MATRIX_DURATION[n] + (25 if big else 12))


#: The connection-handling cell: the transport's per-host stack against httpcore.AsyncConnectionPool (waits.py
#: --pool), seconds each execution runs per size, alternating the two per cell.
POOL_DURATION = {1000: 22, 5000: 40}


def pool(n: int, delay_ms: int, variant: str) -> Step:
    args: tuple[str, ...] = (B + "waits.py", "--n", str(n), "--mode", "shared", "--duration", str(POOL_DURATION[n]))
    args += ("--answer-delay", f"{delay_ms / 1000:g}") if delay_ms else ()
    args += ("--pool", variant) if variant != "stack" else ()
    big = n > 1000
    return Step(f"pool_{variant}_{delay_ms}ms_{n}", args, quick_repeat=0 if big else 1, timeout=POOL_DURATION[n] + 240,
                estimate=POOL_DURATION[n] + (14 if big else 8), optional=True)


def list_read(name: str, rows: int, *extra: str) -> Step:
    big = rows >= 100_000
    args = (B + "list_read.py", "--rows", str(rows), *extra)
    return Step(
        name, args, repeat=3, quick_repeat=0 if big else 1, timeout=900 if big else 300, estimate=75 if big else 12
    )


#: In the report's order (bench/report.toml names them by these names or their prefixes).
STEPS: tuple[Step, ...] = (
    Step("parse", (B + "parse_cost.py", "--runs", "7"), (B + "parse_cost.py", "--runs", "5"), timeout=600, estimate=60),
    client("token"),
    client("aksk"),
    Step("token", (B + "token_reuse.py", "--executions", "1000"), repeat=3, timeout=180, estimate=10),
    waits("waits_main_shared", 1000, "shared", 3, 1, quick=(B + "waits.py", "--n", "300", "--mode", "shared"),
          estimate=35, timeout=300, optional=False),
    waits("waits_main_naive", 1000, "naive", 3, 1, quick=(B + "waits.py", "--n", "300", "--mode", "naive"),
          estimate=70, optional=False),
    *(matrix(n, d) for d in (0, 100) for n in MATRIX_DURATION),
    # A cProfile of one cell (slower: its figures are not pooled with the matrix's).
    waits("profile_1000_100ms", 1000, "shared", 1, 0, "--answer-delay", "0.1", "--profile", timeout=300, estimate=45),
    Step(
        "peer_http",
        (B + "waits.py", "--n", "1000", "--mode", "http"),
        (B + "waits.py", "--n", "300", "--mode", "http"),
        timeout=300,
        estimate=35,
    ),
    Step("peer_sdk", (B + "sdk_overhead.py", "--rounds", "6", "--calls", "400", "--imports", "7"),
         (B + "sdk_overhead.py", "--rounds", "2", "--calls", "100", "--imports", "3"), timeout=600, estimate=60),
    Step("dag", (B + "dag_overhead.py", "--runs", "3"), (B + "dag_overhead.py", "--runs", "1"), timeout=900,
         estimate=160),
    waits("waits_scale_shared_100", 100, "shared", 2, 1, estimate=36),
    waits("waits_scale_shared_300", 300, "shared", 2, 0, estimate=37),
    waits("waits_scale_shared_3000", 3000, "shared", 1, 0, "--duration", "40", estimate=70),
    waits("waits_scale_naive_100", 100, "naive", 1, 1, estimate=35),
    waits("waits_scale_naive_300", 300, "naive", 1, 0, estimate=45),
    Step("triggerer_aom", (B + "triggerer.py", "--n", "300"), (B + "triggerer.py", "--n", "50", "--window", "30"),
         timeout=1500, estimate=470),
    # The reference: the same deferred tasks on Airflow's DateTimeTrigger.
    Step("triggerer_noop", (B + "triggerer.py", "--n", "300", "--trigger", "noop"), quick_repeat=0, timeout=1500,
         estimate=450, optional=True),
    list_read("list_read_1k", 1_000),
    list_read("list_read_10k", 10_000),
    list_read("list_read_100k", 100_000),
    list_read("list_read_all_10k", 10_000, "--keep", "all"),
    *(pool(n, d, v) for n in POOL_DURATION for d in (0, 100) for v in ("stack", "httpcore")),
)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ============================================================================ steps


def end_group(proc: subprocess.Popen[Any]) -> None:
    """Terminate the process group of a step we started (its pgid is its pid), then kill what is left."""
    pgid = proc.pid
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    if proc.poll() is None:
        proc.wait(5)


def run_step(results: Path, step: Step, name: str, args: tuple[str, ...], elapsed: float, budget: float) -> str:
    """Run one step (or skip it), store ``<name>.json``; returns its status: ok, failed, timeout or skipped."""
    record: dict[str, Any] = {"step": name, "command": " ".join([REL_PY, *args]), "seconds": 0.0, "result": None}
    if step.optional and elapsed + step.estimate > budget:
        print(f"[bench] skip {name}: the time budget would be exceeded", flush=True)
        record["status"] = "skipped"
    else:
        out, log = results / "logs" / f"{name}.out.json", results / "logs" / f"{name}.log"
        print(f"[bench] {elapsed:6.0f}s  {record['command']}", flush=True)
        t0 = time.monotonic()
        with open(log, "w") as handle:
            # A new session: the step, its emulator and workers share one process group that we can end.
            proc = subprocess.Popen(
                [PYTHON, args[0], "--json-out", str(out), *args[1:]],
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = proc.wait(step.timeout)
                record["status"] = "ok" if rc == 0 and out.exists() else "failed"
            except subprocess.TimeoutExpired:
                record["status"] = "timeout"
            finally:
                end_group(proc)
        record["seconds"] = time.monotonic() - t0
        if out.exists():
            record["result"] = json.loads(out.read_text())
            out.unlink()
        if record["status"] != "ok":
            tail = log.read_text()[-2500:]
            print(f"[bench] {name}: {record['status'].upper()} after {record['seconds']:.0f}s; log tail:\n{tail}")
    (results / f"{name}.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return str(record["status"])


# ============================================================================ machine


def git(*args: str) -> str:
    """A read-only git query."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()


def machine(quick: bool) -> dict[str, Any]:
    from importlib import metadata

    import psutil

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    digest = hashlib.sha256()
    for path in sorted((ROOT / "airflow_provider_aom").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "quick": quick,
        "cpu": cpu,
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {dist: version(dist) for dist in VERSIONS},
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "package_dirty": bool(git("status", "--porcelain", "--", "airflow_provider_aom")),
        "package_sha256": digest.hexdigest()[:16],
        "loadavg_start": list(os.getloadavg()),
        "started_at": now(),
    }


# ============================================================================ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs (harness smoke test)")
    parser.add_argument("--budget-minutes", type=float, default=50.0, help="skip optional steps beyond this")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the result files go")
    parser.add_argument(
        "--only",
        metavar="STEP[,STEP]",
        help="re-measure these steps (names or name prefixes) into the existing results, then render",
    )
    args = parser.parse_args()

    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    plan = [(step, name, step_args) for step in STEPS for name, step_args in step.instances(args.quick)]
    # A deployed package imports from bytecode (pip compiles it at install); this tree may have none
    # (PYTHONDONTWRITEBYTECODE), and compiling on every import would be charged to the parse cost.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "airflow_provider_aom")], check=True)
    if args.only:
        wanted = tuple(args.only.split(","))
        plan = [entry for entry in plan if entry[1].startswith(wanted)]
        info = json.loads((results / "machine.json").read_text())
        info.setdefault("reruns", []).append({"steps": [name for _, name, _ in plan], "at": now()})
        (results / "logs").mkdir(exist_ok=True)
    else:
        # A run replaces the previous results as a whole: no step of an older run is mixed in.
        for old in results.glob("*.json"):
            old.unlink()
        shutil.rmtree(results / "logs", ignore_errors=True)
        (results / "logs").mkdir()
        info = machine(args.quick)
        info["steps"] = [name for _, name, _ in plan]
    print(f"[bench] {len(plan)} steps; results in {results}, logs in {results / 'logs'}", flush=True)

    started, statuses = time.monotonic(), {}
    try:
        for step, name, step_args in plan:
            elapsed = time.monotonic() - started
            statuses[name] = (step, run_step(results, step, name, step_args, elapsed, args.budget_minutes * 60))
    except KeyboardInterrupt:
        print("[bench] interrupted", flush=True)
    if args.only:
        info["reruns"][-1].update(loadavg_end=list(os.getloadavg()), elapsed_s=time.monotonic() - started)
    else:
        info.update(loadavg_end=list(os.getloadavg()), finished_at=now(), elapsed_s=time.monotonic() - started)
    (results / "machine.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")

    rows = render(results)
    print("=" * 100)
    print_summary(rows)
    print("=" * 100)
    print(f"[bench] wrote BENCHMARKS.md from {results} in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    if len(statuses) < len(plan) or any(s in ("failed", "timeout") and not st.optional for st, s in statuses.values()):
        return 1
    if args.strict and any(r.verdict != "PASS" for r in rows if r.budget != "—"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
