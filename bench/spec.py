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
titles are templates, so they name the cell from its own result (``"{n:,} waits"``). A figure
that compares two steps (one cell against another, ours against a peer) is a :class:`Ratio`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

# ============================================================================ vocabulary


@dataclass(frozen=True)
class Budget:
    """A bound on the ``over`` statistic of a row's values: an upper bound on the median or max
    (every run), or with ``lower`` a lower bound on the median or min (every run)."""

    limit: float
    unit: str = ""
    over: str = "median"
    lower: bool = False

    @property
    def text(self) -> str:
        sign = "≥" if self.lower else "≤"
        return f"{sign} {self.limit:,g}{self.unit}" + (" (every run)" if self.over in ("max", "min") else "")

    def holds(self, value: float) -> bool:
        return value >= self.limit if self.lower else value <= self.limit


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
class Ratio:
    """A figure across steps: the median of ``value`` over the runs of step ``num`` / its median over ``den``."""

    value: str  # a dotted path into each run's JSON
    num: str  # step name (prefix) of the numerator's runs
    den: str  # step name (prefix) of the denominator's runs


@dataclass(frozen=True)
class Row:
    """A metric: label (a template over the first run read), where its value is, how it is written."""

    label: str
    value: Value | Ratio
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
    yscale: str = "log"  # or "linear"
    yfmt: str = ",.0f"  # tick labels of the y axis


@dataclass(frozen=True)
class Plot:
    """A figure of ``panels`` side by side: per series (runs with the same ``series`` value), median and min–max."""

    file: str
    alt: str
    title: str
    x: str
    xlabel: str
    series: str
    styles: dict[str, tuple[str, str, str]]  # series value (as text): (legend label, matplotlib format, colour)
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
    # The latency/burst matrix (issue 14): every cell, and the largest size against the smallest.
    "matrix_cpu_ms": Budget(1.5, " ms", over="max"),
    "matrix_cpu_growth": Budget(1.3, "×"),
    "matrix_polls_done": Budget(0.95, "×", over="min", lower=True),
    "matrix_waits_per_core": Budget(10_000, over="min", lower=True),
    # Against the peers a user might pick instead.
    "peer_http_cpu": Budget(0.5, "×"),
    "peer_http_kb": Budget(0.5, "×"),
    "peer_sdk_call": Budget(1.0, "×"),
    "peer_sdk_import": Budget(1.0, "×"),
    # A real triggerer of the production cluster (scripts/cluster.py) holding deferred AOM tasks.
    "triggerer_kb": Budget(32.0, " KB"),
    "triggerer_sockets": Budget(100, over="max"),
    "triggerer_iam_calls": Budget(1, over="max"),
    # One read of a long execution list (streamed, 10 newest rows kept), against json.loads of the same bytes.
    "list_rss_mb": Budget(16.0, " MB", over="max"),
    "list_cpu": Budget(1.0, "×"),
    "list_cpu_stretch": Budget(0.5, "×", over="max"),
    "list_cpu_growth": Budget(11.0, "×"),
    "list_block_ms": Budget(50.0, " ms", over="max"),
}

# ============================================================================ benchmarks

B = "bench/"
SHARED, NAIVE = "waits_main_shared", "waits_main_naive"
#: The real-triggerer steps: AOM waits, and the reference (the same deferred tasks on Airflow's DateTimeTrigger).
TRIGGERER, TRIGGERER_REF = "triggerer_aom", "triggerer_noop"


def _waits(name: str, n: int, mode: str, repeat: int, quick_repeat: int, duration: int = 0, **kw: Any) -> Step:
    """Runs of bench/waits.py; ``optional`` (the scaling runs) unless told otherwise."""
    args: tuple[str, ...] = (B + "waits.py", "--n", str(n), "--mode", mode)
    args += ("--duration", str(duration)) if duration else ()
    return Step(name, args, repeat=repeat, quick_repeat=quick_repeat, **{"timeout": 400, "optional": True, **kw})


def _client(auth: str) -> Step:
    args = (B + "client_overhead.py", "--auth", auth)
    return Step(
        f"client_{auth}",
        (*args, "--rounds", "15", "--calls", "300"),
        (*args, "--rounds", "5", "--calls", "200"),
        estimate=45,
    )


#: The latency/burst matrix: concurrent waits × how long the server takes to answer a status request.
MATRIX_SIZES = (200, 1000, 2000, 5000)
MATRIX_DELAYS_MS = (0, 100)
#: Seconds each execution runs, per size: the steady window opens half an interval after the last
#: wait's first poll (the burst), which takes longer the more waits there are.
MATRIX_DURATION = {200: 22, 1000: 25, 2000: 40, 5000: 75}
#: The peer runs at this size, against the matrix's cell of the same size with answers at once.
PEER_N = 1000
#: A cProfile of one cell (slower: its figures are not pooled with the matrix's).
PROFILE = "profile_1000_100ms"


