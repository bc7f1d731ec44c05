# ruff: noqa: RUF001, RUF002, RUF003  (the report text uses typographic signs on purpose)
"""What ``make bench`` runs and what BENCHMARKS.md shows: the budgets and one entry per benchmark.

``bench/run.py`` runs every :class:`Step` listed here (each writes one JSON result, stored as
``bench/results/<step>.json``); ``bench/render.py`` turns those files into the report using the
entries below and nothing else. No figure is typed into the report: every number comes from a
result file, through a row (a dotted path into a run's JSON, or a function of it) or a
``{field}`` of a text template (``str.format`` fields over a run's JSON; ``{x:code}`` writes a
list as code spans, a summary formats as its median).

Adding a benchmark:

1. write ``bench/<name>.py``: it takes ``--json-out PATH`` and writes one JSON object there
   (repeated measurements inside one run as :func:`common.summary` dicts: the renderer pools
   their ``values`` over the runs);
2. add a :class:`Benchmark` to :data:`BENCHMARKS`: its steps (command, ``--quick`` variant,
   repeats, timeout), its title and method text, the rows it adds to "Results against the
   budgets" (with a key of :data:`BUDGETS` where it has one) and the tables of its section
   (:class:`Metrics`: one line per metric, :class:`Grid`: one line per group of runs);
3. ``python bench/run.py`` (or only re-render: ``python bench/render.py``).

A matrix of runs (say sizes × answer delays) is one :class:`Step` per cell, made by a
comprehension, shown by one :class:`Grid` keyed by the JSON fields that vary; labels and
titles are templates, so they name the cell from its own result (``"{n:,} waits"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

# ============================================================================ vocabulary


@dataclass(frozen=True)
class Budget:
    """An upper bound on the ``over`` statistic (median, or max: every run) of a row's values."""

    limit: float
    unit: str = ""
    over: str = "median"

    @property
    def text(self) -> str:
        return f"≤ {self.limit:g}{self.unit}" + (" (every run)" if self.over == "max" else "")


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


#: Where a value is in a run: a dotted path into its JSON (``"@step"``: the step's name), or a function of the JSON.
Value = str | Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Row:
    """A metric: label (a template over the first run read), where its value is, how it is written."""

    label: str
    value: Value
    fmt: str = ",.1f"
    unit: str = ""
    budget: str | None = None  # a key of BUDGETS
    runs: str | None = None  # step-name prefix of the runs it reads (None: the benchmark's own steps)


@dataclass(frozen=True)
class Column:
    """A column of a :class:`Metrics` table: the runs it reads, and a path prefix put before each row's path."""

    label: str
    runs: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Metrics:
    """One line per row; per column the median and the min–max spread over the runs (pooled values)."""

    rows: tuple[Row, ...]
    columns: tuple[Column, ...] = (Column(""),)


@dataclass(frozen=True)
class Grid:
    """One line per group of runs with the same ``keys`` values; one column per entry of ``columns``.

    A column with a budget gets a PASS/FAIL verdict in each cell (e.g. a latency matrix: one line
    per size and delay, one budgeted column). Only :attr:`Benchmark.rows` go to the results table.
    """

    keys: tuple[Row, ...]
    columns: tuple[Row, ...]
    runs: str | None = None
    spread: bool = False  # write "median (min–max)" in every cell
    count: bool = True  # a "runs" column


@dataclass(frozen=True)
class Panel:
    value: str
    ylabel: str
    title: str
    budget: str | None = None  # a horizontal line at this budget
    line: tuple[str, float, str] | None = None  # a horizontal line: (path in the first run, scale, label template)


@dataclass(frozen=True)
class Plot:
    """A figure of ``panels`` side by side: per series (runs with the same ``series`` value), median and min–max."""

    file: str
    alt: str
    title: str
    x: str
    xlabel: str
    series: str
    styles: dict[str, tuple[str, str, str]]  # series value: (legend label, matplotlib format, colour)
    panels: tuple[Panel, ...]
    runs: str | None = None


Table = Metrics | Grid | Plot | str  # str: a paragraph, a template over the benchmark's first run


@dataclass(frozen=True)
class Benchmark:
    key: str
    title: str  # a template over the benchmark's first run
    method: str  # what it measures and how (a template over its first run)
    steps: tuple[Step, ...]
    rows: tuple[Row, ...] = ()  # its lines in "Results against the budgets"
    tables: tuple[Table, ...] = field(default=())


# ============================================================================ budgets

