"""Benchmark 2: client overhead of ``AomHook.get_execution`` against two bare HTTP clients.

The emulator runs in a separate process, so the CPU time measured here (``time.process_time``
of this process) is the client's alone. Every side sends the same ``GET .../executions/{id}/status``
over a kept-alive loopback connection and parses the JSON answer:

* hook: ``AomHook.get_execution(workflow_id, execution_id)``: connection config, project id,
  retry schedule, request building, signing (AK/SK) or token header, the transport (an
  ``httpcore`` pool with a deadline per exchange and a byte cap), the checks;
* requests: ``requests.Session().get(url, headers=H)``, ``raise_for_status()``, ``.json()``;
* httpcore: ``httpcore.ConnectionPool().request("GET", url, headers=H')``, a status check and
  ``json.loads`` (the engine the hook's transport drives, without the transport).

``H`` are the final headers the hook's protocol computed once beforehand (for AK/SK, one
precomputed signature, valid for the emulator's 15-minute clock skew); ``H'`` are the same
headers as the hook's transport puts them on the wire (with its Accept-Encoding and User-Agent),
also computed once. Within each round the sides alternate in blocks of ``--block`` calls (so
background load hits them alike); the ratios (hook / bare) are taken per round and summarised
over the rounds.

``--decompose`` adds intermediate sides that peel the hook's layers off one by one (private
methods of the hook, for diagnosis only); ``--profile N`` adds a cProfile of N hook calls.

    python bench/client_overhead.py --auth token
    python bench/client_overhead.py --auth aksk
    python bench/client_overhead.py --auth token --decompose --profile 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROJECT_ID, Emulator, airflow_home, bench_env, conn_json, count, profile_rows, summary, write_json

WORKFLOW = "wf-bench-long"
BASELINES = ("requests", "httpcore")

#: --decompose: from the bare engine up, each side adds one layer of the hook on top of the previous one.
LAYERS = {
    "requests": "bare requests.Session GET + raise_for_status + .json()",
    "httpcore": "bare httpcore.ConnectionPool request + status check + json.loads",
    "transport": "hook._send(prepared request): the hook's transport (deadline, byte cap) + check + parse",
    "flow": "+ protocol.call flow driven by hook._drive (auth headers / signing, 401 handling)",
    "build": "+ api.get_execution call building (id checks, quoting, the request)",
    "hook": "+ project id, retry schedule and retry loop: AomHook.get_execution",
}


def calls_per_round(calls: int, block: int) -> int:
    """``--calls`` rounded down to whole blocks (at least one)."""
    return max(1, calls // block) * block


def measure(
    sides: dict[str, Callable[[], Any]], rounds: int, calls: int, block: int
) -> dict[str, dict[str, list[float]]]:
    """Per round, CPU and wall µs per call of each side, the sides interleaved in blocks."""
    per_call: dict[str, dict[str, list[float]]] = {k: {"cpu_us": [], "wall_us": []} for k in sides}
    per_round = calls_per_round(calls, block)
    blocks = per_round // block
    names = list(sides)
    for _ in range(rounds):
        totals = {name: [0.0, 0.0] for name in sides}
        for b in range(blocks):
            for name in names if b % 2 == 0 else reversed(names):
                func = sides[name]
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(block):
                    func()
                totals[name][0] += time.process_time() - cpu0
                totals[name][1] += time.perf_counter() - wall0
        for name, (cpu, wall) in totals.items():
            per_call[name]["cpu_us"].append(cpu / per_round * 1e6)
            per_call[name]["wall_us"].append(wall / per_round * 1e6)
    return per_call


def profile(func: Callable[[], Any], calls: int) -> list[dict[str, Any]]:
    """cProfile of ``calls`` calls: our package and the entry points of httpcore, by cumulative time."""
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        func()
    prof.disable()

    def interesting(filename: str, name: str) -> bool:
        return "airflow_provider_aom" in filename or (
            filename.endswith("connection_pool.py") and name in ("handle_request", "request", "stream")
        )

    rows: list[dict[str, Any]] = [
        {
            "function": row.function,
            "ncalls": row.ncalls,
            "tottime_us_per_call": row.tottime / calls * 1e6,
            "cumtime_us_per_call": row.cumtime / calls * 1e6,
        }
        for row in profile_rows(prof, interesting)
    ]
    rows.sort(key=lambda r: -r["cumtime_us_per_call"])
    return rows[:25]


def far() -> float:
    """A deadline (monotonic) no call in the benchmark comes near."""
    return time.monotonic() + 3600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--auth", choices=["token", "aksk"], required=True)
    parser.add_argument("--calls", type=int, default=300, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=25, help="calls per side before switching sides")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--decompose", action="store_true", help="also measure the hook layer by layer")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also cProfile N hook calls")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    per_round = calls_per_round(args.calls, args.block)
    made = 0
    with airflow_home("aom-bench-client-") as home:
        os.environ.update(bench_env(home))
        with Emulator([f"{WORKFLOW}:success:86400"]) as emu:
            os.environ["AIRFLOW_CONN_AOM_DEFAULT"] = conn_json(emu.base_url, args.auth)
            import airflow.sdk  # noqa: F401  (what a worker has loaded anyway)
            import httpcore
            import requests

            from airflow_provider_aom import api
            from airflow_provider_aom.hooks.aom import AomHook
            from airflow_provider_aom.transport import wire_headers

            hook = AomHook()
            execution_id = hook.execute_workflow(WORKFLOW)
            made += 1
            request = api.get_execution(WORKFLOW, execution_id).request(PROJECT_ID)
            prepared = hook.protocol.prepare(request, PROJECT_ID)
            url, headers = prepared.url, dict(prepared.headers)
            timeout = hook.config.timeout
            session = requests.Session()
            pool = httpcore.ConnectionPool()
            wire = wire_headers(headers)
            extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}

            def bare_requests() -> Any:
                response = session.get(url, headers=headers, timeout=timeout, allow_redirects=False)
                response.raise_for_status()
                return response.json()

            def bare_httpcore() -> Any:
                response = pool.request("GET", url, headers=wire, extensions=extensions)
                if not 200 <= response.status < 300:
                    raise RuntimeError(f"HTTP {response.status}")
                return json.loads(response.content)

            def hooked() -> Any:
                return hook.get_execution(WORKFLOW, execution_id)

            def transport() -> Any:
                return api.parse_execution(api.check_success(hook._send(prepared, far()), request), request)

            def flow() -> Any:
                response = hook._drive(hook.protocol.call(request, PROJECT_ID, far()))
                return api.parse_execution(api.check_success(response, request), request)

            def build() -> Any:
                call = api.get_execution(WORKFLOW, execution_id)
                built = call.request(PROJECT_ID)
                response = hook._drive(hook.protocol.call(built, PROJECT_ID, far()))
                return call.parse(api.check_success(response, built), built)

            sides: dict[str, Callable[[], Any]] = {"requests": bare_requests, "httpcore": bare_httpcore}
            if args.decompose:
                sides.update(transport=transport, flow=flow, build=build)
            sides["hook"] = hooked
            for name, func in sides.items():
                assert func()["status"] == "executing", name
            made += len(sides)
            for func in sides.values():
                for _ in range(args.warmup):
                    func()
            made += args.warmup * len(sides)
            per_call = measure(sides, args.rounds, args.calls, args.block)
            made += args.rounds * per_round * len(sides)
            profiled = profile(hooked, args.profile) if args.profile else []
            made += args.profile
            log = emu.requests_log()
            sent = count(log, "GET", "/v1/", "/status") + count(log, "POST", "/v1/", "/executions")
            session.close()
            pool.close()
            hook.transport.close()
            package = str(Path(sys.modules["airflow_provider_aom"].__file__ or "").parent)

    def ratios(kind: str, base: str) -> dict[str, Any]:
        pairs = zip(per_call["hook"][kind], per_call[base][kind], strict=True)
        return summary([h / b for h, b in pairs])

    result: dict[str, Any] = {
        "auth": args.auth,
        "calls_per_round": per_round,
        "rounds": args.rounds,
        "block": args.block,
        "requests_seen_by_emulator": sent,
        "requests_expected": made,
        "sides": {name: {k: summary(v) for k, v in per_call[name].items()} for name in sides},
        "ratio_cpu": {base: ratios("cpu_us", base) for base in BASELINES},
        "ratio_wall": {base: ratios("wall_us", base) for base in BASELINES},
        "package": package,
    }
    if args.decompose:
        result["layers"] = [
            {"layer": name, "what": LAYERS[name], "cpu_us": summary(per_call[name]["cpu_us"])} for name in sides
        ]
    if profiled:
        result["profile"] = {"calls": args.profile, "rows": profiled}
    write_json(args.json_out, result)
    return 0 if sent == made else 1


if __name__ == "__main__":
    sys.exit(main())