def matrix_step(n: int, delay_ms: int) -> str:
    return f"matrix_{delay_ms}ms_{n}"


def _matrix(n: int, delay_ms: int) -> Step:
    args: tuple[str, ...] = (B + "waits.py", "--n", str(n), "--mode", "shared", "--duration", str(MATRIX_DURATION[n]))
    args += ("--answer-delay", f"{delay_ms / 1000:g}") if delay_ms else ()
    return Step(
        matrix_step(n, delay_ms),
        args,
        quick_repeat=1 if n <= 1000 else 0,
        timeout=MATRIX_DURATION[n] + 240,
        estimate=MATRIX_DURATION[n] + (12 if n <= 1000 else 25),
    )


#: The execution-list reads: (step name, rows, every row kept), each step a fresh process per run.
LIST_READS = (
    ("list_read_1k", 1_000, False),
    ("list_read_10k", 10_000, False),
    ("list_read_100k", 100_000, False),
    ("list_read_all_10k", 10_000, True),
)


def _list_read(name: str, rows: int, keep_all: bool) -> Step:
    args: tuple[str, ...] = (B + "list_read.py", "--rows", str(rows)) + (("--keep", "all") if keep_all else ())
    big = rows >= 100_000
    return Step(
        name,
        args,
        repeat=3,
        quick_repeat=0 if big else 1,
        timeout=900 if big else 300,
        estimate=75 if big else 12,
    )