BUDGETS: dict[str, Budget] = {
    "parse_ms": Budget(10.0, " ms"),
    "parse_forbidden": Budget(0, over="max"),
    "client_token": Budget(1.15, "×"),
    "client_aksk": Budget(1.30, "×"),
    "token_iam_calls": Budget(1, over="max"),
    "wait_kb": Budget(64.0, " KB"),
    "wait_sockets": Budget(100, over="max"),
    "wait_iam_calls": Budget(1, over="max"),
    "wait_requests_ratio": Budget(1.05, "×", over="max"),
    "wait_failures": Budget(0, over="max"),
}

# ============================================================================ benchmarks

B = "bench/"
SHARED, NAIVE = "waits_main_shared", "waits_main_naive"


def _waits(name: str, n: int, mode: str, repeat: int, quick_repeat: int, **kw: Any) -> Step:
    """Runs of bench/waits.py; ``optional`` (the scaling runs) unless told otherwise."""
    args = (B + "waits.py", "--n", str(n), "--mode", mode)
    return Step(name, args, repeat=repeat, quick_repeat=quick_repeat, **{"timeout": 400, "optional": True, **kw})


def _client(auth: str) -> Step:
    args = (B + "client_overhead.py", "--auth", auth)
    return Step(
        f"client_{auth}",
        (*args, "--rounds", "15", "--calls", "300"),
        (*args, "--rounds", "5", "--calls", "200"),
        estimate=45,
    )


