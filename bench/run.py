# ruff: noqa: RUF001  (the report text uses typographic signs on purpose)
"""``make bench``: run every benchmark, print the results against their budgets, write BENCHMARKS.md.

Each benchmark is a separate script in ``bench/`` that starts (and stops) its own emulator
process and writes one JSON result; this runner starts each in its own process group with a
timeout, kills the group if it overruns, keeps the whole run under ``--budget-minutes``,
draws ``docs/bench/waits.png`` and writes ``BENCHMARKS.md``.

Exit status: 0 when every benchmark ran (budget misses are reported, not fatal; ``--strict``
makes them fatal), 1 when a benchmark failed or timed out.

    python bench/run.py              # the full run (about 15 minutes on 2 cores)
    python bench/run.py --quick      # smaller sizes, fewer runs (a smoke test of the harness)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, summary

REL_PY = ".venv/bin/python"  # how commands are shown (make bench uses the project venv)
PNG = ROOT / "docs" / "bench" / "waits.png"
REPORT = ROOT / "BENCHMARKS.md"
CLIENT_FAST_PATH_DIFF = "bench/patches/applied/client-fast-path.diff"
ASYNC_SLOTS_DIFF = "bench/patches/applied/async-request-slots.diff"

BUDGETS = {
    "parse_ms": 10.0,
    "ratio_token": 1.15,
    "ratio_aksk": 1.30,
    "iam_calls": 1,
    "kb_per_wait": 64.0,
    "sockets": 100,
    "iam_waits": 1,
    "requests_ratio": 1.05,
}


@dataclass(frozen=True)
class Budget:
    """One of BUDGETS as the report writes it, and the statistic of the runs that must stay within it."""

    key: str
    unit: str = ""
    over: str = "median"  # or "max": every run must stay within it
    sign: str = "≤ "

    @property
    def text(self) -> str:
        return f"{self.sign}{BUDGETS[self.key]:g}{self.unit}"

    def met(self, s: dict[str, Any]) -> bool:
        return bool(s[self.over] <= BUDGETS[self.key])


PARSE_BUDGET = Budget("parse_ms", " ms")
TOKEN_BUDGET = Budget("iam_calls", sign="", over="max")
#: Benchmark 2: (auth, label, budget of the CPU ratio).
CLIENT_ROWS = (("token", "token", Budget("ratio_token", "×")), ("aksk", "AK/SK", Budget("ratio_aksk", "×")))
#: Benchmark 4's rows of the results table: (waits.py key, metric, digits, unit of the value, budget).
WAITS_ROWS: tuple[tuple[str, str, int, str, Budget | None], ...] = (
    ("kb_per_wait", "resident memory per waiting execution (KB)", 1, "", Budget("kb_per_wait", " KB")),
    ("cpu_per_round_ms_steady", "CPU per poll round (steady state, ms)", 0, "", None),
    ("sockets_peak", "TCP sockets open (peak)", 0, "", Budget("sockets", over="max")),
    (
        "iam_token_calls_waits",
        "IAM token calls by the waits (password auth)",
        0,
        "",
        Budget("iam_waits", sign="", over="max"),
    ),
    (
        "requests_ratio",
        "status requests / minimum (one per poll interval)",
        3,
        "×",
        Budget("requests_ratio", "×", over="max"),
    ),
)
#: Benchmark 5's rows of the results table: (dag_overhead.py key, metric); no budget.
DAG_ROWS = (
    ("per_task_wall_ms", "50 mapped AOM starts vs 50 mapped no-op tasks, wall per task (ms)"),
    ("per_task_cpu_ms", "same, CPU per task (ms)"),
    ("per_task_ti_median_ms", "same, median task-instance duration difference (ms)"),
)
#: The waits.py figures of section 4 (key, label, digits). collect() summarises each over the runs
#: of every (mode, N) once; the results table, the plot and sections 4, 6 and the notes read those.
WAITS_METRICS = [
    ("kb_per_wait", "memory per wait (KB)", 1),
    ("kb_per_wait_peak", "memory per wait at peak RSS (KB)", 1),
    ("rss_baseline_mb", "baseline RSS (MB)", 1),
    ("cpu_per_round_ms_steady", "CPU per poll round, steady (ms)", 0),
    ("cpu_per_round_ms_total", "CPU per poll round, whole wait (ms)", 0),
    ("cpu_us_per_request_steady", "CPU per status request, steady (µs)", 0),
    ("first_round_seconds", "first poll of all N done after (s)", 1),
    ("sockets_peak", "TCP sockets open, peak", 0),
    ("sockets_steady_median", "TCP sockets open, steady median", 0),
    ("tcp_connects_waits", "TCP connections opened during the wait", 0),
    ("iam_token_calls_waits", "IAM token calls by the N waits", 0),
    ("status_requests", "status requests", 0),
    ("status_requests_min", "minimum status requests", 0),
    ("requests_ratio", "requests / minimum", 3),
    ("requests_ratio_nominal", "requests / nominal (6 per execution)", 3),
    ("wait_seconds", "launch to last event (s)", 1),
]
MODES = ("shared", "naive")


# ============================================================================ running steps


@dataclass
class Step:
    key: str
    args: list[str]  # script and its arguments, relative to the repository root
    timeout: float
    estimate: float  # seconds, for the time budget
    optional: bool = False
    result: Any = None
    status: str = "pending"  # ok | failed | timeout | skipped
    seconds: float = 0.0

    @property
    def command(self) -> str:
        return " ".join([REL_PY, *self.args])


@dataclass
class Runner:
    workdir: Path
    budget: float
    started: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)
    finished_after: float | None = None  # set when the steps are reloaded from a finished run

    def elapsed(self) -> float:
        return self.finished_after if self.finished_after is not None else time.monotonic() - self.started

    @classmethod
    def reload(cls, workdir: Path) -> tuple[Runner, dict[str, Any], bool]:
        """The steps, machine facts and mode of a finished run, from its results directory."""
        saved = json.loads((workdir / "results.json").read_text())
        runner = cls(workdir, budget=0.0, finished_after=saved["elapsed"])
        for data in saved["steps"]:
            step = Step(data["key"], data["args"], 0.0, 0.0, data["optional"])
            step.status, step.seconds = data["status"], data["seconds"]
            out = workdir / f"{step.key}.json"
            if step.status == "ok" and out.exists():
                step.result = json.loads(out.read_text())
            runner.steps.append(step)
        return runner, saved["machine"], saved["quick"]

    def run(self, step: Step) -> Step:
        self.steps.append(step)
        if step.optional and self.elapsed() + step.estimate > self.budget:
            step.status = "skipped"
            print(f"[bench] skip {step.key}: the time budget would be exceeded", flush=True)
            return step
        out = self.workdir / f"{step.key}.json"
        log = self.workdir / f"{step.key}.log"
        print(f"[bench] {self.elapsed():6.0f}s  {step.command}", flush=True)
        t0 = time.monotonic()
        with open(log, "w") as handle:
            # A new session: the step, its emulator and workers share one process group that we can end.
            proc = subprocess.Popen(
                [PYTHON, step.args[0], "--json-out", str(out), *step.args[1:]],
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = proc.wait(step.timeout)
                step.status = "ok" if rc == 0 and out.exists() else "failed"
            except subprocess.TimeoutExpired:
                step.status = "timeout"
            finally:
                end_group(proc)
        step.seconds = time.monotonic() - t0
        if out.exists():
            step.result = json.loads(out.read_text())
        if step.status != "ok":
            tail = log.read_text()[-2500:]
            print(f"[bench] {step.key}: {step.status.upper()} after {step.seconds:.0f}s; log tail:\n{tail}", flush=True)
        return step

    def get(self, key: str) -> Any:
        for step in self.steps:
            if step.key == key and step.status == "ok":
                return step.result
        return None

    def step(self, key: str) -> Step | None:
        return next((s for s in self.steps if s.key == key), None)


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


# ============================================================================ machine


def machine() -> dict[str, Any]:
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
    commit = subprocess.run(  # read-only
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {
            dist: version(dist)
            for dist in (
                "airflow-provider-aom",
                "apache-airflow",
                "apache-airflow-task-sdk",
                "apache-airflow-providers-common-compat",
                "apache-airflow-providers-http",
                "requests",
                "httpx",
                "httpcore",
                "tenacity",
            )
        },
        "commit": commit or "unknown",
        "package_sha256": digest.hexdigest()[:16],
        "loadavg_start": os.getloadavg(),
    }


# ============================================================================ formatting


def f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def med(s: dict[str, Any] | None, digits: int = 1) -> str:
    return f(s["median"], digits) if s else "n/a"


def spread(s: dict[str, Any] | None, digits: int = 1) -> str:
    if not s:
        return "n/a"
    if s["n"] == 1:
        return "n=1"
    return f"{f(s['min'], digits)}–{f(s['max'], digits)} (n={s['n']})"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "**MISSED**")


def stat(runs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    values = [r[key] for r in runs if r is not None and key in r]
    return summary(values) if values else None


# ============================================================================ plan


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "parse_runs": 5,
            "client": ["--rounds", "5", "--calls", "200"],
            "token_runs": 1,
            "wait_n": 300,
            "wait_runs": 1,
            "naive_runs": 1,
            "scale": [100, 300],
            "naive_scale": [100],
            "dag_runs": 1,
            "patch_runs": 1,
            "slots_n": 300,
            "slots_runs": 1,
            "scale_runs": 1,
        }
    return {
        "parse_runs": 7,
        "client": ["--rounds", "15", "--calls", "300"],
        "token_runs": 3,
        "wait_n": 1000,
        "wait_runs": 3,
        "naive_runs": 3,
        "scale": [100, 300, 1000, 3000],
        "naive_scale": [100, 300, 1000],
        "dag_runs": 3,
        "patch_runs": 2,
        "slots_n": 3000,
        "slots_runs": 2,
        "scale_runs": 2,
    }


def patch_step(key: str, diff: str, runs: int, bench_args: list[str], timeout: float, estimate: float) -> Step:
    """An optional before/after check of a fix in the product: patch_check.py --reverse on one benchmark."""
    args = ["bench/patch_check.py", "--patch", diff, "--reverse", "--runs", str(runs), "--", *bench_args]
    return Step(key, args, timeout, estimate, optional=True)


def run_all(runner: Runner, p: dict[str, Any]) -> None:
    b = "bench/"
    # The budgeted benchmarks (1-6) first; then the patch checks and the diagnostics, which are skipped
    # if the time budget would be exceeded.
    runner.run(Step("parse", [b + "parse_cost.py", "--runs", str(p["parse_runs"])], 600, 60))
    for auth in ("token", "aksk"):
        runner.run(Step(f"client_{auth}", [b + "client_overhead.py", "--auth", auth, *p["client"]], 300, 25))
    for i in range(p["token_runs"]):
        runner.run(Step(f"token_{i}", [b + "token_reuse.py", "--executions", "1000"], 180, 8))
    n = p["wait_n"]
    for i in range(p["wait_runs"]):
        runner.run(Step(f"waits_shared_{n}_{i}", [b + "waits.py", "--n", str(n), "--mode", "shared"], 300, 35))
    for i in range(p["naive_runs"]):
        runner.run(Step(f"waits_naive_{n}_{i}", [b + "waits.py", "--n", str(n), "--mode", "naive"], 400, 70))
    runner.run(Step("dag", [b + "dag_overhead.py", "--runs", str(p["dag_runs"])], 900, 110))
    for size in p["scale"]:
        if size != n:
            for i in range(p["scale_runs"] if size < n else 1):
                runner.run(
                    Step(
                        f"waits_shared_{size}_{i}",
                        [b + "waits.py", "--n", str(size), "--mode", "shared"],
                        400,
                        35 + size / 200,
                        optional=i > 0,
                    )
                )
    for size in p["naive_scale"]:
        if size != n:
            runner.run(
                Step(
                    f"waits_naive_{size}_0",
                    [b + "waits.py", "--n", str(size), "--mode", "naive"],
                    400,
                    30 + size * 0.03,
                )
            )
    for auth in ("token", "aksk"):
        runner.run(
            patch_step(
                f"patch_client_fast_path_{auth}",
                CLIENT_FAST_PATH_DIFF,
                p["patch_runs"],
                [b + "client_overhead.py", "--auth", auth, *p["client"]],
                600,
                25 * p["patch_runs"] * 2,
            )
        )
    slots_waits = [b + "waits.py", "--n", str(p["slots_n"]), "--mode", "shared"]
    runner.run(
        patch_step(
            "patch_async_request_slots", ASYNC_SLOTS_DIFF, p["slots_runs"], slots_waits, 900, 90 * p["slots_runs"]
        )
    )
    runner.run(
        patch_step("patch_async_request_slots_overload", ASYNC_SLOTS_DIFF, 1, [*slots_waits, "--poll", "2"], 900, 90)
    )
    runner.run(
        Step(
            "diag_client_layers",
            [
                b + "client_overhead.py",
                "--auth",
                "token",
                "--decompose",
                "--profile",
                "2000",
                "--rounds",
                "8",
            ],
            300,
            30,
            optional=True,
        )
    )
    runner.run(
        Step(
            "diag_waits_profile",
            [b + "waits.py", "--n", str(n), "--mode", "shared", "--profile"],
            400,
            45,
            optional=True,
        )
    )


# ============================================================================ analysis


def waits_runs(runner: Runner, mode: str, n: int) -> list[dict[str, Any]]:
    out = []
    for step in runner.steps:
        if step.key.startswith(f"waits_{mode}_{n}_") and step.status == "ok":
            out.append(step.result)
    return out


def collect(runner: Runner, p: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = {}
    parse = runner.get("parse")
    r["parse"] = parse
    r["client"] = {a: runner.get(f"client_{a}") for a in ("token", "aksk")}
    r["token"] = [runner.get(f"token_{i}") for i in range(p["token_runs"])]
    n = p["wait_n"]
    r["n"] = n
    r["dag"] = runner.get("dag")
    sizes = sorted(set(p["scale"]) | set(p["naive_scale"]) | {n})
    # The waits.py runs of each mode and N (benchmark 4 is N = n), and their summaries (None: no runs).
    r["scale"] = {mode: {size: waits_runs(runner, mode, size) for size in sizes} for mode in MODES}
    r["scale_stats"] = {
        mode: {size: {key: stat(runs, key) for key, _, _ in WAITS_METRICS} for size, runs in by_size.items()}
        for mode, by_size in r["scale"].items()
    }
    for key in (
        "patch_client_fast_path_token",
        "patch_client_fast_path_aksk",
        "patch_async_request_slots",
        "patch_async_request_slots_overload",
        "diag_client_layers",
        "diag_waits_profile",
    ):
        r[key] = runner.get(key)
    return r


def rows(runner: Runner, r: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(item: str, metric: str, value: str, spread_: str, budget: str, ok: bool | None, command: str) -> None:
        out.append(
            {
                "item": item,
                "metric": metric,
                "value": value,
                "spread": spread_,
                "budget": budget,
                "verdict": verdict(ok),
                "command": command,
            }
        )

    def add_stat(
        item: str, metric: str, s: dict[str, Any] | None, digits: int, unit: str, budget: Budget | None, command: str
    ) -> None:
        """A row of a summary over the runs: median, spread, and whether the budget (if any) was met."""
        value = f"{med(s, digits)}{unit}"
        if budget is None:
            add(item, metric, value, spread(s, digits), "—", None, command)
        else:
            assert s is not None, f"{item}: every run reports {metric}"
            add(item, metric, value, spread(s, digits), budget.text, budget.met(s), command)

    def cmd(key: str) -> str:
        step = runner.step(key)
        return f"`{step.command}`" if step else "n/a"

    parse = r["parse"]
    item = "1 DAG-parse cost"
    if parse:
        aom, http = parse["aom"]["importtime_ms"], parse["http"]["importtime_ms"]
        metric = "import operators.aom + sensors.aom after airflow.sdk (-X importtime, ms)"
        add_stat(item, metric, aom, 2, "", PARSE_BUDGET, cmd("parse"))
        metric = "same for airflow.providers.http.operators.http (ms, reference)"
        add_stat(item, metric, http, 2, "", None, cmd("parse"))
        hits = parse["aom"]["forbidden_new"]
        add(
            item,
            "HTTP client / async lib / tenacity / emulator imported at parse time",
            "none" if not hits else "; ".join(f"{k}: {', '.join(v[:4])}" for k, v in hits.items()),
            "",
            "none",
            not hits,
            cmd("parse"),
        )
    else:
        add(item, "benchmark failed", "n/a", "", PARSE_BUDGET.text, False, cmd("parse"))

    for auth, label, budget in CLIENT_ROWS:
        c, item, command = r["client"][auth], f"2 Client overhead ({label})", cmd(f"client_{auth}")
        if not c:
            add(item, "benchmark failed", "n/a", "", budget.text, False, command)
            continue
        for kind, what, budget_ in (("cpu", "CPU", budget), ("wall", "wall", None)):
            hook_bare = f"{med(c['hook'][f'{kind}_us'], 0)} / {med(c['bare'][f'{kind}_us'], 0)} µs"
            add_stat(item, f"{what} per call, hook / bare ({hook_bare})", c[f"ratio_{kind}"], 3, "×", budget_, command)

    tokens = [t for t in r["token"] if t]
    if tokens:
        s = summary([t["iam_token_calls"] for t in tokens])
        add(
            "3 Token reuse",
            "IAM token calls for 1,000 executions, fresh AomHook each (password auth)",
            f(int(s["median"])),
            spread(s, 0),
            TOKEN_BUDGET.text,
            TOKEN_BUDGET.met(s),
            cmd("token_0"),
        )
    else:
        add("3 Token reuse", "benchmark failed", "n/a", "", TOKEN_BUDGET.text, False, cmd("token_0"))

    n = r["n"]
    shared, stats = r["scale"]["shared"][n], r["scale_stats"]["shared"][n]
    item, wcmd = f"4 {n:,} deferred waits", cmd(f"waits_shared_{n}_0")
    if shared:
        for key, metric, digits, unit, wait_budget in WAITS_ROWS:
            add_stat(item, metric, stats[key], digits, unit, wait_budget, wcmd)
        ok = all(s["all_success"] for s in shared)
        add(item, "waits that ended with a success event", "all" if ok else "NOT all", "", "all", ok, wcmd)
    else:
        add(item, "benchmark failed", "n/a", "", "see budgets", False, wcmd)
    if r["scale"]["naive"][n]:
        stats = r["scale_stats"]["naive"][n]
        kb, cpu, sk = stats["kb_per_wait"], stats["cpu_per_round_ms_steady"], stats["sockets_peak"]
        add(
            f"4 naive {n:,} waits",
            "memory per wait (KB) / CPU per poll round (ms) / peak sockets",
            f"{med(kb)} / {med(cpu, 0)} / {med(sk, 0)}",
            spread(cpu, 0) + " (CPU)",
            "— (comparison)",
            None,
            cmd(f"waits_naive_{n}_0"),
        )

    dag = r["dag"]
    if dag:
        for key, metric in DAG_ROWS:
            add_stat("5 Per-task overhead", metric, dag[key], 1, "", None, cmd("dag"))
    else:
        add("5 Per-task overhead", "benchmark failed", "n/a", "", "—", False, cmd("dag"))
    add(
        "6 Scaling plot",
        "memory and CPU per poll round, 100–3,000 waits",
        "[docs/bench/waits.png](docs/bench/waits.png)",
        "",
        "—",
        None,
        "(the waits.py runs above)",
    )
    return out


# ============================================================================ plot


def plot(r: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("[bench] matplotlib is missing: no plot", flush=True)
        return False
    fig, (ax_mem, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {
        "shared": ("AomWorkflowExecutionTrigger (shared pool)", "o-", "#c7000b"),
        "naive": ("naive: new AsyncClient per poll", "s--", "#555555"),
    }
    poll_ms = None
    for mode, (label, style, color) in styles.items():
        xs, mem, mem_lo, mem_hi, cpu, cpu_lo, cpu_hi = [], [], [], [], [], [], []
        for size, runs in sorted(r["scale"][mode].items()):
            if not runs:
                continue
            stats = r["scale_stats"][mode][size]
            kb, c = stats["kb_per_wait"], stats["cpu_per_round_ms_steady"]
            if kb is None or c is None or math.isnan(c["median"]):
                continue
            poll_ms = runs[0]["poll_interval_s"] * 1000
            xs.append(size)
            mem.append(kb["median"])
            mem_lo.append(kb["median"] - kb["min"])
            mem_hi.append(kb["max"] - kb["median"])
            cpu.append(c["median"])
            cpu_lo.append(c["median"] - c["min"])
            cpu_hi.append(c["max"] - c["median"])
        if not xs:
            continue
        ax_mem.errorbar(xs, mem, yerr=[mem_lo, mem_hi], fmt=style, color=color, label=label, capsize=3)
        ax_cpu.errorbar(xs, cpu, yerr=[cpu_lo, cpu_hi], fmt=style, color=color, label=label, capsize=3)
    patch = r.get("patch_async_request_slots") or {}
    before = patch.get("before") or []
    if before:
        label = "shared pool without request slots (before the fix)"
        size = before[0]["n"]
        cpu_b = summary([run["cpu_per_round_ms_steady"] for run in before])["median"]
        kb_b = summary([run["kb_per_wait"] for run in before])["median"]
        ax_cpu.plot([size], [cpu_b], "D", color="#1f77b4", label=label)
        ax_mem.plot([size], [kb_b], "D", color="#1f77b4", label=label)
    ax_mem.axhline(BUDGETS["kb_per_wait"], color="green", linestyle=":", label="budget 64 KB")
    if poll_ms:
        ax_cpu.axhline(poll_ms, color="orange", linestyle=":", label=f"poll interval ({poll_ms / 1000:g} s of CPU)")
    for ax in (ax_mem, ax_cpu):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent waits in one process")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks([100, 300, 1000, 3000])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_mem.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax_mem.yaxis.set_major_formatter(plain)
    ax_mem.yaxis.set_minor_formatter(plain)
    ax_mem.tick_params(axis="y", which="minor", labelsize=7)
    ax_mem.set_ylabel("RSS per waiting execution (KB)")
    ax_mem.set_title("Memory per wait (RSS delta / N)")
    ax_cpu.set_yscale("log")
    ax_cpu.yaxis.set_major_formatter(plain)
    ax_cpu.set_ylabel("client CPU per poll round (ms)")
    ax_cpu.set_title("CPU to poll all N once (steady state)")
    ax_mem.legend(fontsize=7)
    ax_cpu.legend(fontsize=7)
    fig.suptitle("Deferred waits on one asyncio loop (emulator in a separate process)", fontsize=10)
    fig.tight_layout()
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG, dpi=110)
    plt.close(fig)
    return True


# ============================================================================ report


def table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def report(
    runner: Runner,
    info: dict[str, Any],
    r: dict[str, Any],
    result_rows: list[dict[str, str]],
    plotted: bool,
    quick: bool,
) -> str:
    now = info.get("finished_at") or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    v = info["versions"]
    md: list[str] = []
    md.append("# Benchmarks\n")
    md.append(
        f"Written by `make bench` (`bench/run.py`{' --quick' if quick else ''}) on {now}, in "
        f"{runner.elapsed() / 60:.1f} minutes. Do not edit by hand: run `make bench` again. Every benchmark "
        "talks to the local emulator (`python -m airflow_provider_aom.emulator`) over loopback, in a "
        "separate process, so the client's CPU time never includes the server's.\n"
    )
    md.append("## Machine\n")
    md.append(
        table(
            ["", ""],
            [
                ["CPU", f"{info['cpu']}, {info['cores_logical']} logical cores ({info['cores_physical']} physical)"],
                ["Memory", f"{info['memory_gib']:.1f} GiB"],
                ["OS", info["os"]],
                ["Python", info["python"]],
                [
                    "Airflow",
                    f"apache-airflow {v['apache-airflow']}, task-sdk {v['apache-airflow-task-sdk']}, "
                    f"common-compat {v['apache-airflow-providers-common-compat']}, "
                    f"providers-http {v['apache-airflow-providers-http']}",
                ],
                [
                    "Package",
                    f"airflow-provider-aom {v['airflow-provider-aom']} (commit {info['commit']}, source sha256 "
                    f"{info['package_sha256']}…)",
                ],
                [
                    "HTTP / retry libraries",
                    f"requests {v['requests']}, httpx {v['httpx']}, httpcore {v['httpcore']}, tenacity {v['tenacity']}",
                ],
                [
                    "Load average (1/5/15 min) at start → end",
                    f"{' / '.join(f'{x:.2f}' for x in info['loadavg_start'])} → "
                    f"{' / '.join(f'{x:.2f}' for x in info['loadavg_end'])} (shared machine: other work adds noise)",
                ],
            ],
        )
    )
    md.append("")
    md.append("## Results against the budgets\n")
    md.append(
        "Median over the runs; spread is min–max over the runs (n = runs). The command reproduces the row "
        "(one run; the table's medians come from the repeated runs listed in each section).\n"
    )
    md.append(
        table(
            ["Benchmark", "Metric", "Median", "Spread", "Budget", "Verdict", "Reproduce"],
            [
                [x["item"], x["metric"], x["value"], x["spread"], x["budget"], x["verdict"], x["command"]]
                for x in result_rows
            ],
        )
    )
    missed = [x for x in result_rows if x["verdict"] == "**MISSED**"]
    md.append("")
    if missed:
        md.append(
            "**Budgets missed in this run:** "
            + "; ".join(f"{x['item']}: {x['metric']} = {x['value']} (budget {x['budget']})" for x in missed)
            + ". Causes: see [Profiling notes](#profiling-notes-and-fixes).\n"
        )
    else:
        md.append(
            "**Every budget was met in this run.** See [Profiling notes](#profiling-notes-and-fixes) "
            "for the budget missed by an earlier run, its fix (before/after), and other observations.\n"
        )
    failed = [s for s in runner.steps if s.status not in ("ok", "skipped")]
    skipped = [s for s in runner.steps if s.status == "skipped"]
    if failed or skipped:
        md.append(
            "Steps that did not complete: " + ", ".join(f"`{s.key}` ({s.status})" for s in failed + skipped) + ".\n"
        )

    md += section_parse(r)
    md += section_client(r)
    md += section_token(r)
    md += section_waits(r)
    md += section_dag(r)
    md += section_scale(r, plotted)
    md += section_patches(r, runner)
    md.append("## Reproducing\n")
    md.append(
        "`make bench` installs matplotlib, psutil and apache-airflow-providers-http into `.venv` and runs "
        "`bench/run.py` (about 15 minutes on 2 cores; `--quick` for a 6-minute smoke run; "
        "`bench/run.py --render RESULTS_DIR` rewrites this file from a finished run's results directory "
        "without measuring again, for changes to the report's text). Each script in "
        "`bench/` also runs alone and prints its JSON result; every process a benchmark starts is stopped "
        "at its end (and dies with its parent), nothing listens beyond 127.0.0.1, and each Airflow process "
        "gets a private `AIRFLOW_HOME` under /tmp.\n"
    )
    md.append(
        table(
            ["Step", "Status", "Seconds", "Command"],
            [[s.key, s.status, f"{s.seconds:.0f}", f"`{s.command}`"] for s in runner.steps],
        )
    )
    md.append("")
    return "\n".join(md) + "\n"


def section_parse(r: dict[str, Any]) -> list[str]:
    parse = r["parse"]
    md = ["## 1. DAG-parse cost\n"]
    if not parse:
        return [*md, "The benchmark failed.\n"]
    md.append(
        f"{parse['runs']} fresh interpreters per target each import `airflow.sdk` first, then the targets, under "
        "`python -X importtime`; the figure is the sum of the cumulative times of the top-level entries "
        "printed between two markers around the target imports (so every module loaded on the targets' "
        "behalf counts, ours or third-party). Another "
        f"{parse['runs']} fresh interpreters per target time the same imports with `time.perf_counter` "
        "and no `-X importtime`.\n"
    )
    a, h = parse["aom"], parse["http"]
    md.append(
        table(
            [
                "Imports after `airflow.sdk`",
                "-X importtime (ms)",
                "spread",
                "perf_counter (ms)",
                "spread",
                "modules added",
            ],
            [
                [
                    "`airflow_provider_aom.operators.aom` + `.sensors.aom`",
                    med(a["importtime_ms"], 2),
                    spread(a["importtime_ms"], 2),
                    med(a["perf_ms"], 2),
                    spread(a["perf_ms"], 2),
                    str(a["new_module_count"]),
                ],
                [
                    "`airflow.providers.http.operators.http`",
                    med(h["importtime_ms"], 2),
                    spread(h["importtime_ms"], 2),
                    med(h["perf_ms"], 2),
                    spread(h["perf_ms"], 2),
                    str(h["new_module_count"]),
                ],
            ],
        )
    )
    md.append("")
    md.append(
        "Modules our two imports add to `sys.modules` (everything else was already loaded by `airflow.sdk`): "
        + ", ".join(f"`{m}`" for m in a["new_modules"])
        + ".\n"
    )
    hits = a["forbidden_new"]
    md.append(
        "Assertion (no HTTP client — requests, httpx, httpcore, urllib3, aiohttp —, no async library, no "
        "tenacity, no `airflow_provider_aom.emulator` among them): "
        + ("**holds**." if not hits else f"**fails**: {hits}.")
        + " Hooks and triggers are imported "
        "lazily, when a task runs. For reference, `airflow.sdk` itself already loads "
        + ", ".join(sorted({m.split(".")[0] for v in a["preloaded_by_airflow_sdk"].values() for m in v}))
        + " before any provider module; the http operator adds "
        + ", ".join(sorted({m.split(".")[0] for v in h["forbidden_new"].values() for m in v}))
        + ".\n"
    )
    return md


def section_client(r: dict[str, Any]) -> list[str]:
    md = [
        "## 2. Client overhead per API call\n",
        "`AomHook.get_execution` against a bare `requests.Session` sending the same `GET …/executions/{id}/status` "
        "with headers the hook's protocol computed once beforehand, then `raise_for_status()` and `.json()` (the "
        "hook returns the parsed body too). Both sessions are default `requests` sessions (`trust_env` on, as the "
        "hook keeps it when the connection names no proxies), both keep their connection alive. CPU is "
        "`time.process_time()` of the client process; the emulator runs in another process. Each round alternates "
        "the two sides in blocks of 25 calls (alternating which goes first), so background load hits both alike; "
        "the ratio is taken per round.\n",
    ]
    body = []
    for auth, label in (("token", "token (static IAM token)"), ("aksk", "AK/SK (SDK-HMAC-SHA256 signing)")):
        c = r["client"][auth]
        if not c:
            body.append([label, "failed", "", "", "", "", ""])
            continue
        body.append(
            [
                label,
                f"{c['rounds']} × {c['calls_per_round']}",
                med(c["hook"]["cpu_us"], 0),
                med(c["bare"]["cpu_us"], 0),
                f"{med(c['ratio_cpu'], 3)}× ({spread(c['ratio_cpu'], 3)})",
                f"{med(c['hook']['wall_us'], 0)} / {med(c['bare']['wall_us'], 0)}",
                f"{c['status_requests_seen_by_emulator']:,} = {c['status_requests_expected']:,}",
            ]
        )
    md.append(
        table(
            [
                "Auth",
                "rounds × calls",
                "hook CPU µs/call",
                "bare CPU µs/call",
                "CPU ratio (min–max)",
                "wall µs/call hook / bare",
                "requests seen by emulator = expected",
            ],
            body,
        )
    )
    md.append(
        "\nWall times on loopback are dominated by the emulator (a Python thread-per-connection server) and by "
        "other load on the machine; the CPU ratio is the budgeted figure.\n"
    )
    return md


def section_token(r: dict[str, Any]) -> list[str]:
    md = [
        "## 3. Token reuse\n",
        "1,000 executions started in one process with password auth and no project id in the connection, a fresh "
        "`AomHook` per execution (as each operator instance has its own hook); the emulator counts the calls.\n",
    ]
    body = []
    for i, t in enumerate(r["token"]):
        if t:
            body.append(
                [
                    str(i + 1),
                    f"{t['executions_started']:,}",
                    str(t["iam_token_calls"]),
                    str(t["iam_project_lookups"]),
                    f"{t['cpu_ms_per_execution']:.2f}",
                    f"{t['wall_ms_per_execution']:.2f}",
                ]
            )
    md.append(
        table(
            [
                "Run (fresh process)",
                "executions started",
                "IAM token calls",
                "IAM project look-ups",
                "client CPU ms/execution",
                "wall ms/execution",
            ],
            body,
        )
    )
    md.append("")
    return md


def section_waits(r: dict[str, Any]) -> list[str]:
    n = r["n"]
    md = [
        f"## 4. {n:,} concurrent deferred waits in one process\n",
        f"The real `AomWorkflowExecutionTrigger`, {n:,} of them on one asyncio loop, each consumed with "
        "`async for event in trigger.run()`, all concurrently, as a triggerer runs them; connection from "
        "`AIRFLOW_CONN_AOM_DEFAULT` (password auth, no project id); the emulator in a separate process, workflow "
        "`wf-bench` lasting 22 s, `poll_interval=5`. After a warm-up (one trigger to completion: modules, token, "
        "connection pool) the token and project-id caches are emptied so the waits fetch their token "
        "concurrently; `gc.collect()`; baseline RSS; launch. A parent process samples the worker's RSS and TCP "
        "sockets (psutil) every 0.25 s, so sampling costs the worker nothing.\n",
        "Definitions:\n",
        "* **memory per wait** = (median RSS in the steady window − baseline RSS) / N. Steady window: from one "
        "poll interval after launch (every wait has polled once and sleeps) to 0.5 s before the first execution "
        "can end;",
        "* **CPU per poll round** = worker CPU time in the steady window / status requests the emulator served "
        'in that window × N, i.e. the CPU it takes to poll all N once ("total" = launch to last event, '
        "including the first round's connection set-up and the final events);",
        "* **minimum status requests** of an execution = 1 + ⌈(end − first poll) / poll interval⌉: one request "
        "per poll interval from its first poll until it ends, plus the one that sees the end. A ratio below 1 "
        "means polls came later than every 5 s (each wait sleeps 5 s *after* its answer); above 1 would mean "
        'extra requests (retries, duplicate polls, project-id look-ups). "Nominal" is ⌈22/5⌉ + 1 = 6 per '
        "execution;",
        "* **sockets** = TCP connections of the worker process (psutil), peak over the wait; **connects** = TCP "
        "connections the loop opened during the wait (counted by wrapping `loop.create_connection`).\n",
        "The naive variant is the same trigger whose hook opens a new `httpx.AsyncClient` (same verify/timeout "
        "settings, so one new TCP connection and one new TLS context) for every request and closes it after.\n",
    ]
    body = []
    for key, label, digits in WAITS_METRICS:
        row = [label]
        for mode in MODES:
            s = r["scale_stats"][mode][n][key]
            row += [med(s, digits), spread(s, digits)]
        body.append(row)
    md.append(table(["Metric", "shared pool (product)", "spread", "naive", "spread"], body))
    ok = [all(x["all_success"] for x in runs) if runs else None for runs in (r["scale"][m][n] for m in MODES)]
    md.append(
        f"\nEvery wait ended with a `success` event: shared {ok[0]}, naive {ok[1]}. The naive client spends most "
        "of its CPU building a TLS context per `AsyncClient` (httpx loads the CA bundle even for http:// URLs); "
        "while that CPU is serialised on the loop, polls fall far behind their schedule, so its request counts "
        "and steady-window figures describe an overloaded loop.\n"
    )
    return md


def section_dag(r: dict[str, Any]) -> list[str]:
    dag = r["dag"]
    md = [
        "## 5. Per-task overhead in a DAG\n",
        "`bench/dags/bench_aom_mapped.py` maps `AomExecuteWorkflowOperator` (no wait) 50 ways "
        "(`.partial(...).expand(workflow_id=[...] * 50)`, AK/SK connection from `AIRFLOW_CONN_AOM_DEFAULT`); "
        "`bench/dags/bench_noop_mapped.py` maps a `PythonOperator` that returns a string 50 ways. Each runs under "
        "`airflow dags test` in a private, migrated `AIRFLOW_HOME` under /tmp with "
        "`AIRFLOW__CORE__DAGS_FOLDER=bench/dags`; runs alternate. Wall and CPU are the whole command's "
        "(including the ~8 s start-up both pay); the task-instance figure is the median `duration` of the 50 "
        "task instances from the metadata DB (the first task of a run also starts the in-process execution API "
        "and is excluded by the median).\n",
    ]
    if not dag:
        return [*md, "The benchmark failed.\n"]
    body = []
    for key, label in (
        ("wall_s", "`airflow dags test` wall (s)"),
        ("cpu_s", "`airflow dags test` CPU (s)"),
        ("median_s", "median task-instance duration (s)"),
        ("mean_s", "mean task-instance duration (s)"),
    ):
        body.append(
            [
                label,
                med(dag["aom"][key], 3),
                spread(dag["aom"][key], 3),
                med(dag["noop"][key], 3),
                spread(dag["noop"][key], 3),
            ]
        )
    md.append(table(["Per run", "50 × AOM start", "spread", "50 × no-op", "spread"], body))
    md.append("")
    md.append(
        table(
            ["Overhead per task (AOM − no-op)", "median (ms)", "spread"],
            [
                ["wall / 50", med(dag["per_task_wall_ms"]), spread(dag["per_task_wall_ms"])],
                ["CPU / 50", med(dag["per_task_cpu_ms"]), spread(dag["per_task_cpu_ms"])],
                [
                    "median task-instance duration",
                    med(dag["per_task_ti_median_ms"]),
                    spread(dag["per_task_ti_median_ms"]),
                ],
            ],
        )
    )
    md.append(
        "\nWhat an AOM start does beyond the no-op: read and validate the connection, sign the request, one "
        "POST to the emulator, and two extra XCom pushes (`execution_id` and the console link) besides the "
        "return value; the wall/CPU figures also spread one-time imports (requests, the hook) over the 50 "
        "tasks.\n"
    )
    return md


def section_scale(r: dict[str, Any], plotted: bool) -> list[str]:
    md = ["## 6. Scaling: 100 to 3,000 concurrent waits\n"]
    if plotted:
        md.append("![Memory and CPU per poll round against the number of concurrent waits](docs/bench/waits.png)\n")
    body = []
    for mode in MODES:
        for size, runs in sorted(r["scale"][mode].items()):
            if not runs:
                continue
            s = r["scale_stats"][mode][size]
            body.append(
                [
                    mode,
                    f"{size:,}",
                    str(len(runs)),
                    med(s["kb_per_wait"]),
                    med(s["cpu_per_round_ms_steady"], 0),
                    med(s["cpu_us_per_request_steady"], 0),
                    med(s["sockets_peak"], 0),
                    med(s["requests_ratio"], 3),
                    med(s["first_round_seconds"], 1),
                ]
            )
    md.append(
        table(
            [
                "Client",
                "N",
                "runs",
                "KB per wait",
                "CPU ms per poll round",
                "CPU µs per request",
                "peak sockets",
                "requests / minimum",
                "first round (s)",
            ],
            body,
        )
    )
    md.append(
        "\nThe 3,000-wait point is a single run; at that size one loop nears its limit (the CPU per poll round "
        "approaches the 5 s poll interval); repeated 3,000-wait runs, with and without the fix for queued "
        "requests, are under [Profiling notes](#profiling-notes-and-fixes) (§2). "
        "The naive client is not run at 3,000 (its first poll round alone costs about 3,000 × 20 ms of CPU, "
        "minutes of wall time). When the CPU per poll round passes the poll interval (the orange line), one "
        "loop can no longer keep the schedule: polls stretch out and the requests/minimum ratio falls below 1.\n"
    )
    return md


def _patch_rows(data: dict[str, Any] | None, metrics: list[tuple[str, str, int]]) -> list[list[str]]:
    if not data or not data.get("before") or not data.get("after"):
        return []
    body = []
    for label, path, digits in metrics:
        vals = {}
        for side in ("before", "after"):
            xs = []
            for run in data[side]:
                value: Any = run
                for part in path.split("."):
                    value = value[part]
                xs.append(value)
            vals[side] = summary(xs)
        change = (
            (vals["after"]["median"] / vals["before"]["median"] - 1) * 100 if vals["before"]["median"] else math.nan
        )
        body.append(
            [
                label,
                med(vals["before"], digits),
                spread(vals["before"], digits),
                med(vals["after"], digits),
                spread(vals["after"], digits),
                f"{change:+.1f} %",
            ]
        )
    return body


def before_after_table(title: str, body: list[list[str]]) -> str:
    """A fix's before/after rows under one heading (before = the fix taken out of a copy)."""
    return table([title, "before (fix taken out)", "spread", "after (product)", "spread", "change"], body)


