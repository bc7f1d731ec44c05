"""Peer: Huawei's official SDK (``huaweicloudsdkaom``) against ``AomHook``: CPU per status call and import time.

The SDK pins its own dependencies (pymongo among them), so it lives in a venv of its own,
``.venv-sdk`` at the repository root, which this script creates on first use (``python -m venv``
from this interpreter, then ``pip install huaweicloudsdkaom==VERSION`` from the package registry)
and reuses while its stamp file names the same version. The hook side runs in this interpreter's
venv (``.venv``, Airflow). The emulator runs in a separate process; every side talks to it.

* **CPU per call**: the same ``GET .../executions/{id}/status`` (AK/SK signed by both): the SDK's
  ``AomClient.search_workflow_execution_detail`` and ``AomHook.get_execution``. Each round runs
  both sides in fresh processes (order alternating between rounds): ``--warmup`` calls, then
  ``--calls`` calls timed with ``time.process_time()`` (the process's CPU) and ``perf_counter``.
  The ratio hook / SDK is taken per round.
* **Import time**: fresh interpreters (order alternating), each first loading what a task process
  has already loaded, untimed: the hook side ``import airflow.sdk``; the SDK side every module that
  ``import airflow.sdk`` loads in ``.venv`` and that its own venv can import (the standard library,
  certifi, idna, yaml …), so that neither side is charged for modules a worker has anyway. Then the
  timed imports: the hook module and its transport (which the first call loads), and the SDK's
  client, request model and credentials.

    python bench/sdk_overhead.py
    python bench/sdk_overhead.py --rounds 2 --calls 100 --imports 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import AK, PROJECT_ID, ROOT, SK, Emulator, airflow_home, bench_env, conn_json, summary, write_json

SDK_VERSION = "3.1.219"
SDK_VENV = ROOT / ".venv-sdk"
SDK_STAMP = SDK_VENV / f".installed-huaweicloudsdkaom-{SDK_VERSION}"
WORKFLOW = "wf-bench-long"

#: Child code: time the imports (after the preload), print one JSON line.
IMPORT_CHILD = """
import json, sys, time
for name in json.loads(sys.argv[1]):
    try:
        __import__(name)
    except Exception:
        pass
before = set(sys.modules)
cpu0, wall0 = time.process_time(), time.perf_counter()
exec(sys.argv[2])
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
print(json.dumps({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "modules_added": len(set(sys.modules) - before)}))
"""
HOOK_IMPORT = "import airflow_provider_aom.hooks.aom, airflow_provider_aom.transport"
SDK_IMPORT = (
    "from huaweicloudsdkaom.v1 import AomClient, SearchWorkflowExecutionDetailRequest\n"
    "from huaweicloudsdkcore.auth.credentials import BasicCredentials"
)

#: Child code: ``--warmup`` then ``--calls`` status calls of one side, timed; prints one JSON line.
CALL_CHILD = """
import json, os, sys, time
side, base_url, workflow_id, execution_id, warmup, calls = sys.argv[1:7]
if side == "sdk":
    from huaweicloudsdkaom.v1 import AomClient, SearchWorkflowExecutionDetailRequest
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig

    ak, sk, project_id = sys.argv[7:10]
    client = (
        AomClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_http_config(HttpConfig.get_default_config())
        .with_endpoints([base_url])
        .build()
    )

    def call():
        request = SearchWorkflowExecutionDetailRequest(workflow_id=workflow_id, execution_id=execution_id)
        return client.search_workflow_execution_detail(request).status
else:
    import airflow.sdk
    from airflow_provider_aom.hooks.aom import AomHook

    hook = AomHook()

    def call():
        return hook.get_execution(workflow_id, execution_id)["status"]

assert call() == "executing"
for _ in range(int(warmup)):
    call()
