# ruff: noqa: RUF001, RUF002  (the report uses typographic signs on purpose)
"""Write BENCHMARKS.md and its figures from ``bench/results/*.json`` and ``bench/report.toml``, measuring nothing.

``report.toml`` holds the report's words and budgets; every number comes from a result file:
``machine.json`` and one ``<step>.json`` per step run (``{"step", "command", "status", "seconds",
"result"}``, ``result`` being the script's JSON). A row names its number by a *value*: a dotted path
into ``result`` (``@key``: a key of the file itself), ``a - b`` or ``a / b`` (two paths), or a ``{field}``
template (text). Templates are ``str.format`` over the first run's result (``{a.b}``, ``{a[0]}``,
``{x:code}``: a list as code spans; a summary dict formats as its median). A row's runs are named
by step prefixes (``x`` matches ``x`` and ``x_...``); medians and min–max spreads pool all the values
they find (a summary dict gives its ``values``).

    python bench/render.py [--results DIR] [--report PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any, NamedTuple

import tomllib

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "BENCHMARKS.md"
SPEC = ROOT / "bench" / "report.toml"
Run = dict[str, Any]
Row = dict[str, Any]
Stats = tuple[int, float, float, float]  # n, median, min, max
FIELDS = ("label", "value", "fmt", "unit", "budget")  # a table row written as an array: these in order


class Verdict(NamedTuple):
    """A line of "Results against the budgets"."""

    benchmark: str
    metric: str
    median: str
    spread: str
    budget: str
    verdict: str
    command: str


class View:
    """A JSON value as ``str.format`` fields: ``{a.b}``, ``{a[0]}``, ``{x:code}``; missing ones read n/a."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __getitem__(self, key: str | int) -> View:
        data, key = self.data, str(key)
        if isinstance(data, dict):
            return View(data.get(key))
        if isinstance(data, list) and key.isdigit() and int(key) < len(data):
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
    """A template filled from the first run's result (every field n/a without a run)."""
    return text.format_map(View(runs[0]["result"] if runs else None))


def value_of(run: Run, value: str) -> Any:
    if "{" in value:
        return fill(value, [run])
    if " - " in value or " / " in value:
        (a, b), minus = (value_of(run, part) for part in re.split(" [-/] ", value)), " - " in value
        return None if not (number(a) and number(b) and (minus or b)) else a - b if minus else a / b
    if value.startswith("@"):
        return run.get(value[1:])
    data: Any = run["result"]
    for part in value.split("."):
        data = View(data)[part].data
    return data


def samples(runs: list[Run], value: str) -> tuple[list[float], list[str]]:
    """The numbers (a summary dict gives its ``values``) and the other values a value finds in the runs."""
    numbers: list[float] = []
    texts: list[str] = []
    for run in runs:
        found = value_of(run, value)
        if isinstance(found, dict) and "median" in found:
            found = found.get("values") or [found["median"]]
        for item in found if isinstance(found, list) else [found]:
            if isinstance(item, bool | int | float):
                numbers += [] if math.isnan(item) else [float(item)]
            elif item is not None:
                texts.append(str(item))
    return numbers, texts


def key_of(run: Run, key: Row) -> Any:
    """A grid key's value in a run; a ``fmt`` table maps it to a template (``{recent = "{n} newest"}``)."""
    value, fmt = value_of(run, key["value"]), key.get("fmt", ",.1f")
    return fill(fmt[str(value)], [run]) if isinstance(fmt, dict) else value


def number(x: Any) -> bool:
    return isinstance(x, int | float)


def as_row(row: Row | list[Any]) -> Row:
    return row if isinstance(row, dict) else dict(zip(FIELDS, row, strict=False))


def table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


