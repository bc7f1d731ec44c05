# ruff: noqa: RUF001, RUF002  (the report text uses typographic signs on purpose)
"""Write BENCHMARKS.md (and its plots) from ``bench/results/`` and ``bench/spec.py``, measuring nothing.

Every figure in the report comes from a result file: ``machine.json`` (the machine, versions,
commit, times, load) and one ``<step>.json`` per benchmark step (``{"step", "command", "status",
"seconds", "result"}``, ``result`` being the script's JSON). Medians and min–max spreads pool
the values of all runs a row reads; a budgeted row passes when the budget's statistic is within it.

    python bench/render.py                            # from bench/results/ into BENCHMARKS.md
    python bench/render.py --results DIR --report PATH
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spec import BENCHMARKS, BUDGETS, Benchmark, Grid, Metrics, Plot, Ratio, Row, Value

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "BENCHMARKS.md"
Run = dict[str, Any]


# ============================================================================ reading


class Results:
    """The result files of one ``bench/run.py`` run, in the order the steps ran."""

    def __init__(self, directory: Path) -> None:
        self.machine: dict[str, Any] = json.loads((directory / "machine.json").read_text())
        found = {}
        for path in sorted(directory.glob("*.json")):
            if path.name != "machine.json":
                data = json.loads(path.read_text())
                found[data["step"]] = data
        order = [name for name in self.machine.get("steps", []) if name in found]
        self.runs: dict[str, Run] = {name: found[name] for name in [*order, *sorted(set(found) - set(order))]}

    def select(self, prefixes: tuple[str, ...]) -> list[Run]:
        """The completed runs of the steps named by ``prefixes`` (a step ``x`` repeated is ``x_0``, ``x_1``…)."""
        return [
            run
            for name, run in self.runs.items()
            if run["status"] == "ok" and any(name == p or name.startswith(p + "_") for p in prefixes)
        ]

    def of(self, bench: Benchmark, prefix: str | None = None) -> list[Run]:
        return self.select((prefix,) if prefix else tuple(step.name for step in bench.steps))


def value_of(run: Run, value: Value) -> Any:
    """The value a row names in one run: a dotted path into its JSON, ``@key`` of the file, or a function."""
    if not isinstance(value, str):
        return value(run["result"])
    if value.startswith("@"):
        return run.get(value[1:])
    data: Any = run["result"]
    for part in value.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def samples(runs: list[Run], value: Value) -> tuple[list[float], list[str]]:
    """Numbers (a summary dict adds its ``values``) and other values a row finds in the runs."""
    numbers: list[float] = []
    texts: list[str] = []
    for run in runs:
        try:
            found = value_of(run, value)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(found, dict) and "median" in found:
            found = found.get("values") or [found["median"]]
        for item in found if isinstance(found, list) else [found]:
            if isinstance(item, bool | int | float):
                if not math.isnan(item):
                    numbers.append(float(item))
            elif item is not None:
                texts.append(str(item))
    return numbers, texts


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    min: float
    max: float


def ratio_of(results: Results, ratio: Ratio) -> list[float]:
    """A :class:`Ratio`: median over the numerator's runs / median over the denominator's ([] when one is missing)."""
    num, _ = samples(results.select((ratio.num,)), ratio.value)
    den, _ = samples(results.select((ratio.den,)), ratio.value)
    if not num or not den or statistics.median(den) == 0:
        return []
    return [statistics.median(num) / statistics.median(den)]


def cell(runs: list[Run], row: Row, prefix: str = "", results: Results | None = None) -> tuple[str, str, Stats | None]:
    """(median, spread, statistics) of a row over runs, formatted as the row says (a :class:`Ratio` needs results)."""
    texts: list[str] = []
    if isinstance(row.value, Ratio):
        numbers = ratio_of(results, row.value) if results is not None else []
    else:
        value = prefix + row.value if isinstance(row.value, str) and not row.value.startswith("@") else row.value
        numbers, texts = samples(runs, value)
    if numbers:
        s = Stats(len(numbers), statistics.median(numbers), min(numbers), max(numbers))
        spread = "n=1" if s.n == 1 else f"{s.min:{row.fmt}}–{s.max:{row.fmt}} (n={s.n})"
        return f"{s.median:{row.fmt}}{row.unit}", spread, s
    return (", ".join(dict.fromkeys(texts)) or "n/a"), "", None


class View:
    """A run's JSON as ``str.format`` fields: ``{a.b}``, ``{a[0]}``; ``{x:code}`` lists code spans; missing: n/a."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __getitem__(self, key: str | int) -> View:
        data = self.data
        if isinstance(data, dict):
            return View(data.get(str(key)))
        if isinstance(data, list) and str(key).isdigit() and int(key) < len(data):
            return View(data[int(key)])
        return View(None)

    def __getattr__(self, name: str) -> View:
        return self[name]

    def __format__(self, spec: str) -> str:
        data = self.data
        if data is None:
            return "n/a"
        if spec == "code":
            return ", ".join(f"`{x}`" for x in data) or "none"
        if isinstance(data, dict) and "median" in data:
            data = data["median"]
        return format(data, spec)


