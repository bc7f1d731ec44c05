"""Before/after numbers for a product patch, without touching the source tree.

Copies ``airflow_provider_aom`` to a temporary directory, applies the patch there
(``patch -p1``), and runs one benchmark script alternately against the installed package
("before") and the patched copy put first on ``PYTHONPATH`` ("after"), each ``--runs`` times.
With ``--reverse`` the patch is one already applied to the tree: the copy is un-patched
(``patch -R``) and is "before", the installed package "after". The copy is removed afterwards.

    python bench/patch_check.py --patch bench/patches/known-project-id.diff --runs 2 -- \
        bench/client_overhead.py --auth token
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, write_json


def patched_copy(patch: Path, reverse: bool = False) -> tuple[str, str]:
    """A temporary directory holding the patched (or un-patched) package, and the output of ``patch``."""
    workdir = tempfile.mkdtemp(prefix="aom-bench-patched-")
    shutil.copytree(
        ROOT / "airflow_provider_aom",
        Path(workdir) / "airflow_provider_aom",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    result = subprocess.run(
        ["patch", "-p1", "--reverse" if reverse else "--forward", "--batch", "-d", workdir, "-i", str(patch.resolve())],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"{patch.name} does not apply to the current tree:\n{result.stdout}{result.stderr}")
    return workdir, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patch", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument(
        "--reverse", action="store_true", help="the patch is already applied: before = the un-patched copy"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on one benchmark run, seconds")
    parser.add_argument("--json-out")
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = parser.parse_args()
    bench = [a for a in args.bench if a != "--"] if args.bench else []
    if not bench:
        parser.error("name the benchmark script after --")

    result: dict[str, Any] = {
        "patch": str(args.patch),
        "reverse": args.reverse,
        "bench": bench,
        "before": [],
        "after": [],
    }
    try:
        workdir, applied = patched_copy(args.patch, args.reverse)
    except RuntimeError as exc:
        result["error"] = str(exc)
        print(exc, file=sys.stderr)
        write_json(args.json_out, result)
        return 1
    result["applied"] = applied.strip().splitlines()
    try:
        for run in range(args.runs):
            sides = ["before", "after"] if run % 2 == 0 else ["after", "before"]
            for side in sides:
                env = dict(os.environ)
                env.pop("PYTHONPATH", None)
                if (side == "before") == args.reverse:
                    env["PYTHONPATH"] = workdir
                with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
                    out = handle.name
                try:
                    proc = subprocess.run(
                        [PYTHON, *bench, "--json-out", out],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=args.timeout,
                        check=False,
                    )
                    if proc.returncode != 0:
                        raise RuntimeError(f"{side} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                    result[side].append(json.loads(Path(out).read_text()))
                finally:
                    os.unlink(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