cpu0, wall0 = time.process_time(), time.perf_counter()
for _ in range(int(calls)):
    call()
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
print(json.dumps({"cpu_us": cpu / int(calls) * 1e6, "wall_us": wall / int(calls) * 1e6}))
"""


def ensure_sdk_venv() -> float:
    """Create ``.venv-sdk`` with the SDK unless its stamp is there; seconds spent (0 when reused)."""
    python = SDK_VENV / "bin" / "python"
    if SDK_STAMP.exists() and python.exists():
        return 0.0
    started = time.monotonic()
    print(f"sdk: creating {SDK_VENV.name} with huaweicloudsdkaom=={SDK_VERSION}", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SDK_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"huaweicloudsdkaom=={SDK_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    for old in SDK_VENV.glob(".installed-*"):
        old.unlink()
    SDK_STAMP.touch()
    return time.monotonic() - started


def child(python: str, code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (outside the checkout, so each side imports its own venv's packages)."""
    proc = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, env=env, cwd="/", timeout=300, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def airflow_sdk_modules(env: dict[str, str]) -> list[str]:
    """Every module ``import airflow.sdk`` leaves in ``sys.modules`` (this venv), parents first."""
    code = "import json, sys\nimport airflow.sdk\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    names: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    # The SDK side must not preload anything of ours or of Airflow (it has neither).
    return [n for n in names if not n.startswith(("airflow", "__main__", "_frozen"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="fresh process pairs for CPU per call")
    parser.add_argument("--calls", type=int, default=400, help="timed calls per side per round")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls first, per process")
    parser.add_argument("--imports", type=int, default=7, help="fresh interpreter pairs for import time")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    created_s = ensure_sdk_venv()
    sdk_python = str(SDK_VENV / "bin" / "python")
    version = child(
        sdk_python,
        "import json\nfrom importlib import metadata\nprint(json.dumps({'v': metadata.version('huaweicloudsdkaom')}))",
    )["v"]
    imports: dict[str, list[dict[str, Any]]] = {"hook": [], "sdk": []}
    calls: dict[str, list[dict[str, Any]]] = {"hook": [], "sdk": []}
    with airflow_home("aom-bench-sdk-") as home:
        env = bench_env(home)
        preload = airflow_sdk_modules(env)
        sdk_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        for i in range(args.imports):
            for side in ("hook", "sdk") if i % 2 == 0 else ("sdk", "hook"):
                if side == "hook":
                    imports[side].append(child(sys.executable, IMPORT_CHILD, '["airflow.sdk"]', HOOK_IMPORT, env=env))
                else:
                    imports[side].append(child(sdk_python, IMPORT_CHILD, json.dumps(preload), SDK_IMPORT, env=sdk_env))
        with Emulator([f"{WORKFLOW}:success:86400"]) as emu:
            execution_id = emu.start_executions(WORKFLOW, 1)[0]
            hook_env = {**env, "AIRFLOW_CONN_AOM_DEFAULT": conn_json(emu.base_url, "aksk")}
            common_args = (emu.base_url, WORKFLOW, execution_id, str(args.warmup), str(args.calls))
            for i in range(args.rounds):
                for side in ("hook", "sdk") if i % 2 == 0 else ("sdk", "hook"):
                    if side == "hook":
                        calls[side].append(child(sys.executable, CALL_CHILD, side, *common_args, env=hook_env))
                    else:
                        sdk_args = (*common_args, AK, SK, PROJECT_ID)
                        calls[side].append(child(sdk_python, CALL_CHILD, side, *sdk_args, env=sdk_env))
            log = emu.requests_log()
    statuses = sorted({(r["auth"], r["status"]) for r in log})

    def pooled(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return summary([row[key] for row in rows])

    def ratio(rows: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
        return summary([h[key] / s[key] for h, s in zip(rows["hook"], rows["sdk"], strict=True)])

    result: dict[str, Any] = {
        "sdk_version": version,
        "sdk_venv": SDK_VENV.name,
        "sdk_venv_created_s": created_s,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "imports": args.imports,
        "preloaded_modules": len(preload),
        "sides": {
            side: {
                "call_cpu_us": pooled(calls[side], "cpu_us"),
                "call_wall_us": pooled(calls[side], "wall_us"),
                "import_wall_ms": pooled(imports[side], "wall_ms"),
                "import_cpu_ms": pooled(imports[side], "cpu_ms"),
                "modules_added": pooled(imports[side], "modules_added"),
            }
            for side in ("hook", "sdk")
        },
        "ratio_call_cpu": ratio(calls, "cpu_us"),
        "ratio_call_wall": ratio(calls, "wall_us"),
        "ratio_import_wall": ratio(imports, "wall_ms"),
        "ratio_import_cpu": ratio(imports, "cpu_ms"),
        "emulator_auth_status": [f"{auth} {status}" for auth, status in statuses],
        "hook_import": HOOK_IMPORT,
        "sdk_import": SDK_IMPORT.replace("\n", "; "),
        "package": str(ROOT / "airflow_provider_aom"),
    }
    write_json(args.json_out, result)
    return 0 if statuses == [("aksk", 200)] else 1


if __name__ == "__main__":
    os.environ.pop("AIRFLOW_CONN_AOM_DEFAULT", None)
    sys.exit(main())
