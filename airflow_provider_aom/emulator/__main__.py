"""``python -m airflow_provider_aom.emulator``: serve the emulator until SIGTERM/SIGINT.

The first line written to stdout is the base URL (``http://HOST:PORT``), so a
parent process can start it with ``--port 0`` and read where it listens.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import fields
from types import FrameType

from airflow_provider_aom.emulator.history import MAX_HISTORY, MAX_HISTORY_NODES
from airflow_provider_aom.emulator.models import (
    OUTCOMES,
    EmulatorConfig,
    WorkflowSpec,
    default_workflows,
)
from airflow_provider_aom.emulator.server import AomEmulator


def parse_workflow(text: str) -> WorkflowSpec:
    """``ID:OUTCOME:DURATION[:APPROVER,...]`` to a :class:`WorkflowSpec`."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"expected ID:OUTCOME:DURATION, got {text!r}")
    workflow_id, outcome, duration_text = parts[:3]
    try:
        duration = float(duration_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"duration must be a number of seconds: {text!r}") from None
    if len(parts) == 4:
        approvers = [name for name in parts[3].split(",") if name]
    else:
        approvers = ["ops-lead"] if outcome == "approval" else []
    spec = WorkflowSpec(id=workflow_id, name=workflow_id, outcome=outcome, duration=duration, approvers=approvers)
    try:
        spec.validate()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return spec


def build_parser() -> argparse.ArgumentParser:
    # Each option's dest is the EmulatorConfig field it sets (main() relies on it).
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_aom.emulator",
        description=(
            "Local emulator of Huawei Cloud IAM and the AOM Automation workflow API. "
            "Prints its base URL as the first stdout line, then serves until SIGTERM/SIGINT. "
            "Default workflows: wf-success (success after 2 s), wf-fail (fail after 2 s), "
            "wf-approval (waitApproval after 1 s, approver ops-lead), "
            "wf-long (success after 600 s), wf-flaky (pause_on_fail), wf-gated (pause), "
            "wf-nightly (cron). Outcomes: success, fail (ends fail; restart the failed node "
            "to finish it), pause_on_fail (pauses on the failed node until restart or skip), pause "
            "(pauses at pause_1 until continue), approval (waitApproval for good)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default=defaults.host, help="address to bind")
    # Not the config's 0: the CLI serves a fixed, known port unless told otherwise.
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 picks a free port")
    parser.add_argument("--ak", default=defaults.ak, help="permanent access key")
    parser.add_argument("--sk", default=defaults.sk, help="secret key of --ak")
    parser.add_argument("--temp-ak", default=defaults.temp_ak, help="temporary access key")
    parser.add_argument("--temp-sk", default=defaults.temp_sk, help="secret key of --temp-ak")
    parser.add_argument(
        "--security-token",
        default=defaults.security_token,
        help="X-Security-Token required with --temp-ak",
    )
    parser.add_argument("--project-id", default=defaults.project_id, help="project id (32 chars)")
    parser.add_argument("--region", default=defaults.region, help="region, also the project's name")
    parser.add_argument("--iam-user", default=defaults.iam_user, help="IAM user name")
    parser.add_argument("--iam-password", default=defaults.iam_password, help="IAM user password")
    parser.add_argument("--iam-domain", default=defaults.iam_domain, help="IAM account (domain) name")
    parser.add_argument(
        "--static-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="X-Auth-Token always accepted, never expiring (repeatable)",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=defaults.token_ttl,
        help="lifetime of IAM-issued tokens, seconds",
    )
    parser.add_argument(
        "--max-clock-skew",
        type=float,
        default=defaults.max_clock_skew,
        help="accepted X-Sdk-Date skew for AK/SK signatures, seconds",
    )
    parser.add_argument(
        "--workflow",
        action="append",
        default=[],
        type=parse_workflow,
        metavar="ID:OUTCOME:DURATION",
        help=(
            f"add or override a workflow; OUTCOME is one of {', '.join(OUTCOMES)}, DURATION in "
            "seconds; an optional 4th field lists approvers (comma separated, default ops-lead "
            "for approval workflows) (repeatable)"
        ),
    )
    parser.add_argument(
        "--pattern-workflows",
        action="store_true",
        help=(
            "serve implicit workflows for any id wf-ok-<anything> (success after 3 s) and "
            "wf-slow-<anything> (never ends: ten years); the workflow list shows only registered ones"
        ),
    )
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=defaults.answer_delay,
        metavar="SECONDS",
        help=(
            "wait this long before every AOM answer (/v1/...), like a backend's latency; IAM and admin calls are "
            "not delayed, and a delayed answer holds no other connection"
        ),
    )
    parser.add_argument(
        "--history",
        type=int,
        default=defaults.history,
        metavar="N",
        help=(
            f"seed every workflow's execution list with N old, ended executions (0 to {MAX_HISTORY}; ids h-<hash>-<i>, "
            "the newest begun 1 h before the start, 5 min apart; generated, never held), before the real executions"
        ),
    )
    parser.add_argument(
        "--history-nodes",
        type=int,
        default=defaults.history_nodes,
        metavar="K",
        help=f"node results of each seeded execution (1 to {MAX_HISTORY_NODES})",
    )
    parser.add_argument(
        "--clock-skew",
        type=float,
        default=defaults.clock_skew,
        metavar="SECONDS",
        help=(
            "run the emulator's clock this far ahead of the host's (negative: behind): its Date header and every "
            "time it reports or compares; AK/SK signatures (the host's X-Sdk-Date) are checked against it with "
            "--max-clock-skew, as the gateway does"
        ),
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help=(
            "keep workflows, executions and tokens in this JSON file: loaded at start when it exists, rewritten "
            "after every change, so a restart (same port) keeps its executions as AOM does"
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.answer_delay < 0:
        parser.error("--answer-delay must not be negative")
    if not 0 <= args.history <= MAX_HISTORY:
        parser.error(f"--history must be from 0 to {MAX_HISTORY}")
    if not 1 <= args.history_nodes <= MAX_HISTORY_NODES:
        parser.error(f"--history-nodes must be from 1 to {MAX_HISTORY_NODES}")
    workflows = {spec.id: spec for spec in default_workflows()}
    for spec in args.workflow:
        workflows[spec.id] = spec
    options = vars(args)
    config = EmulatorConfig(
        **{item.name: options[item.name] for item in fields(EmulatorConfig) if item.name in options},
        static_tokens=list(args.static_token),
        workflows=list(workflows.values()),
    )
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
    )

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        emulator = AomEmulator(config)
    except ValueError as exc:  # an unreadable --state-file
        print(str(exc), file=sys.stderr)
        return 1
    try:
        emulator.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(emulator.base_url, flush=True)
        # Short waits keep the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
        # Saved after every change already; once more so a stop never loses the last one.
        emulator.state.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
