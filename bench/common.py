"""Shared helpers of the benchmarks: the emulator in its own process, connections, statistics.

Standard library and ``airflow_provider_aom.emulator`` (standard library only, no Airflow, no HTTP
client) at import time, so every benchmark script can import this before it decides what else to
load. The parse-cost benchmark measures in child interpreters that never import this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from airflow_provider_aom import emulator

# The emulator's default identity, under the names every bench script uses.
AK = emulator.DEFAULT_AK
SK = emulator.DEFAULT_SK
IAM_DOMAIN = emulator.DEFAULT_IAM_DOMAIN
IAM_PASSWORD = emulator.DEFAULT_IAM_PASSWORD
IAM_USER = emulator.DEFAULT_IAM_USER
PROJECT_ID = emulator.DEFAULT_PROJECT_ID
REGION = emulator.DEFAULT_REGION

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable

STATIC_TOKEN = "MIIbench-static-token-0123456789"  # noqa: S105 - accepted by the bench's emulator only


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the process that started it dies (Linux), so nothing outlives a bench."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def popen(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child that is terminated if we die (same process group, so a group kill reaches it too)."""
    return subprocess.Popen(list(cmd), preexec_fn=_die_with_parent, **kwargs)


def stop(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """Terminate one child we started (by its pid), then kill it if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(grace)


class Emulator:
    """``python -m airflow_provider_aom.emulator --port 0`` in a separate process (its CPU is not ours).

    The emulator listens with a backlog of 1024, so a burst of new connections is not throttled by
    SYN retransmits (a property of the test server, not of the client being measured).
    """

    def __init__(
        self, workflows: Sequence[str] = (), static_tokens: Sequence[str] = (STATIC_TOKEN,), answer_delay: float = 0.0
    ) -> None:
        cmd = [PYTHON, "-m", "airflow_provider_aom.emulator", "--host", "127.0.0.1", "--port", "0", "--quiet"]
        if answer_delay:
            cmd += ["--answer-delay", f"{answer_delay:g}"]
        for spec in workflows:
            cmd += ["--workflow", spec]
        for token in static_tokens:
            cmd += ["--static-token", token]
        self.cmd = cmd
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, timeout: float = 60.0) -> Emulator:
        # cwd: ``-m`` puts the working directory first on sys.path; bench/ (unlike the repository root)
        # holds no package, so the emulator is the installed package's, as for the client.
        self.proc = popen(self.cmd, cwd=BENCH, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the emulator did not start (first line {line!r})")
        self.base_url = line
        return self

    def stop(self) -> None:
        stop(self.proc)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Emulator:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin API (not logged)

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}/_emulator/{path}", data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return json.load(response)

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "requests"))

    def executions(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "executions"))

    def start_executions(self, workflow_id: str, n: int) -> list[str]:
        """Start ``n`` executions through the admin API (not authenticated, logged or delayed), one connection."""
        import http.client

        host, port = self.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"workflow_id": workflow_id, "created_by": "bench"}).encode()
        ids = []
        try:
            for _ in range(n):
                conn.request("POST", "/_emulator/executions", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    raise RuntimeError(f"starting an execution failed: {response.status} {answer[:200]!r}")
                ids.append(json.loads(answer)["execution_id"])
        finally:
            conn.close()
        return ids


def count(log: list[dict[str, Any]], method: str, path_prefix: str = "", path_suffix: str = "") -> int:
    return sum(
        1
        for r in log
        if r["method"] == method and r["path"].startswith(path_prefix) and r["path"].endswith(path_suffix)
    )


def iam_token_calls(log: list[dict[str, Any]]) -> int:
    return count(log, "POST", "/v3/auth/tokens")


def connection(base_url: str, mode: str, **extra: Any) -> dict[str, Any]:
    """The ``aom_default`` connection (as JSON for ``AIRFLOW_CONN_AOM_DEFAULT``) for one auth mode."""
    conn: dict[str, Any] = {"conn_type": "huaweicloud_aom", "host": base_url}
    ext: dict[str, Any] = {"region": REGION, "iam_endpoint": base_url}
    if mode == "token":
        conn["password"] = STATIC_TOKEN
        ext.update(auth_type="token", project_id=PROJECT_ID)
    elif mode == "aksk":
        conn.update(login=AK, password=SK)
        ext.update(auth_type="aksk", project_id=PROJECT_ID)
    elif mode == "password":
        # No project id: it comes with the IAM token, as for a real password connection.
        conn.update(login=IAM_USER, password=IAM_PASSWORD)
        ext.update(auth_type="password", domain_name=IAM_DOMAIN)
    else:
        raise ValueError(mode)
    ext.update(extra)
    conn["extra"] = ext
    return conn


def conn_json(base_url: str, mode: str, **extra: Any) -> str:
    """:func:`connection` as the JSON value of ``AIRFLOW_CONN_AOM_DEFAULT``."""
    return json.dumps(connection(base_url, mode, **extra))


@contextlib.contextmanager
def airflow_home(prefix: str, under: str | None = None) -> Iterator[str]:
    """A private, temporary ``AIRFLOW_HOME`` (or scratch directory), removed with its contents afterwards."""
    home = tempfile.mkdtemp(prefix=prefix, dir=under)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_env(home: str | None = None, **extra: str) -> dict[str, str]:
    """Environment of a child that imports Airflow: a private AIRFLOW_HOME, quiet warnings."""
    env = dict(os.environ)
    env.pop("AIRFLOW_CONN_AOM_DEFAULT", None)
    if home is not None:
        env["AIRFLOW_HOME"] = home
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------- profiles


class ProfileRow(NamedTuple):
    function: str  # "path:line(name)", the path without the site-packages, checkout or stdlib prefix
    ncalls: int
    tottime: float  # seconds in the function itself
    cumtime: float  # seconds including what it called


_PREFIXES = ("site-packages/", f"{ROOT}/", f"python{sys.version_info.major}.{sys.version_info.minor}/")


def profile_rows(profiler: Any, keep: Callable[[str, str], bool] | None = None) -> list[ProfileRow]:
    """Every function of a cProfile run (or those for which ``keep(filename, name)`` holds), in pstats order."""
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        if keep is None or keep(filename, name):
            short = filename
            for prefix in _PREFIXES:
                short = short.split(prefix)[-1]
            rows.append(ProfileRow(f"{short}:{line}({name})", ncalls, tottime, cumtime))
    return rows


# ---------------------------------------------------------------------------- statistics


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and quartiles (exclusive method) of a sample."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"n": 0, "median": math.nan, "min": math.nan, "max": math.nan, "q1": math.nan, "q3": math.nan}
    if len(vals) >= 2:
        quartiles = statistics.quantiles(vals, n=4)
        q1, q3 = quartiles[0], quartiles[2]
    else:
        q1 = q3 = vals[0]
    return {
        "n": len(vals),
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "q1": q1,
        "q3": q3,
        "values": vals,
    }


def write_json(path: str | None, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    if path:
        Path(path).write_text(text)
    else:
        print(text)