def _recent(path: str) -> Callable[[dict[str, Any]], Any]:
    """A list-read value of the runs that keep the 10 newest rows (None for those that keep every row)."""
    return lambda r: r.get(path) if r.get("keep") == "recent" else None


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
        "interval after launch, or half an interval after the last wait's first poll if that is later (every wait "
        "has polled once; the first pause of each wait, drawn in 0.5–1.5 intervals, has spread their phases over the "
        "interval), to {window_end_margin_s:g} s before the first execution can end;\n"
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
            Row(
                "TCP sockets open (peak; the per-host cap is 128)",
                "sockets_peak",
                ",.0f",
                budget="wait_sockets",
                runs=SHARED,
            ),
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
        "matrix",
        "Latency and burst matrix: concurrent waits × answer delay",
        "`bench/waits.py` as in section 4 (the real `AomWorkflowExecutionTrigger`, every wait deferred at the same "
        "moment like mapped tasks, one asyncio loop, password auth, `poll_interval={poll_interval_s:g}`), at "
        + " / ".join(f"{n:,}" for n in MATRIX_SIZES)
        + " waits, with the emulator answering every AOM request at once or after holding it 100 ms "
        "(`--answer-delay`: each connection has its own server thread, so a held answer holds no other). The "
        "executions run long enough for a steady window after the burst of first polls. Per cell:\n\n"
        "* **CPU per status poll** = the worker's CPU time (`time.process_time()`, the worker process only: "
        "neither the emulator nor the sampling parent) in the steady window / status requests the emulator served "
        "in it; **waits per triggerer core at a 15 s poll** = 15 s / that;\n"
        "* **polls done / due**: due = N × window / poll interval, done = status requests served in the window. "
        "Each wait sleeps a poll interval *after* its answer, so with 100 ms answers the most it can reach is "
        "5 / 5.1 = 0.98;\n"
        "* **first round**: from the launch until the last wait's first poll was served (the burst: N triggers "
        "start, read the connection, share one IAM token and poll once);\n"
        "* **sockets**: TCP connections of the worker (psutil), peak and steady median; the transport allows "
        "{max_connections_per_host} per host; **slot waits**: share of the window's requests that found all of them "
        "busy (instrumentation wrapped around the transport's slot wait);\n"
        "* **emulator cores**: CPU time of the emulator process per second of the window (sampled by the parent), "
        "to tell a server that cannot keep up from a client that cannot.",
        (
            *(_matrix(n, d) for d in MATRIX_DELAYS_MS for n in MATRIX_SIZES),
            Step(
                PROFILE,
                (B + "waits.py", "--n", "1000", "--mode", "shared", "--answer-delay", "0.1", "--profile"),
                quick_repeat=0,
                timeout=300,
                estimate=45,
                optional=True,
            ),
        ),
        rows=(
            Row(
                "CPU per status poll, steady state, every cell (ms)",
                "cpu_ms_per_poll_steady",
                ",.2f",
                budget="matrix_cpu_ms",
                runs="matrix",
            ),
            *(
                Row(
                    f"CPU per status poll, {MATRIX_SIZES[-1]:,} waits / {MATRIX_SIZES[0]:,} waits, "
                    + ("answers at once" if d == 0 else f"{d} ms answers"),
                    Ratio("cpu_ms_per_poll_steady", matrix_step(MATRIX_SIZES[-1], d), matrix_step(MATRIX_SIZES[0], d)),
                    ".2f",
                    "×",
                    budget="matrix_cpu_growth",
                )
                for d in MATRIX_DELAYS_MS
            ),
            Row(
                f"polls done / polls due, 100 ms answers, every size up to {MATRIX_SIZES[-1]:,}",
                "polls_done_ratio",
                ".3f",
                "×",
                budget="matrix_polls_done",
                runs="matrix_100ms",
            ),
            Row(
                "polls done / polls due, answers at once, every size (no budget)",
                "polls_done_ratio",
                ".3f",
                "×",
                runs="matrix_0ms",
            ),
            Row(
                "waits per triggerer core at a 15 s poll (15 s / CPU per poll), every cell",
                "waits_per_core_15s",
                ",.0f",
                budget="matrix_waits_per_core",
                runs="matrix",
            ),
            Row("TCP sockets open, peak, per cell", "sockets_peak", ",.0f", runs="matrix"),
            Row("memory per wait, every cell (KB)", "kb_per_wait", runs="matrix"),
        ),
        tables=(
            Plot(
                "docs/bench/matrix.png",
                "CPU per status poll and polls done / due against the number of concurrent waits, per answer delay",
                "Waits deferred together, 5 s poll (worker CPU only; the emulator runs in a separate process)",
                "n",
                "concurrent waits in one process",
                "answer_delay_ms",
                {
                    "0": ("answers at once", "o-", "#c7000b"),
                    "100": ("100 ms answers", "s--", "#1f5fbf"),
                },
                (
                    Panel(
                        "cpu_ms_per_poll_steady",
                        "worker CPU per status poll (ms)",
                        "CPU per status poll (steady state)",
                        budget="matrix_cpu_ms",
                        yscale="linear",
                        yfmt=".2f",
                    ),
                    Panel(
                        "polls_done_ratio",
                        "polls done / polls due",
                        "Polls done / due (steady window)",
                        budget="matrix_polls_done",
                        yscale="linear",
                        yfmt=".2f",
                    ),
                ),
                runs="matrix",
            ),
            Grid(
                (Row("N", "n", ",.0f"), Row("answer delay (ms)", "answer_delay_ms", ",.0f")),
                (
                    Row("CPU ms / poll", "cpu_ms_per_poll_steady", ",.2f", budget="matrix_cpu_ms"),
                    Row("waits / core @ 15 s", "waits_per_core_15s", ",.0f"),
                    Row("polls done / due", "polls_done_ratio", ".3f"),
                    Row("first round (s)", "first_round_seconds"),
                    Row("window (s)", lambda r: "{:.0f}–{:.0f}".format(*r["steady_window_s"]), ""),
                    Row("sockets peak", "sockets_peak", ",.0f"),
                    Row("sockets steady", "sockets_steady_median", ",.0f"),
                    Row("slot waits", "slot_wait_share", ".1%"),
                    Row("connections opened in window", "tcp_connects_steady", ",.0f"),
                    Row("KB / wait", "kb_per_wait"),
                    Row("worker cores", "worker_cpu_share_steady", ".2f"),
                    Row("emulator cores", "server_cpu_share_steady", ".2f"),
                ),
                runs="matrix",
                count=False,
            ),
            "How to read it. **CPU per poll** does not grow with N: the transport's per-host stack takes and "
            "returns a connection in O(1), and from 1,000 to 5,000 waits it even falls, as each wake-up of the loop "
            "serves more polls. It is highest at 200 waits (40 polls a second), where the loop wakes up for each "
            "poll on its own, twice with 100 ms answers (to send, then to read): the same 200 waits polled every "
            "second with 100 ms answers (`python bench/waits.py --n 200 --poll 1 --answer-delay 0.1`, 200 polls a "
            "second) cost 0.83 ms per poll in a separate run, less than half the 5 s poll's figure. The cost is per "
            "wake-up, not per wait; at 40 polls a second the loop uses under a tenth of a core. "
            "**Polls done / due** falls when the loop runs short: at 5,000 waits and a 5 s poll it serves 1,000 "
            "polls a second on about 0.8 of a core; with 100 ms answers every reply waits for the loop to read "
            "it while holding its socket, so all 128 sockets are taken most of the time (slot waits) and polls "
            "slip. More sockets do not help (192 made 0.92 in a separate run): the loop is the limit, which is "
            "why docs/scaling.md plans at most about 2,000 waits per triggerer at a 5 s poll. **Sockets**: by "
            "Little's law a host answering in 100 ms serves at most 128 sockets / 0.1 s = 1,280 requests a second; "
            "the 64 sockets the transport had before capped it at 640. **First round**: the N triggers start "
            "together and each reads the connection before its first poll, so the burst of the largest sizes "
            "takes seconds.",
            Metrics(
                (
                    Row("our code: trigger, hook, protocol, transport", "profile.layers.ours", ".0%"),
                    Row("httpcore (connection, HTTP/1.1 driver)", "profile.layers.httpcore", ".0%"),
                    Row("h11 (HTTP/1.1 parser, pure Python)", "profile.layers.h11", ".0%"),
                    Row("anyio (httpcore's async backend)", "profile.layers.anyio", ".0%"),
                    Row("asyncio event loop", "profile.layers.asyncio", ".0%"),
                    Row("environment proxy lookup (urllib, os.environ)", "profile.layers.proxy lookup", ".0%"),
                    Row("C built-ins (socket send/recv, isinstance, …)", "profile.layers.builtins", ".0%"),
                    Row("other", "profile.layers.other", ".0%"),
                ),
                (Column("share of the worker's busy time, 1,000 waits, 100 ms answers (cProfile)", runs=PROFILE),),
            ),
        ),
    ),
    Benchmark(
        "peers",
        "Against the peers: the deferrable HttpSensor and Huawei's official SDK",
        "**HttpSensor(deferrable=True)**: what it defers to, the http provider's `HttpSensorTrigger`, {n:,} of them "
        "run by `bench/waits.py --mode http` exactly as section 4 runs ours (one loop, launched together, the same "
        "emulator and `poke_interval={poll_interval_s:g}`), each polling the same status URL "
        "`GET /v1/{{project_id}}/cms/workflow/{{workflow_id}}/executions/{{execution_id}}/status` with a static "
        "`X-Auth-Token` header (what a user might write instead of the provider). `HttpSensorTrigger` fires on the "
        "first answer that is not a 404 (a `response_check` makes the sensor not defer at all), so it can only keep "
        "polling a status URL that answers 404: each polls an execution that does not exist, and the worker stops "
        "them after {duration_s:g} s. Per poll it opens an `aiohttp.ClientSession` (a new TCP connection), runs "
        "tenacity's retry loop, logs a warning for the 404 and raises. It is compared with our cell of the matrix "
        "at the same size with answers at once (`matrix_0ms_{n}`); same definitions as there.\n\n"
        "**Huawei's official SDK** (`huaweicloudsdkaom`, in a venv of its own, `.venv-sdk`, made by the step on "
        "first use because the SDK pins its own dependencies): `bench/sdk_overhead.py` times the same status call "
        "(AK/SK signed by both) with the SDK's `AomClient.search_workflow_execution_detail` and with "
        "`AomHook.get_execution`, each side in fresh processes, alternating, CPU by `time.process_time()`; and the "
        "import of each in fresh interpreters that first load, untimed, what a task process has already loaded "
        "(the hook side `airflow.sdk`; the SDK side every module `airflow.sdk` loads that its venv can import).",
        (
            Step(
                "peer_http",
                (B + "waits.py", "--n", str(PEER_N), "--mode", "http"),
                (B + "waits.py", "--n", "300", "--mode", "http"),
                timeout=300,
                estimate=35,
            ),
            Step(
                "peer_sdk",
                (B + "sdk_overhead.py", "--rounds", "6", "--calls", "400", "--imports", "7"),
                (B + "sdk_overhead.py", "--rounds", "2", "--calls", "100", "--imports", "3"),
                timeout=600,
                estimate=60,
            ),
        ),
        rows=(
            Row(
                f"CPU per status poll, ours / HttpSensorTrigger ({PEER_N:,} waits, answers at once)",
                Ratio("cpu_us_per_request_steady", matrix_step(PEER_N, 0), "peer_http"),
                ".2f",
                "×",
                budget="peer_http_cpu",
            ),
            Row(
                f"memory per wait, ours / HttpSensorTrigger ({PEER_N:,} waits)",
                Ratio("kb_per_wait", matrix_step(PEER_N, 0), "peer_http"),
                ".2f",
                "×",
                budget="peer_http_kb",
            ),
            Row("HttpSensorTrigger: TCP sockets open, peak", "sockets_peak", ",.0f", runs="peer_http"),
            Row(
                "CPU per status call, AomHook.get_execution / official SDK (AK/SK)",
                "ratio_call_cpu",
                ".2f",
                "×",
                budget="peer_sdk_call",
                runs="peer_sdk",
            ),
            Row(
                "import time, AomHook (+ transport) / official SDK client",
                "ratio_import_wall",
                ".2f",
                "×",
                budget="peer_sdk_import",
                runs="peer_sdk",
            ),
        ),
        tables=(
            Metrics(
                (
                    Row("CPU per status poll (µs)", "cpu_us_per_request_steady", ",.0f"),
                    Row("memory per wait (KB)", "kb_per_wait"),
                    Row("TCP sockets open, peak", "sockets_peak", ",.0f"),
                    Row("TCP sockets open, steady median", "sockets_steady_median", ",.0f"),
                    Row("TCP connections opened during the wait", "tcp_connects_waits", ",.0f"),
                    Row("polls done / due (steady window)", "polls_done_ratio", ".3f"),
                    Row("first poll of all N done after (s)", "first_round_seconds"),
                    Row("emulator cores in the window", "server_cpu_share_steady", ".2f"),
                ),
                (
                    Column("ours: AomWorkflowExecutionTrigger", runs=matrix_step(PEER_N, 0)),
                    Column("HttpSensorTrigger", runs="peer_http"),
                ),
            ),
            Metrics(
                (
                    Row("CPU per status call (µs)", "call_cpu_us", ",.0f"),
                    Row("wall per status call (µs)", "call_wall_us", ",.0f"),
                    Row("import, wall (ms)", "import_wall_ms", ",.1f"),
                    Row("import, CPU (ms)", "import_cpu_ms", ",.1f"),
                    Row("modules the import adds", "modules_added", ",.0f"),
                ),
                (
                    Column("`AomHook.get_execution`", runs="peer_sdk", prefix="sides.hook."),
                    Column("official SDK {sdk_version}", runs="peer_sdk", prefix="sides.sdk."),
                ),
            ),
            "Imports timed: `import airflow_provider_aom.hooks.aom, airflow_provider_aom.transport` against "
            "`from huaweicloudsdkaom.v1 import AomClient, SearchWorkflowExecutionDetailRequest; "
            "from huaweicloudsdkcore.auth.credentials import BasicCredentials`.",
            "How to read it. `HttpSensorTrigger` spends less CPU per poll than the 0.5× budget asks of ours, for "
            "two reasons measured here. Its poll is the cheapest one HTTP allows: a 404 whose body is never "
            "parsed, nothing validated, no status tracked. And aiohttp parses HTTP in C (llhttp) on asyncio's own "
            "transport, where ours runs pure-Python HTTP/1.1 (h11, httpcore, and anyio under httpcore), about a "
            "third of our poll in the cProfile of section 5. aiohttp is not in Airflow 3.3's own dependency "
            "tree (only the http provider brings it), so the provider does not build on it. What the "
            "deferrable HttpSensor pays instead: a new TCP connection per poll (4,002 for 1,000 waits, and one "
            "socket per wait at the peak), 3× our memory per wait, and no byte cap, token renewal or "
            "execution status at all.",
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
            # Longer executions: the steady window opens after the burst of 3,000 first polls.
            _waits("waits_scale_shared_3000", 3000, "shared", 1, 0, duration=40, estimate=70),
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
    Benchmark(
        "triggerer",
        "A real triggerer: {n:,} deferred AOM tasks on the production cluster",
        "`bench/triggerer.py` starts the `make cluster` deployment (`scripts/cluster.py`: PostgreSQL, Redis, "
        "CeleryExecutor, api-server, scheduler, dag-processor) with one `airflow triggerer` and {workers} Celery "
        "workers of {worker_concurrency} slots, the DAG `bench/dags/aom_triggerer_bench.py` (one "
        "`AomExecuteWorkflowOperator(wait_for_completion=True, deferrable=True)` mapped over the run's workflow ids) "
        "and an `aom_default` connection with password auth (IAM token) and no project id, to an emulator in a "
        "process of its own whose `wf-slow-*` workflows never end. The triggerer's session (the `airflow "
        "triggerer` supervisor and the trigger-runner child it forks) is sampled from outside with psutil every "
        "{sample_interval_s:g} s. Sequence: the triggerer idle as started ({idle_s:g} s, *cold*); a warm-up run of "
        "{warmup_tasks} short AOM waits through it (it imports the provider's async stack, opens its pool, gets a "
        "token), then idle again ({idle_s:g} s, *warm*: the baseline); **arrival**: a run of {n:,} mapped tasks, "
        "each submitting one execution on a worker and deferring with `poll_interval={poll_interval_s:g}` to this "
        "triggerer as it comes, then a steady window; **restart**: the triggerer stopped (SIGTERM) and started "
        "again, a fresh process that takes all {n:,} triggers at once while the workers sit idle (so every IAM "
        "call after the restart is the triggerer's), then a second steady window. Steady windows as in section 4: "
        "from one poll interval after the first status poll, or half an interval after the last trigger's first "
        "poll if later (arrival: half an interval after the last one's first poll), {window_s:g} s long. The "
        "reference (`--trigger noop`) is the same sequence with `TimeDeltaSensor(deferrable=True)` tasks (a "
        "one-minute warm-up, then a day), which defer to Airflow's own `DateTimeTrigger`: it logs and sleeps, so "
        "it shows what any deferred task costs a triggerer.\n\n"
        "Definitions:\n\n"
        "* **RSS per deferred task** = (median session RSS in the steady window − median session RSS of the warm "
        "idle triggerer) / N, split by process (supervisor, trigger runner). Arrival: how much that one process "
        "grew; restart: a different process of the same code and configuration, which took the N triggers in "
        "one burst (the budget is on the arrival figure, the growth of one triggerer). Against the cold idle "
        "triggerer the figure also carries the one-time import of the provider's async stack;\n"
        "* **CPU per status poll** = session CPU time (user + system, both processes) in the steady window / status "
        "requests the emulator served in it (only the triggerer polls then); *net* first takes off the warm idle "
        "triggerer's CPU rate over the window (heartbeats, trigger-table checks, which do not grow with N);\n"
        "* **polls due** = N × window / poll interval; **polls done** = status requests served in the window;\n"
        "* **sockets** = distinct TCP connections of the session (a socket a forked child shares counts once), peak "
        "from the phase's start to its window's end and median in the window, also those to the AOM endpoint and "
        "to PostgreSQL; the budget is on the peak of both phases;\n"
        "* **IAM calls** = `POST /v3/auth/tokens` in the emulator's log after the restart.",
        (
            Step(
                TRIGGERER,
                (B + "triggerer.py", "--n", "300"),
                (B + "triggerer.py", "--n", "50", "--window", "30"),
                timeout=1500,
                estimate=470,
            ),
            Step(
                TRIGGERER_REF,
                (B + "triggerer.py", "--n", "300", "--trigger", "noop"),
                quick_repeat=0,
                timeout=1500,
                estimate=450,
                optional=True,
            ),
        ),
        rows=(
            Row(
                "RSS growth per deferred AOM task beyond the idle triggerer, {n:,} tasks arriving (KB)",
                "arrival.kb_per_task",
                budget="triggerer_kb",
                runs=TRIGGERER,
            ),
            Row(
                "same, a restarted triggerer taking all {n:,} at once, against the idle one (KB)",
                "restart.kb_per_task",
                runs=TRIGGERER,
            ),
            Row(
                "same, {n:,} tasks arriving that defer to Airflow's DateTimeTrigger (reference: any deferred task, KB)",
                "arrival.kb_per_task",
                runs=TRIGGERER_REF,
            ),
            Row(
                "TCP sockets of the triggerer, peak of both phases (AOM endpoint and PostgreSQL)",
                "sockets_peak",
                ",.0f",
                budget="triggerer_sockets",
                runs=TRIGGERER,
            ),
            Row(
                "IAM token calls by the restarted triggerer for its {n:,} triggers (password auth)",
                "iam_calls_triggerer",
                ",.0f",
                budget="triggerer_iam_calls",
                runs=TRIGGERER,
            ),
            Row(
                "triggerer CPU per status poll, steady state, whole session (ms)",
                "arrival.cpu_ms_per_poll",
                ",.2f",
                runs=TRIGGERER,
            ),
            Row("same, less the idle triggerer's CPU rate (ms)", "arrival.cpu_ms_per_poll_net", ",.2f", runs=TRIGGERER),
        ),
        tables=(
            Metrics(
                (
                    Row("RSS per deferred task, session, vs warm idle (KB)", "kb_per_task"),
                    Row("… of which the triggerer supervisor (KB)", "kb_per_task_supervisor"),
                    Row("… of which the trigger runner (KB)", "kb_per_task_runner"),
                    Row("RSS per deferred task, session, vs cold idle (KB)", "kb_per_task_cold"),
                    Row("session RSS, steady (MB)", "steady_rss_mb"),
                    Row("session RSS, peak (MB)", "peak_rss_mb"),
                    Row("trigger runner RSS, steady (MB)", "steady_rss_runner_mb"),
                    Row("CPU per status poll, session (ms)", "cpu_ms_per_poll", ",.2f"),
                    Row("CPU per status poll, session, net of idle (ms)", "cpu_ms_per_poll_net", ",.2f"),
                    Row("CPU per status poll, trigger runner (ms)", "cpu_ms_per_poll_runner", ",.2f"),
                    Row("CPU per status poll, trigger runner, net of idle (ms)", "cpu_ms_per_poll_runner_net", ",.2f"),
                    Row("session cores in the window", "steady_cores", ".3f"),
                    Row("polls due in the window", "polls_due", ",.0f"),
                    Row("polls done in the window", "polls_done", ",.0f"),
                    Row("polls done / due", "polls_done_ratio", ".3f"),
                    Row("status answers other than 200 in the window", "status_errors", ",.0f"),
                    Row("TCP sockets, peak", "sockets_peak", ",.0f"),
                    Row("TCP sockets, steady median", "sockets_median", ",.0f"),
                    Row("… to the AOM endpoint, peak", "sockets_aom_peak", ",.0f"),
                    Row("… to the AOM endpoint, steady median", "sockets_aom_median", ",.0f"),
                    Row("… to PostgreSQL, steady median", "sockets_db_median", ",.0f"),
                    Row("first to last trigger's first poll (s; arrival: as the tasks came)", "first_round_s"),
                    Row("steady window (s after the phase began)", "steady_window", ""),
                ),
                (
                    Column("AOM: arrival", runs=TRIGGERER, prefix="arrival."),
                    Column("AOM: restart", runs=TRIGGERER, prefix="restart."),
                    Column("reference: arrival", runs=TRIGGERER_REF, prefix="arrival."),
                    Column("reference: restart", runs=TRIGGERER_REF, prefix="restart."),
                ),
            ),
            Metrics(
                (
                    Row("session RSS, cold idle (MB)", "idle_cold_rss_mb"),
                    Row("session RSS, warm idle (MB)", "idle_rss_mb"),
                    Row("trigger runner RSS, warm idle (MB)", "idle_rss_runner_mb"),
                    Row("session cores, warm idle", "idle_cores", ".3f"),
                    Row("triggers held by the triggerer: arrival", "triggers_held", ",.0f"),
                    Row("triggers held by the triggerer: restart", "triggers_held_restart", ",.0f"),
                    Row("IAM token calls: triggerer after the restart", "iam_calls_triggerer", ",.0f"),
                    Row("other IAM calls: triggerer after the restart", "iam_other_calls_triggerer", ",.0f"),
                    Row("IAM token calls during the arrival (the workers')", "iam_calls_arrival", ",.0f"),
                    Row("N tasks submitted and deferred in (s)", "submit_s", ",.0f"),
                    Row("restart: all N triggers held after (s)", "pickup_s"),
                    Row("processes left after the cluster stopped", "leftover_processes", ",.0f"),
                    Row("whole step, cluster start-up and stop included (s)", "seconds", ",.0f"),
                ),
                (
                    Column("AOM waits (`AomWorkflowExecutionTrigger`)", runs=TRIGGERER),
                    Column("reference (`DateTimeTrigger`)", runs=TRIGGERER_REF),
                ),
            ),
            "The workers' IAM calls are one per task: every task runs in a fresh process with a token cache of "
            "its own. The trigger runner shares one token and one connection pool per host among all its "
            "triggers: after the restart its {n:,} triggers started together, all polled once within "
            "{restart.first_round_s:.1f} s over at most {restart.sockets_aom_peak} connections, and the steady "
            "rate of {n:,} polls per {poll_interval_s:g} s keeps about {arrival.sockets_aom_median:g} open. The "
            "supervisor keeps per trigger Airflow's own bookkeeping (the task instance it runs for, a log file "
            "opened at the trigger's first log line, with its write buffer), whatever the trigger: the reference "
            "columns show what a trigger that only sleeps costs.",
        ),
    ),
    Benchmark(
        "list",
        "Reading a long execution list",
        "AOM's execution list (`GET /v1/{{project_id}}/cms/workflow/{{workflow_id}}/executions`) is a bare JSON "
        "array of the workflow's whole history, without paging; the provider reads it as it streams in "
        "(`airflow_provider_aom/execution_list.py`: ijson's C backend, only the rows a `keep` predicate chooses "
        "kept, as slim `ExecutionBrief`s without node results). `bench/list_read.py --rows N` has the emulator "
        "(a separate process) seed N ended executions of {nodes} node results each on `{workflow}` (its "
        "`history`/`history_nodes`, streamed, never held) and measures two fresh interpreters:\n\n"
        "* **json.loads** (no Airflow imported): the raw list fetched once with `http.client` (the hook's URL, "
        "static token, the same emulator configuration: the same answer), its size, then "
        "`time.process_time()` of `json.loads` of those bytes, best of {json_loads_runs} (gc enabled as normal), "
        "and for reference one more with the cyclic GC disabled; its peak RSS growth is that of the first "
        "`json.loads` (what a reader that parses the answer whole needs);\n"
        "* **hook read**: a warm-up `AomAsyncHook.list_executions` of a {warmup_rows}-row history (imports, "
        "connection, pool, first request; its oldest row gives the floor), then the history set to N, "
        "`gc.collect()`, and ONE read `await hook.list_executions(\"{workflow}\", keep=since(floor))` on an "
        "asyncio loop, the floor keeping the {kept_rows_target} newest rows (the `all` line: `keep=None`, every "
        "row kept). Over that read: **read CPU** = `time.process_time()` delta; **peak RSS growth** = VmHWM after "
        "(reset just before by writing 5 to `/proc/self/clear_refs`) − VmRSS before; **longest loop block** = "
        "the largest gap between wake-ups of a concurrent task looping on `await asyncio.sleep(0.001)`, minus "
        "1 ms. That monitor's own CPU is in the read's; its cost per wake-up, calibrated on the idle loop after "
        "the read, gives the *net* column (not budgeted).\n\n"
        "Each step runs 3 times, each run a new process with its own emulator; figures are medians over the "
        "runs (min–max in brackets). The ratio read / json.loads is taken within each run.",
        tuple(_list_read(*cell) for cell in LIST_READS),
        rows=(
            Row(
                "peak RSS growth during one read of 100,000 rows × 20 nodes, 10 kept (MB)",
                "read_rss_growth_mb",
                ",.2f",
                budget="list_rss_mb",
                runs="list_read_100k",
            ),
            *(
                Row(
                    f"read CPU / json.loads CPU of the same bytes, {rows:,} rows, 10 kept",
                    "cpu_ratio",
                    ".2f",
                    "×",
                    budget="list_cpu",
                    runs=name,
                )
                for name, rows, keep_all in LIST_READS
                if not keep_all
            ),
            Row(
                "same, every size (stretch goal)",
                _recent("cpu_ratio"),
                ".2f",
                "×",
                budget="list_cpu_stretch",
                runs="list_read",
            ),
            Row(
                "read CPU, 100,000 rows / 10,000 rows",
                Ratio("read_cpu_s", "list_read_100k", "list_read_10k"),
                ".2f",
                "×",
                budget="list_cpu_growth",
            ),
            Row(
                "longest event-loop block during a read, every read (ms)",
                "longest_block_ms",
                ",.1f",
                budget="list_block_ms",
                runs="list_read",
            ),
            Row(
                "peak RSS growth, 10,000 rows, every row kept (keep=None, MB)",
                "read_rss_growth_mb",
                ",.2f",
                runs="list_read_all_10k",
            ),
        ),
        tables=(
            Grid(
                (
                    Row("rows", "rows", ",.0f"),
                    Row("kept", lambda r: "all" if r["keep"] == "all" else f"{r['kept_rows_target']} newest", ""),
                ),
                (
                    Row("list (MB)", "list_mb", ",.1f"),
                    Row("json.loads CPU (s)", "json_loads_cpu_s", ",.3f"),
                    Row("read CPU (s)", "read_cpu_s", ",.3f"),
                    Row("read / json.loads", "cpu_ratio", ".2f", "×"),
                    Row("peak RSS growth, read (MB)", "read_rss_growth_mb", ",.2f"),
                    Row("longest loop block (ms)", "longest_block_ms", ",.1f"),
                    Row("read CPU, net of the monitor (s)", "read_cpu_net_s", ",.3f"),
                    Row("read wall (s)", "read_wall_s", ",.2f"),
                    Row("read MB / CPU s", "read_mb_per_cpu_s", ",.1f"),
                    Row("json.loads CPU, gc off (s)", "json_loads_nogc_cpu_s", ",.3f"),
                    Row("peak RSS growth, json.loads (MB)", "json_loads_rss_growth_mb", ",.0f"),
                    Row("rows kept", "rows_kept", ",.0f"),
                ),
                runs="list_read",
                spread=True,
            ),
            "How to read it. The read's CPU and wall time include receiving the body (the transport's HTTP/1.1 "
            "framing and byte cap) as well as parsing it; `json.loads` gets the bytes already in memory. A "
            "`json.loads` of the whole list builds every row with its node results at once, so its cost per byte "
            "grows with the list as the cyclic GC keeps walking the objects built so far (compare the gc-off "
            "column); the "
            "streamed read keeps only the chosen rows, so its memory stays flat whatever the size. The machine "
            "is shared with the emulator, which generates the rows as it sends them.",
        ),
    ),
)