def fill(text: str, runs: list[Run]) -> str:
    """A template filled from the first run (fields read n/a when there is none)."""
    return text.format_map(View(runs[0]["result"] if runs else None))


def table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


# ============================================================================ sections


@dataclass(frozen=True)
class Verdict:
    benchmark: str
    metric: str
    median: str
    spread: str
    budget: str
    verdict: str
    command: str


def judge(row: Row, s: Stats | None) -> str:
    """PASS or FAIL against the row's budget ("—" without one)."""
    if row.budget is None:
        return "—"
    budget = BUDGETS[row.budget]
    if s is None:
        return "**FAIL** (no result)"
    return "PASS" if budget.holds(getattr(s, budget.over)) else "**FAIL**"


def row_runs(results: Results, bench: Benchmark, row: Row) -> list[Run]:
    """The runs a row reads (a ratio: its numerator's and its denominator's)."""
    if isinstance(row.value, Ratio):
        return results.select((row.value.num,)) + results.select((row.value.den,))
    return results.of(bench, row.runs)


def verdicts(results: Results) -> list[Verdict]:
    """The lines of "Results against the budgets": every row of every benchmark."""
    out = []
    for number, bench in enumerate(BENCHMARKS, 1):
        title = f"{number} " + fill(bench.title, results.of(bench))
        for row in bench.rows:
            runs = row_runs(results, bench, row)
            median, spread, s = cell(runs, row, results=results)
            budget = BUDGETS[row.budget].text if row.budget else "—"
            commands = list(dict.fromkeys(f"`{run['command']}`" for run in runs))
            command = " / ".join(commands) if isinstance(row.value, Ratio) else (commands[0] if commands else "n/a")
            out.append(Verdict(title, fill(row.label, runs), median, spread, budget, judge(row, s), command))
    return out


def metrics_table(results: Results, bench: Benchmark, spec: Metrics) -> str:
    headers, columns = ["Metric"], []
    for column in spec.columns:
        runs = results.of(bench, column.runs)
        headers += [fill(column.label, runs) or "median", "spread"]
        columns.append((runs, column.prefix))
    body = []
    for row in spec.rows:
        line = [row.label]
        for runs, prefix in columns:
            median, spread, _ = cell(runs, row, prefix, results)
            line += [median, spread]
        body.append(line)
    return table(headers, body)


def grid_table(results: Results, bench: Benchmark, spec: Grid) -> str:
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in results.of(bench, spec.runs):
        key = tuple(None if isinstance(k.value, Ratio) else value_of(run, k.value) for k in spec.keys)
        groups.setdefault(key, []).append(run)

    def order(item: tuple[tuple[Any, ...], list[Run]]) -> tuple[tuple[int, Any], ...]:
        return tuple((0, v) if isinstance(v, int | float) else (1, str(v)) for v in item[0])

    headers = [k.label for k in spec.keys] + (["runs"] if spec.count else []) + [c.label for c in spec.columns]
    body = []
    for key, runs in sorted(groups.items(), key=order):
        line = ["n/a" if v is None else format(v, k.fmt) for v, k in zip(key, spec.keys, strict=True)]
        line += [str(len(runs))] if spec.count else []
        for column in spec.columns:
            median, spread, s = cell(runs, column, results=results)
            text = f"{median} ({spread})" if spec.spread and s and s.n > 1 else median
            line.append(text + (f" {judge(column, s)}" if column.budget else ""))
        body.append(line)
    return table(headers, body)