def section_patches(r: dict[str, Any], runner: Runner) -> list[str]:
    md = [
        "## Profiling notes and fixes\n",
        "Before/after figures come from `bench/patch_check.py`: it copies `airflow_provider_aom` to a temporary "
        "directory, applies a patch there (`patch -p1`) and runs a benchmark alternately against the installed "
        "package and the copy first on `PYTHONPATH`; the source tree is never modified. For a fix already in the "
        "product (`bench/patches/applied/`) it runs with `--reverse`: the copy has the fix taken out and is "
        '"before", the installed package is "after". Proposed patches that are not in the product live in '
        "`bench/patches/`.\n",
    ]
    c = r["client"]["token"]
    ratio = c["ratio_cpu"]["median"] if c else math.nan
    status = "not measured in this run" if math.isnan(ratio) else f"{f(ratio, 3)}× in this run"
    md.append(
        f"### 1. Client overhead with token auth (budget ≤ {BUDGETS['ratio_token']:g}×): "
        f"missed once, cause fixed; {status}\n"
    )
    md.append(
        "The first full `make bench` (commit 9832f97, `git show 9832f97:BENCHMARKS.md`) measured the token-auth "
        "CPU ratio at 1.153× (spread 1.094–1.205 over 15 rounds), just over the budget; AK/SK was 1.240×. "
        "The cause was found by peeling the hook's layers off one at a time (each layer measured like the bare "
        "client, interleaved in blocks: `bench/client_overhead.py --auth token --decompose --profile 2000`) "
        "and by cProfile. The HTTP exchange cost the hook what it cost the bare session; signing, the protocol "
        "generator and building the request added about 28 µs; two tenacity `Retrying` objects per call added "
        "about 53 µs more (+27 µs for the one in `_call`, +26 µs for the one in `get_project_id`, which was "
        "built and iterated on every call although the project id came from the connection and no request was "
        "made; cProfile: 4 `Retrying.__iter__` and 2 `retry.retrying` calls per hook call).\n"
    )
    md.append(
        f"Fix (commit c0f57f4, the diff is `{CLIENT_FAST_PATH_DIFF}`): "
        "`AomProtocol.known_project_id()` returns the project id when no request is needed (argument, "
        "connection, or resolved before) and both hooks skip the retry machinery then (the async hook saves one "
        "`AsyncRetrying` per poll too); the sync hook builds its read `Retrying` once (`cached_property`) "
        "instead of per call — tenacity keeps each call's state in thread-local storage, so a hook shared by "
        "threads stays safe (the async hook keeps one per call: coroutines on one thread would share that "
        "state). Before/after, measured in this run:\n"
    )
    for auth, label in (("token", "token"), ("aksk", "AK/SK")):
        body = _patch_rows(
            r.get(f"patch_client_fast_path_{auth}"),
            [
                ("hook CPU µs/call", "hook.cpu_us.median", 0),
                ("bare CPU µs/call", "bare.cpu_us.median", 0),
                ("CPU ratio hook / bare", "ratio_cpu.median", 3),
            ],
        )
        if body:
            md.append(before_after_table(f"`client_overhead.py --auth {auth}` ({label})", body))
            md.append("")
        else:
            md.append(f"Before/after ({label}): the patch check did not run or failed in this run.\n")
    fast_path = runner.step("patch_client_fast_path_token")
    md.append(
        "(Each cell: median over the patch check's runs of each run's median; before and after runs alternate."
        + (f" Command: `{fast_path.command}`." if fast_path else "")
        + ")\n"
    )
    layers = (r.get("diag_client_layers") or {}).get("layers")
    if layers:
        md.append("Where the product's remaining overhead goes, layer by layer (this run):\n")
        base = layers[0]["cpu_us"]["median"]
        body, prev = [], base
        for layer in layers:
            cur = layer["cpu_us"]["median"]
            body.append([f"`{layer['layer']}`", layer["what"], f(cur, 0), f"{cur - prev:+.0f}", f"{cur - base:+.0f}"])
            prev = cur
        md.append(table(["Layer", "What runs", "CPU µs/call", "added by this layer", "over bare"], body))
        md.append("")
    profile = (r.get("diag_client_layers") or {}).get("profile")
    if profile:
        rows_ = [
            row
            for row in profile["rows"]
            if "tenacity" in row["function"]
            or "retry.py" in row["function"]
            or "get_project_id" in row["function"]
            or "sessions.py" in row["function"]
        ][:8]
        md.append(
            table(
                ["cProfile, per hook call (profiler overhead included)", "calls per hook call", "cumulative µs"],
                [
                    [f"`{row['function']}`", f(row["ncalls"] / profile["calls"], 1), f(row["cumtime_us_per_call"], 1)]
                    for row in rows_
                ],
            )
        )
        md.append("")
    md.append(
        "Also visible, but paid by both sides alike: `requests`' `merge_environment_settings` (the per-request "
        "scan of the environment for proxies that `trust_env` implies).\n"
    )
    md.append("```diff\n" + (ROOT / CLIENT_FAST_PATH_DIFF).read_text() + "```\n")

    md.append(
        "### 2. Async polling: CPU per request grew with the requests queued in httpcore's pool (no budget; fixed)\n"
    )
    per_req = {size: s["cpu_us_per_request_steady"] for size, s in r["scale_stats"]["shared"].items()}
    md.append(
        "The first full `make bench` (commit 9832f97) found the steady-state CPU per status request of the shared "
        "pool growing with the number of waits: 986 µs at 100 waits, 1,325 µs at 300, 1,278 µs at 1,000, "
        "2,432 µs at 3,000; and at 3,000 waits a run could land in a collapsed state (7.3 s of CPU per poll "
        "round, more than the 5 s poll interval). A cProfile of the worker during 1,000 waits put 25 % of its "
        "busy time under httpcore's `AsyncConnectionPool._assign_requests_to_connections`. Cause: on every "
        "request and connection event httpcore rescans all requests queued in the pool and every connection "
        "(`is_idle`, `has_expired` → `is_socket_readable`: a `poll()` and a `getpeername()` system call per "
        "connection), so the CPU per request grows with the queue. With 64 connections and N waits polling in "
        "phase, up to N − 64 requests queued at each round. While the loop keeps up, rounds spread out and the "
        "queue stays short; once a round takes longer than the poll interval (a burst of waits starting "
        "together, a slow endpoint, a CPU spike) the queue stays long, each request costs more, and the loop "
        "falls further behind: a feedback loop.\n"
    )
    md.append(
        f"Fix (the diff is `{ASYNC_SLOTS_DIFF}`): at most `MAX_CONNECTIONS` (64) "
        "requests in flight per pool, gated by an `asyncio.Semaphore` (an O(1) queue) in front of "
        "`client.request`, so httpcore's own queue stays empty and no request pays for the others queued "
        "(`tests/integration/test_trigger.py::test_requests_beyond_the_pool_wait_for_a_slot_not_in_the_pool` "
        "fails without it). Side effect: a request waiting for a slot no longer runs into httpx's pool timeout "
        "(which the hook maps to a not-sent transport error and retries); each request keeps its connect/read "
        "timeouts.\n"
    )
    if any(per_req.values()):
        md.append(
            "With the fix, steady-state CPU per status request in this run: "
            + ", ".join(f"{med(s, 0)} µs at {size:,} waits" for size, s in sorted(per_req.items()) if s)
            + ". About 1 ms per poll is httpx/httpcore/anyio plus the hook (one `AsyncRetrying`, the protocol)."
        )
    prof = (r.get("diag_waits_profile") or {}).get("profile")
    if prof:
        busy = prof.get("busy_s", prof["total_s"])
        share = prof["httpcore_assign_cumtime_s"] / busy if busy else math.nan
        md.append(
            f" cProfile of the worker during {r['n']:,} waits with the fix (`bench/waits.py --n {r['n']} --mode "
            f"shared --profile`, launch to last event; time blocked in the selector left out): {share * 100:.0f} % "
            "of its busy time is under `_assign_requests_to_connections`.\n"
        )
        md.append(
            table(
                ["Function (top own time)", "calls", "own s", "cumulative s", "share of busy time"],
                [
                    [
                        f"`{row['function']}`",
                        f(row["ncalls"]),
                        f(row["tottime_s"], 2),
                        f(row["cumtime_s"], 2),
                        f"{row['tottime_share'] * 100:.1f} %",
                    ]
                    for row in prof["rows"][:10]
                ],
            )
        )
        md.append("")
    else:
        md.append("\n")
    steady = _patch_rows(r.get("patch_async_request_slots"), [("", "cpu_per_round_ms_steady", 0)])
    this_run = f" (this run: {steady[0][-1]})" if steady else ""
    unfixed = [
        x["cpu_per_round_ms_steady"] / 1000 for x in (r.get("patch_async_request_slots") or {}).get("before", [])
    ]
    unfixed_here = f"{min(unfixed):.1f}–{max(unfixed):.1f} s in this run and " if unfixed else ""
    md.append(
        "What the fix does and does not do: it does not make a request cheaper while the queue is short (a "
        "loop that keeps up with its schedule spreads its polls out), so the steady-state rows at the 5 s poll "
        f"compare two loops that kept up; their difference{this_run} is of the size seen between repeated runs "
        f"of the same code (the unfixed code gave {unfixed_here}4.9–5.7 s in a three-run check while the "
        "fix was written, where the fix was 5 % lower in the two pairs in which the unfixed loop kept up, and "
        "the third unfixed run collapsed to 17.2 s). It removes the growth when requests bunch up: at the "
        "start of a wait, when all N poll at once (the whole-wait rows, the first round, the peak sockets), "
        "and under overload, where without it the loop does not recover.\n"
    )
    md.append(
        "Before/after, measured in this run (before = the fix taken out). The overload check (3,000 waits "
        "polling every 2 s) forces the collapsed state; with the 5 s poll, 3,000 waits without the fix sit "
        "close to the edge and a run can land either way, so that check runs each side more than once.\n"
    )
    metrics = [
        ("CPU per poll round, steady (ms)", "cpu_per_round_ms_steady", 0),
        ("CPU per status request, steady (µs)", "cpu_us_per_request_steady", 0),
        ("CPU per poll round, whole wait (ms)", "cpu_per_round_ms_total", 0),
        ("first poll of all N done after (s)", "first_round_seconds", 1),
        ("status requests", "status_requests", 0),
        ("requests / minimum", "requests_ratio", 3),
        ("memory per wait (KB)", "kb_per_wait", 1),
        ("TCP sockets, peak", "sockets_peak", 0),
        ("IAM token calls by the waits", "iam_token_calls_waits", 0),
    ]
    for key, what in (
        ("patch_async_request_slots", "normal load, poll every 5 s"),
        ("patch_async_request_slots_overload", "overload, poll every 2 s"),
    ):
        body = _patch_rows(r.get(key), metrics)
        step = runner.step(key)
        if body and step:
            waits_args = " ".join(step.args[step.args.index("--") + 2 :])  # after "-- bench/waits.py"
            md.append(before_after_table(f"`waits.py {waits_args}` ({what})", body))
            md.append(f"\n(Command: `{step.command}`.)\n")
        else:
            md.append(f"Before/after ({what}): the patch check did not run or failed in this run.\n")
    md.append("```diff\n" + (ROOT / ASYNC_SLOTS_DIFF).read_text() + "```\n")
    md.append("### Other observations\n")
    md.append(
        "* httpx's default `keepalive_expiry` is 5 s, equal to the poll interval used here and shorter than the "
        "trigger's default of 15 s: pooled connections that idle between rounds expire and are reopened (see "
        '"TCP connections opened during the wait"); against the real endpoint each reopen is a TLS '
        "handshake, at most 64 per poll round per triggerer. Left as it is on purpose: the gateway's idle "
        "timeout is not documented, and a connection the server has closed while the client still counts it "
        "alive fails the request sent on it (a retried read, or an ambiguous start that needs reconciliation), "
        "which costs more than a handshake."
    )
    md.append(
        "* The emulator listens with a backlog of 1024 (the standard library's default of 5 would make a burst "
        "of new connections wait on SYN retransmits and measure the test server).\n"
    )
    return md