class Report:
    def __init__(self, directory: Path, spec: Path = SPEC) -> None:
        self.spec = tomllib.loads(spec.read_text())
        self.budgets: dict[str, str] = self.spec["budgets"]
        self.machine: dict[str, Any] = json.loads((directory / "machine.json").read_text())
        files = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json")) if p.name != "machine.json"]
        found = {data["step"]: data for data in files}
        order = [name for name in self.machine.get("steps", []) if name in found]
        self.runs: dict[str, Run] = {name: found[name] for name in [*order, *sorted(set(found) - set(order))]}

    def select(self, prefixes: str | list[str]) -> list[Run]:
        """The completed runs of the steps ``prefixes`` name (a step ``x`` repeated is ``x_0``, ``x_1``…)."""
        wanted = [prefixes] if isinstance(prefixes, str) else prefixes
        ok = [(name, run) for name, run in self.runs.items() if run["status"] == "ok"]
        return [run for name, run in ok if any(name == p or name.startswith(p + "_") for p in wanted)]

    def cell(self, runs: list[Run], row: Row, prefix: str = "") -> tuple[str, str, Stats | None]:
        """(median, spread, statistics) of a row over runs, formatted as it says; ``ratio``: median / median."""
        fmt, value, texts = row.get("fmt", ",.1f"), row["value"], list[str]()
        if "ratio" in row:
            num, den = (samples(self.select(p), value)[0] for p in row["ratio"])
            numbers = [statistics.median(num) / statistics.median(den)] if num and statistics.median(den or [0]) else []
        else:
            plain = not re.search(r"[{@]| [-/] ", value)
            numbers, texts = samples(runs, prefix + value if plain else value)
        if not numbers:
            return (", ".join(dict.fromkeys(texts)) or "n/a"), "", None
        s = (len(numbers), statistics.median(numbers), min(numbers), max(numbers))
        spread = "n=1" if s[0] == 1 else f"{s[2]:{fmt}}–{s[3]:{fmt}} (n={s[0]})"
        return f"{s[1]:{fmt}}{row.get('unit', '')}", spread, s

    def judge(self, row: Row, s: Stats | None) -> str:
        """PASS or FAIL against the row's budget ("≤ L" on the median, "≥ L" too; "(every run)": on max / min)."""
        if not row.get("budget"):
            return "—"
        if s is None:
            return "**FAIL** (no result)"
        _, limit, lower, every = self.budget(row["budget"])
        x = (s[2] if lower else s[3]) if every else s[1]
        return "PASS" if (x >= limit if lower else x <= limit) else "**FAIL**"

    def budget(self, key: str) -> tuple[str, float, bool, bool]:
        """(text, limit, a lower bound, on every run) of a budget written "≤ 1.5 ms (every run)" or "≥ 0.95×"."""
        text = self.budgets[key]
        sign, limit = re.match(r"([≤≥]) ([\d,.]+)", text).groups()  # type: ignore[union-attr]
        return text, float(limit.replace(",", "")), sign == "≥", "(every run)" in text

    def runs_of(self, section: Row, part: Row | None = None) -> list[Run]:
        return self.select((part or {}).get("runs") or section["runs"])

    def verdicts(self) -> list[Verdict]:
        """The lines of "Results against the budgets": the rows of every section."""
        out = []
        for number, section in enumerate(self.spec["section"], 1):
            title = f"{number} " + fill(section["title"], self.runs_of(section))
            for row in section.get("rows", []):
                ratio = "ratio" in row
                runs = [r for p in row["ratio"] for r in self.select(p)] if ratio else self.runs_of(section, row)
                median, spread, s = self.cell(runs, row)
                commands = list(dict.fromkeys(f"`{run['command']}`" for run in runs))
                command = " / ".join(commands) if ratio else (commands[0] if commands else "n/a")
                budget = self.budgets[row["budget"]] if row.get("budget") else "—"
                label, verdict = fill(row["label"], runs), self.judge(row, s)
                out.append(Verdict(title, label, median, spread, budget, verdict, command))
        return out

    def metrics(self, section: Row, part: Row) -> str:
        """One line per row; per column (label, runs, path prefix) the median and the spread."""
        headers, columns = ["Metric"], []
        for label, runs, prefix, *_ in [[*c, "", ""] for c in part.get("columns", [[""]])]:
            selected = self.select(runs) if runs else self.runs_of(section)
            headers += [fill(label, selected) or "median", "spread"]
            columns.append((selected, prefix))
        body = []
        for row in map(as_row, part["rows"]):
            body.append([row["label"], *(x for runs, prefix in columns for x in self.cell(runs, row, prefix)[:2])])
        return table(headers, body)

    def grid(self, section: Row, part: Row) -> str:
        """One line per group of runs with the same ``keys``; a budgeted column gets a verdict in each cell."""
        keys, groups = [as_row(k) for k in part["keys"]], dict[tuple[Any, ...], list[Run]]()
        for run in self.runs_of(section, part):
            groups.setdefault(tuple(key_of(run, k) for k in keys), []).append(run)
        count = part.get("count", True)
        headers = [k["label"] for k in keys] + (["runs"] if count else []) + [as_row(c)["label"] for c in part["rows"]]
        body, fmts = [], [k.get("fmt", ",.1f") for k in keys]
        for key, runs in sorted(groups.items(), key=lambda g: [(0, v) if number(v) else (1, str(v)) for v in g[0]]):
            pairs = zip(key, fmts, strict=True)
            line = ["n/a" if v is None else v if isinstance(f, dict) else format(v, f) for v, f in pairs]
            line += [str(len(runs))] if count else []
            for column in map(as_row, part["rows"]):
                median, spread, s = self.cell(runs, column)
                text = f"{median} ({spread})" if part.get("spread") and s and s[0] > 1 else median
                line.append(text + (f" {self.judge(column, s)}" if column.get("budget") else ""))
            body.append(line)
        return table(headers, body)

    def plot(self, section: Row, p: Row) -> str:
        """A figure of panels side by side: per series (runs with the same ``series`` value) median and min–max."""
        runs, link = self.runs_of(section, p), f"![{p['alt']}]({p['plot']})\n"
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            import matplotlib.ticker as ticker
        except ImportError:
            print(f"matplotlib is not installed: {p['plot']} was not redrawn", file=sys.stderr)
            return link
        if not runs:
            return f"(No runs: `{p['plot']}` was not redrawn.)\n"
        fig, axes = plt.subplots(1, len(p["panels"]), figsize=(5.5 * len(p["panels"]), 4.2), squeeze=False)
        xs_seen: set[float] = set()
        for series, (label, style, color) in p["styles"].items():
            by_x: dict[float, list[Run]] = {}
            for run in runs:
                if str(value_of(run, p["series"])) == series:
                    by_x.setdefault(float(value_of(run, p["x"])), []).append(run)
            for ax, panel in zip(axes[0], p["panels"], strict=True):
                points = [(x, s) for x, g in sorted(by_x.items()) if (s := self.cell(g, {"value": panel["value"]})[2])]
                if not points:
                    continue
                xs_seen.update(x for x, _ in points)
                err = [[s[1] - s[2] for _, s in points], [s[3] - s[1] for _, s in points]]
                xs, medians = [x for x, _ in points], [s[1] for _, s in points]
                ax.errorbar(xs, medians, yerr=err, fmt=style, color=color, label=label, capsize=3)
        for ax, panel in zip(axes[0], p["panels"], strict=True):
            yfmt = panel.get("yfmt", ",.0f")
            yplain = ticker.FuncFormatter(lambda v, _, f=yfmt: f"{v:{f}}")
            if panel.get("budget"):
                text, limit, *_ = self.budget(panel["budget"])
                ax.axhline(limit, color="green", linestyle=":", label=f"budget {text}")
            if panel.get("line"):
                path, scale, template = panel["line"]
                level = value_of(runs[0], path)
                if number(level):
                    ax.axhline(level * scale, color="orange", linestyle=":", label=template.format(level))
            ax.set_xscale("log")
            ax.set_yscale(panel.get("yscale", "log"))
            ax.set_xticks(sorted(xs_seen))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.yaxis.set_major_formatter(yplain)
            if panel.get("yscale", "log") == "log":
                ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
                ax.yaxis.set_minor_formatter(yplain)
                ax.tick_params(axis="y", which="minor", labelsize=7)
            else:
                ax.set_ylim(bottom=0)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel(p["xlabel"])
            ax.set_ylabel(panel["ylabel"])
            ax.set_title(panel["title"])
            ax.legend(fontsize=7)
        fig.suptitle(p["title"], fontsize=10)
        fig.tight_layout()
        (ROOT / p["plot"]).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(ROOT / p["plot"], dpi=110)
        plt.close(fig)
        return link

    def section(self, number: int, section: Row) -> list[str]:
        runs = self.runs_of(section)
        md = [f"## {number}. {fill(section['title'], runs)}\n", fill(section["method"].strip(), runs) + "\n"]
        if not runs:
            return [*md, "**No result**: every step of this benchmark failed, timed out or was skipped.\n"]
        for part in section.get("part", []):
            if "text" in part:
                md.append(fill(part["text"].strip(), runs) + "\n")
            elif "plot" in part:
                md.append(self.plot(section, part))
            else:
                md.append(self.grid(section, part) if "keys" in part else self.metrics(section, part))
        return md

    def markdown(self, rows: list[Verdict]) -> str:
        m, text = self.machine, self.spec["text"]
        minutes = f"{m['elapsed_s'] / 60:.1f}"
        facts = View({**m, "quick": " --quick" if m["quick"] else "", "minutes": minutes})
        md = ["# Benchmarks\n", text["intro"].strip().format_map(facts) + "\n"]
        for rerun in m.get("reruns", []):
            steps = ", ".join(f"`{name}`" for name in rerun["steps"])
            md.append(text["rerun"].strip().format(at=rerun["at"], steps=steps) + "\n")
        if m["quick"]:
            md.append("**A `--quick` smoke run** (smaller sizes, fewer runs): not a measurement to compare.\n")
        md += ["## Results against the budgets\n", text["results"].strip() + "\n"]
        md.append(table([f.capitalize() for f in Verdict._fields[:-1]] + ["Reproduce"], list(map(list, rows))))
        budgeted = [row for row in rows if row.budget != "—"]
        missed = [row for row in budgeted if row.verdict != "PASS"]
        passed = f"**All {len(budgeted)} budgeted rows passed in this run.**"
        misses = "; ".join(f"{r.benchmark}: {r.metric} = {r.median} (budget {r.budget})" for r in missed)
        md.append((f"**Budgets missed in this run:** {misses}." if missed else passed) + "\n")
        incomplete = [f"`{name}` ({run['status']})" for name, run in self.runs.items() if run["status"] != "ok"]
        if incomplete:
            md.append("Steps that did not complete: " + ", ".join(incomplete) + ".\n")
        for number, section in enumerate(self.spec["section"], 1):
            md += self.section(number, section)
        source = f"commit {m['commit']}" + (" with uncommitted changes to the package" if m["package_dirty"] else "")
        loads = " → ".join(" / ".join(f"{x:.2f}" for x in m[k]) for k in ("loadavg_start", "loadavg_end"))
        facts_table = [
            ["CPU", f"{m['cpu']}, {m['cores_logical']} logical cores ({m['cores_physical']} physical)"],
            ["Memory", f"{m['memory_gib']:.1f} GiB"],
            ["OS", m["os"]],
            ["Python", m["python"]],
            ["Packages", ", ".join(f"{name} {version}" for name, version in m["versions"].items())],
            ["Source", f"{source}; package sources sha256 {m['package_sha256']}…"],
            ["Measured", f"{m['started_at']} to {m['finished_at']} ({minutes} minutes)"],
            ["Load average (1/5/15 min), start → end", f"{loads} (a shared machine: other work adds noise)"],
        ]
        md += ["## Machine\n", table(["", ""], facts_table), "## Reproducing\n", text["reproducing"].strip() + "\n"]
        body = [[f"`{n}`", r["status"], f"{r['seconds']:.0f}", f"`{r['command']}`"] for n, r in self.runs.items()]
        md.append(table(["Step", "Status", "Seconds", "Command"], body))
        return "\n".join(md)


def render(directory: Path = RESULTS, target: Path = REPORT) -> list[Verdict]:
    """Write the report (and its figures) from ``directory``; returns the lines of the results table."""
    report = Report(directory)
    rows = report.verdicts()
    target.write_text(report.markdown(rows))
    return rows


def print_summary(rows: list[Verdict]) -> None:
    for title, metric, median, _, budget, verdict, _ in rows:
        print(f"{title[:28]:28s} {metric[:60]:60s} {median:>12s} {budget:>19s}  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results directory of a run")
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown file to write")
    args = parser.parse_args()
    print_summary(render(args.results, args.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