def plot(results: Results, bench: Benchmark, spec: Plot) -> str:
    runs = results.of(bench, spec.runs)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return f"(matplotlib is not installed: `{spec.file}` was not redrawn.)\n"
    if not runs:
        return f"(No runs: `{spec.file}` was not redrawn.)\n"
    fig, axes = plt.subplots(1, len(spec.panels), figsize=(5.5 * len(spec.panels), 4.2), squeeze=False)
    xs_seen: set[float] = set()
    for series, (label, style, color) in spec.styles.items():
        by_x: dict[float, list[Run]] = {}
        for run in runs:
            if str(value_of(run, spec.series)) == series:
                by_x.setdefault(float(value_of(run, spec.x)), []).append(run)
        for ax, panel in zip(axes[0], spec.panels, strict=True):
            points = [(x, cell(group, Row("", panel.value))[2]) for x, group in sorted(by_x.items())]
            points_ok = [(x, s) for x, s in points if s is not None]
            if not points_ok:
                continue
            xs_seen.update(x for x, _ in points_ok)
            med = [s.median for _, s in points_ok]
            err = [[s.median - s.min for _, s in points_ok], [s.max - s.median for _, s in points_ok]]
            ax.errorbar([x for x, _ in points_ok], med, yerr=err, fmt=style, color=color, label=label, capsize=3)
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    for ax, panel in zip(axes[0], spec.panels, strict=True):
        yplain = matplotlib.ticker.FuncFormatter(lambda v, _, f=panel.yfmt: f"{v:{f}}")
        if panel.budget:
            budget = BUDGETS[panel.budget]
            ax.axhline(budget.limit, color="green", linestyle=":", label=f"budget {budget.text}")
        if panel.line:
            path, scale, text = panel.line
            level = value_of(runs[0], path)
            if isinstance(level, int | float):
                ax.axhline(level * scale, color="orange", linestyle=":", label=text.format(level))
        ax.set_xscale("log")
        ax.set_yscale(panel.yscale)
        ax.set_xticks(sorted(xs_seen))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_formatter(yplain)
        if panel.yscale == "log":
            ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2.0, 5.0)))
            ax.yaxis.set_minor_formatter(yplain)
            ax.tick_params(axis="y", which="minor", labelsize=7)
        else:
            ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel(spec.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title)
        ax.legend(fontsize=7)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    (ROOT / spec.file).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(ROOT / spec.file, dpi=110)
    plt.close(fig)
    return f"![{spec.alt}]({spec.file})\n"


def section(results: Results, number: int, bench: Benchmark) -> list[str]:
    runs = results.of(bench)
    md = [f"## {number}. {fill(bench.title, runs)}\n", fill(bench.method, runs) + "\n"]
    if not runs:
        return [*md, "**No result**: every step of this benchmark failed, timed out or was skipped.\n"]
    for part in bench.tables:
        if isinstance(part, Metrics):
            md.append(metrics_table(results, bench, part))
        elif isinstance(part, Grid):
            md.append(grid_table(results, bench, part))
        elif isinstance(part, Plot):
            md.append(plot(results, bench, part))
        else:
            md.append(fill(part, runs) + "\n")
    return md


def loads(values: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in values)