WAITS_METRICS = (
    Row("memory per wait (KB)", "kb_per_wait"),
    Row("memory per wait at peak RSS (KB)", "kb_per_wait_peak"),
    Row("baseline RSS (MB)", "rss_baseline_mb"),
    Row("CPU per poll round, steady (ms)", "cpu_per_round_ms_steady", ",.0f"),
    Row("CPU per poll round, whole wait (ms)", "cpu_per_round_ms_total", ",.0f"),
    Row("CPU per status request, steady (µs)", "cpu_us_per_request_steady", ",.0f"),
    Row("first poll of all N done after (s)", "first_round_seconds"),
    Row("TCP sockets open, peak", "sockets_peak", ",.0f"),
    Row("TCP sockets open, steady median", "sockets_steady_median", ",.0f"),
    Row("TCP connections opened during the wait", "tcp_connects_waits", ",.0f"),
    Row("IAM token calls by the N waits", "iam_token_calls_waits", ",.0f"),
    Row("status requests", "status_requests", ",.0f"),
    Row("minimum status requests", "status_requests_min", ",.0f"),
    Row("requests / minimum", "requests_ratio", ".3f"),
    Row("requests / nominal", "requests_ratio_nominal", ".3f"),
    Row("waits without a success event", "waits_without_success", ",.0f"),
    Row("launch to last event (s)", "wait_seconds"),
)

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "parse",
        "DAG-parse cost",
        "{runs} fresh interpreters per target each import `airflow.sdk` first, then the targets, under "
        "`python -X importtime`; the figure is the sum of the cumulative times of the top-level entries printed "
        "between two markers around the target imports (so every module loaded on the targets' behalf counts, ours "
        "or third-party). Another {runs} fresh interpreters per target time the same imports with "
        "`time.perf_counter` and no `-X importtime`. Targets: {targets.aom:code} (ours) and {targets.http:code} "
        "(reference).",
        (
            Step(
                "parse",
                (B + "parse_cost.py", "--runs", "7"),
                (B + "parse_cost.py", "--runs", "5"),
                timeout=600,
                estimate=60,
            ),
        ),
        rows=(
            Row(
                "import operators.aom + sensors.aom after airflow.sdk (-X importtime, ms)",
                "aom.importtime_ms",
                ",.2f",
                budget="parse_ms",
            ),
            Row("same for airflow.providers.http.operators.http (ms, reference)", "http.importtime_ms", ",.2f"),
            Row(
                "modules our imports add that must not load at parse time (HTTP clients incl. httpcore, async "
                "libraries incl. anyio, retry library, the provider's HTTP layer, the emulator)",
                "aom.forbidden_new_count",
                ",.0f",
                budget="parse_forbidden",
            ),
        ),
        tables=(
            Metrics(
                (
                    Row("-X importtime (ms)", "importtime_ms", ",.2f"),
                    Row("perf_counter (ms)", "perf_ms", ",.2f"),
                    Row("modules added", "new_module_count", ",.0f"),
                ),
                (Column("{targets.aom:code}", prefix="aom."), Column("{targets.http:code}", prefix="http.")),
            ),
            "Modules our two imports add to `sys.modules` (everything else was already loaded by `airflow.sdk`): "
            "{aom.new_modules:code}.",
            "The assertion: none of them is, or is under, {forbidden_names:code}. Found: "
            "{aom.forbidden_new_top_level:code}. Only what our imports add counts: `airflow.sdk` itself already "
            "loads {aom.preloaded_top_level:code} (their submodules would still count). Hooks, the transport and "
            "triggers are imported when a task runs. For reference, the http operator adds "
            "{http.forbidden_new_top_level:code}.",
        ),
    ),
    Benchmark(
        "client",
        "Client overhead per API call",
        "`AomHook.get_execution` against two bare clients sending the same `GET …/executions/{{id}}/status` over a "
        "kept-alive loopback connection and parsing the JSON answer: a `requests.Session` (`get`, "
        "`raise_for_status()`, `.json()`) and an `httpcore.ConnectionPool` (the engine under the hook's transport, "
        "without the transport: `request`, a status check, `json.loads`). Both send the headers the hook's "
        "protocol computed once beforehand (for AK/SK one precomputed signature). The hook does everything per "
        "call: connection config, project id, retry schedule, request building, token header or signing, the "
        "transport's deadline and byte cap, the checks. CPU is `time.process_time()` of the client process; the "
        "emulator runs in another process. Each round alternates the three sides in blocks of {block} calls "
        "(alternating which goes first) so background load hits them alike; the ratios are taken per round. "
        "The budget is on hook / bare requests.",
        (_client("token"), _client("aksk")),
        rows=(
            Row(
                "token auth: CPU per call, hook / bare requests",
                "ratio_cpu.requests",
                ".3f",
                "×",
                budget="client_token",
                runs="client_token",
            ),
            Row(
                "token auth: CPU per call, hook / bare httpcore", "ratio_cpu.httpcore", ".3f", "×", runs="client_token"
            ),
            Row(
                "AK/SK: CPU per call, hook / bare requests",
                "ratio_cpu.requests",
                ".3f",
                "×",
                budget="client_aksk",
                runs="client_aksk",
            ),
            Row("AK/SK: CPU per call, hook / bare httpcore", "ratio_cpu.httpcore", ".3f", "×", runs="client_aksk"),
        ),
        tables=(
            Metrics(
                (
                    Row("hook CPU µs/call", "sides.hook.cpu_us", ",.0f"),
                    Row("bare requests CPU µs/call", "sides.requests.cpu_us", ",.0f"),
                    Row("bare httpcore CPU µs/call", "sides.httpcore.cpu_us", ",.0f"),
                    Row("CPU hook / bare requests", "ratio_cpu.requests", ".3f", "×"),
                    Row("CPU hook / bare httpcore", "ratio_cpu.httpcore", ".3f", "×"),
                    Row("hook wall µs/call", "sides.hook.wall_us", ",.0f"),
                    Row("bare requests wall µs/call", "sides.requests.wall_us", ",.0f"),
                    Row("bare httpcore wall µs/call", "sides.httpcore.wall_us", ",.0f"),
                    Row("wall hook / bare requests", "ratio_wall.requests", ".3f", "×"),
                    Row("wall hook / bare httpcore", "ratio_wall.httpcore", ".3f", "×"),
                    Row("rounds × calls per side", lambda r: f"{r['rounds']} × {r['calls_per_round']}"),
                    Row(
                        "requests seen by the emulator − expected",
                        lambda r: r["requests_seen_by_emulator"] - r["requests_expected"],
                        ",.0f",
                    ),
                ),
                (
                    Column("token (static IAM token)", runs="client_token"),
                    Column("AK/SK (SDK-HMAC-SHA256 signing)", runs="client_aksk"),
                ),
            ),
            "Wall times on loopback are dominated by the emulator (a Python thread-per-connection server) and by "
            "other load on the machine; the CPU ratio is the budgeted figure. `--decompose` and `--profile N` "
            "(not run by `make bench`) add sides that peel the hook's layers off one by one, and a cProfile.",
        ),
    ),
    Benchmark(
        "token",
        "Token reuse",
        "{executions_requested:,} executions started in one process with password auth and no project id in the "
        "connection, a fresh `AomHook` per execution (as each operator instance has its own hook, its transport "
        "closed after each); the emulator counts the calls. Each run is a fresh process.",
        (Step("token", (B + "token_reuse.py", "--executions", "1000"), repeat=3, timeout=180, estimate=10),),
        rows=(
            Row(
                "IAM token calls for {executions_requested:,} executions, fresh AomHook each (password auth)",
                "iam_token_calls",
                ",.0f",
                budget="token_iam_calls",
            ),
        ),
        tables=(
            Grid(
                (Row("Run", "@step", ""),),
                (
                    Row("executions started", "executions_started", ",.0f"),
                    Row("IAM token calls", "iam_token_calls", ",.0f"),
                    Row("IAM project look-ups", "iam_project_lookups", ",.0f"),
                    Row("client CPU ms/execution", "cpu_ms_per_execution", ",.2f"),
                    Row("wall ms/execution", "wall_ms_per_execution", ",.2f"),
                ),
                count=False,
            ),
        ),
    ),
    Benchmark(
        "waits",
        "{n:,} concurrent deferred waits in one process",
        "The real `AomWorkflowExecutionTrigger`, {n:,} of them on one asyncio loop, each consumed with "
        "`async for event in trigger.run()`, all concurrently, as a triggerer runs them; connection from "
        "`AIRFLOW_CONN_AOM_DEFAULT` (password auth, no project id); the emulator in a separate process, workflow "
        "`wf-bench` lasting {duration_s:g} s, `poll_interval={poll_interval_s:g}`. After a warm-up (one trigger to "
        "completion: modules, token, connection pool) the token and project-id caches are emptied so the waits "
        "fetch their token concurrently; `gc.collect()`; baseline RSS; launch. A parent process samples the "
        "worker's RSS and TCP sockets (psutil) every {sample_interval_s:g} s, so sampling costs the worker nothing."
        "\n\nDefinitions:\n\n"
        "* **memory per wait** = (median RSS in the steady window − baseline RSS) / N. Steady window: from one poll "
        "interval after launch (every wait has polled once and sleeps) to {window_end_margin_s:g} s before the first "
        "execution can end;\n"
        "* **CPU per poll round** = worker CPU time in the steady window / status requests the emulator served in "
        'that window × N: the CPU it takes to poll all N once ("whole wait" = launch to last event);\n'
        "* **minimum status requests** of an execution = 1 + ⌈(end − first poll) / poll interval⌉. A ratio below 1 "
        "means polls came later than one per interval (each wait sleeps *after* its answer); above 1 means extra "
        'requests (retries, duplicate polls, project-id look-ups). "Nominal" is {nominal_requests_per_execution} '
        "per execution;\n"
        "* **sockets** = TCP connections of the worker process (psutil); **connections opened** = counted by "
        "wrapping `loop.create_connection`.\n\n"
        "The naive variant is the same trigger whose hook opens a new `httpx.AsyncClient` (same verify/timeout "
        "settings, so a new TCP connection and a new TLS context) for every request and closes it after.",
        (
            _waits(
                SHARED,
                1000,
                "shared",
                3,
                1,
                quick=(B + "waits.py", "--n", "300", "--mode", "shared"),
                estimate=35,
                timeout=300,
                optional=False,
            ),
            _waits(
                NAIVE,
                1000,
                "naive",
                3,
                1,
                quick=(B + "waits.py", "--n", "300", "--mode", "naive"),
                estimate=70,
                optional=False,
            ),
        ),
        rows=(
            Row("resident memory per waiting execution (KB)", "kb_per_wait", budget="wait_kb", runs=SHARED),
            Row("CPU per poll round, steady state (ms)", "cpu_per_round_ms_steady", ",.0f", runs=SHARED),
            Row("TCP sockets open (peak)", "sockets_peak", ",.0f", budget="wait_sockets", runs=SHARED),
            Row(
                "IAM token calls by the waits (password auth)",
                "iam_token_calls_waits",
                ",.0f",
                budget="wait_iam_calls",
                runs=SHARED,
            ),
            Row(
                "status requests / minimum (one per poll interval)",
                "requests_ratio",
                ".3f",
                "×",
                budget="wait_requests_ratio",
                runs=SHARED,
            ),
            Row(
                "waits that did not end with a success event",
                "waits_without_success",
                ",.0f",
                budget="wait_failures",
                runs=SHARED,
            ),
            Row("naive client: memory per wait (KB)", "kb_per_wait", runs=NAIVE),
            Row("naive client: CPU per poll round, steady state (ms)", "cpu_per_round_ms_steady", ",.0f", runs=NAIVE),
        ),
        tables=(
            Metrics(WAITS_METRICS, (Column("shared pool (product)", runs=SHARED), Column("naive", runs=NAIVE))),
            "The naive client spends most of its CPU building a TLS context per `AsyncClient` (httpx loads the CA "
            "bundle even for http:// URLs); while that CPU is serialised on the loop, polls fall behind their "
            "schedule, so its request counts and steady-window figures describe an overloaded loop.",
        ),
    ),
    Benchmark(
        "dag",
        "Per-task overhead in a DAG",
        "`bench/dags/bench_aom_mapped.py` maps `AomExecuteWorkflowOperator` (no wait) {map_size} ways "
        "(`.partial(...).expand(workflow_id=[...])`, AK/SK connection from `AIRFLOW_CONN_AOM_DEFAULT`); "
        "`bench/dags/bench_noop_mapped.py` maps a `PythonOperator` that returns a string {map_size} ways. Each "
        "runs under `airflow dags test` in a private, migrated `AIRFLOW_HOME` under /tmp, alternating (runs of "
        "each: {runs}). "
        "Wall and CPU are the whole command's (including the start-up both pay); the task-instance figure is the "
        "median `duration` of the task instances from the metadata DB (the first task of a run also starts the "
        "in-process execution API; the median leaves it out).",
        (
            Step(
                "dag",
                (B + "dag_overhead.py", "--runs", "3"),
                (B + "dag_overhead.py", "--runs", "1"),
                timeout=900,
                estimate=160,
            ),
        ),
        rows=(
            Row(
                "{map_size} mapped AOM starts vs {map_size} mapped no-op tasks, wall per task (ms)", "per_task_wall_ms"
            ),
            Row("same, CPU per task (ms)", "per_task_cpu_ms"),
            Row("same, median task-instance duration difference (ms)", "per_task_ti_median_ms"),
        ),
        tables=(
            Metrics(
                (
                    Row("`airflow dags test` wall (s)", "wall_s", ",.3f"),
                    Row("`airflow dags test` CPU (s)", "cpu_s", ",.3f"),
                    Row("median task-instance duration (s)", "median_s", ",.3f"),
                    Row("mean task-instance duration (s)", "mean_s", ",.3f"),
                ),
                (Column("{map_size} × AOM start", prefix="aom."), Column("{map_size} × no-op", prefix="noop.")),
            ),
            "What an AOM start does beyond the no-op: read and validate the connection, sign the request, one POST "
            "to the emulator, and two extra XCom pushes (`execution_id` and the console link) besides the return "
            "value; the wall and CPU figures also spread one-time imports (the hook, its transport) over the tasks.",
        ),
    ),
    Benchmark(
        "scale",
        "Scaling with the number of concurrent waits",
        "Every run of `bench/waits.py`: those above and more at other sizes, with the same method (the runs at "
        "other sizes are skipped when they would overrun the total time budget). Spread bars: min–max over the "
        "runs of a point.",
        (
            _waits("waits_scale_shared_100", 100, "shared", 2, 1, estimate=36),
            _waits("waits_scale_shared_300", 300, "shared", 2, 0, estimate=37),
            _waits("waits_scale_shared_3000", 3000, "shared", 1, 0, estimate=60),
            _waits("waits_scale_naive_100", 100, "naive", 1, 1, estimate=35),
            _waits("waits_scale_naive_300", 300, "naive", 1, 0, estimate=45),
        ),
        tables=(
            Plot(
                "docs/bench/waits.png",
                "Memory and CPU per poll round against the number of concurrent waits",
                "Deferred waits on one asyncio loop (emulator in a separate process)",
                "n",
                "concurrent waits in one process",
                "mode",
                {
                    "shared": ("AomWorkflowExecutionTrigger (shared pool)", "o-", "#c7000b"),
                    "naive": ("naive: new AsyncClient per poll", "s--", "#555555"),
                },
                (
                    Panel(
                        "kb_per_wait",
                        "RSS per waiting execution (KB)",
                        "Memory per wait (RSS delta / N)",
                        budget="wait_kb",
                    ),
                    Panel(
                        "cpu_per_round_ms_steady",
                        "client CPU per poll round (ms)",
                        "CPU to poll all N once (steady state)",
                        line=("poll_interval_s", 1000.0, "poll interval ({:g} s of CPU)"),
                    ),
                ),
                runs="waits",
            ),
            Grid(
                (Row("N", "n", ",.0f"), Row("client", "mode", "")),
                (
                    Row("KB per wait", "kb_per_wait"),
                    Row("CPU ms per poll round", "cpu_per_round_ms_steady", ",.0f"),
                    Row("CPU µs per request", "cpu_us_per_request_steady", ",.0f"),
                    Row("peak sockets", "sockets_peak", ",.0f"),
                    Row("requests / minimum", "requests_ratio", ".3f"),
                    Row("first round (s)", "first_round_seconds"),
                ),
                runs="waits",
            ),
            "When the CPU per poll round passes the poll interval (the orange line), one loop can no longer keep the "
            "schedule: polls stretch out and the requests/minimum ratio falls below 1.",
        ),
    ),
)