# ============================================================================ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs (harness smoke test)")
    parser.add_argument("--budget-minutes", type=float, default=19.0, help="skip optional steps beyond this")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_DIR",
        help="run nothing: write BENCHMARKS.md and the plot again from a finished run's results directory",
    )
    args = parser.parse_args()

    if args.render:
        # The report's prose changed, the measurements did not: no need to spend 15 minutes again.
        runner, info, args.quick = Runner.reload(args.render)
        workdir = args.render
        p = plan(args.quick)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="aom-bench-results-"))
        info = machine()
        p = plan(args.quick)
        runner = Runner(workdir, budget=args.budget_minutes * 60)
        print(f"[bench] results and logs: {workdir}", flush=True)
        try:
            run_all(runner, p)
        except KeyboardInterrupt:
            print("[bench] interrupted", flush=True)
        info["loadavg_end"] = os.getloadavg()
        info["finished_at"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = collect(runner, p)
    plotted = plot(results)
    result_rows = rows(runner, results)
    REPORT.write_text(report(runner, info, results, result_rows, plotted, args.quick))
    steps = [
        {"key": x.key, "args": x.args, "status": x.status, "seconds": x.seconds, "optional": x.optional}
        for x in runner.steps
    ]
    saved = {"machine": info, "results": results, "steps": steps, "elapsed": runner.elapsed(), "quick": args.quick}
    if not args.render:
        (workdir / "results.json").write_text(json.dumps(saved, indent=1, default=str))

    width = max(len(x["metric"]) for x in result_rows)
    print("\n" + "=" * (width + 60))
    for x in result_rows:
        print(
            f"{x['item'][:26]:26s} {x['metric'][:width]:{width}s} {x['value'][:24]:>24s}  "
            f"{x['budget']:>10s}  {x['verdict'].replace('*', '')}"
        )
    print("=" * (width + 60))
    print(
        f"[bench] wrote {REPORT.relative_to(ROOT)}"
        + (f" and {PNG.relative_to(ROOT)}" if plotted else "")
        + f" in {runner.elapsed() / 60:.1f} min; raw results in {workdir}",
        flush=True,
    )
    if any(s.status in ("failed", "timeout") and not s.optional for s in runner.steps):
        return 1
    if args.strict and any(x["verdict"] == "**MISSED**" for x in result_rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