def report(results: Results, rows: list[Verdict]) -> str:
    m = results.machine
    minutes = f"{m['elapsed_s'] / 60:.1f}"
    md = [
        "# Benchmarks\n",
        f"Written by `bench/render.py` from the results of `bench/run.py{' --quick' if m['quick'] else ''}` in "
        f"`bench/results/` (measured {m['started_at']} to {m['finished_at']}, {minutes} minutes, commit "
        f"{m['commit']}). Do not edit by hand: `make bench` measures again, `make bench-render` re-renders. Every "
        "benchmark talks to the local emulator (`python -m airflow_provider_aom.emulator`) over loopback, in a "
        "separate process, so the client's CPU time never includes the server's.\n",
    ]
    for rerun in m.get("reruns", []):
        md.append(
            f"Re-measured later with `bench/run.py --only` ({rerun['at']}, on the code of that time): "
            + ", ".join(f"`{name}`" for name in rerun["steps"])
            + ". Figures from different runs of one shared machine differ by its load; compare within a run.\n"
        )
    if m["quick"]:
        md.append("**A `--quick` smoke run** (smaller sizes, fewer runs): not a measurement to compare.\n")
    md.append("## Results against the budgets\n")
    md.append(
        "Median over the runs; spread is min–max over the runs (n = values pooled over the runs: rounds or "
        "interpreters inside one run count each). A budget marked *every run* holds for the maximum. The command "
        "reproduces one run of the row.\n"
    )
    headers = ["Benchmark", "Metric", "Median", "Spread", "Budget", "Verdict", "Reproduce"]
    md.append(table(headers, [[*vars(r).values()] for r in rows]))
    budgeted = [r for r in rows if r.budget != "—"]
    missed = [r for r in budgeted if r.verdict != "PASS"]
    if missed:
        md.append(
            "**Budgets missed in this run:** "
            + "; ".join(f"{r.benchmark}: {r.metric} = {r.median} (budget {r.budget})" for r in missed)
            + ".\n"
        )
    else:
        md.append(f"**All {len(budgeted)} budgeted rows passed in this run.**\n")
    incomplete = [f"`{name}` ({run['status']})" for name, run in results.runs.items() if run["status"] != "ok"]
    if incomplete:
        md.append("Steps that did not complete: " + ", ".join(incomplete) + ".\n")
    for number, bench in enumerate(BENCHMARKS, 1):
        md += section(results, number, bench)
    v = m["versions"]
    md.append("## Machine\n")
    source = f"commit {m['commit']}" + (" with uncommitted changes to the package" if m["package_dirty"] else "")
    md.append(
        table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']}, {m['cores_logical']} logical cores ({m['cores_physical']} physical)"],
                ["Memory", f"{m['memory_gib']:.1f} GiB"],
                ["OS", m["os"]],
                ["Python", m["python"]],
                ["Packages", ", ".join(f"{name} {version}" for name, version in v.items())],
                ["Source", f"{source}; package sources sha256 {m['package_sha256']}…"],
                ["Measured", f"{m['started_at']} to {m['finished_at']} ({minutes} minutes)"],
                [
                    "Load average (1/5/15 min), start → end",
                    f"{loads(m['loadavg_start'])} → {loads(m['loadavg_end'])} (a shared machine: other work adds "
                    "noise)",
                ],
            ],
        )
    )
    md.append("## Reproducing\n")
    md.append(
        "`make bench` installs matplotlib, psutil and apache-airflow-providers-http into `.venv` (the official "
        "SDK's step makes its own `.venv-sdk` on first use) and runs "
        "`bench/run.py`: each step below in its own process group with a timeout (the group is killed if it "
        "overruns), optional steps skipped when the total time budget would be exceeded. Every step's JSON is "
        "stored in `bench/results/<step>.json` next to `machine.json`, then `bench/render.py` writes this file "
        "and the plots from those files alone. `python bench/run.py --quick` is a smoke test with small sizes; "
        "`python bench/render.py` (`make bench-render`) re-renders from `bench/results/` without measuring. "
        "Each script in `bench/` also runs alone and prints its JSON; every process a benchmark starts is stopped "
        "at its end (and dies with its parent), nothing listens beyond 127.0.0.1, and each Airflow process gets a "
        "private `AIRFLOW_HOME`. Budgets, steps and this report's rows are declared in `bench/spec.py`.\n"
    )
    body = [[f"`{n}`", r["status"], f"{r['seconds']:.0f}", f"`{r['command']}`"] for n, r in results.runs.items()]
    md.append(table(["Step", "Status", "Seconds", "Command"], body))
    return "\n".join(md)


def render(directory: Path = RESULTS, target: Path = REPORT) -> list[Verdict]:
    """Write the report (and plots) from ``directory``; returns the lines of the results table."""
    results = Results(directory)
    rows = verdicts(results)
    target.write_text(report(results, rows))
    return rows


def print_summary(rows: list[Verdict]) -> None:
    for r in rows:
        print(f"{r.benchmark[:28]:28s} {r.metric[:60]:60s} {r.median:>12s} {r.budget:>19s}  {r.verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results directory of a run")
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown file to write")
    args = parser.parse_args()
    rows = render(args.results, args.report)
    print_summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
