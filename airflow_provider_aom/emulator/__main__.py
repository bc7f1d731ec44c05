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
from types import FrameType

from airflow_provider_aom.emulator.models import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SECURITY_TOKEN,
    DEFAULT_SK,
    DEFAULT_TEMP_AK,
    DEFAULT_TEMP_SK,
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
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_aom.emulator",
        description=(
            "Local emulator of Huawei Cloud IAM and the AOM Automation workflow API. "
            "Prints its base URL as the first stdout line, then serves until SIGTERM/SIGINT. "
            "Default workflows: wf-success (success after 2 s), wf-fail (fail after 2 s), "
            "wf-approval (waitApproval after 1 s, approver ops-lead), "
            "wf-long (success after 600 s)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 picks a free port")
    parser.add_argument("--ak", default=DEFAULT_AK, help="permanent access key")
    parser.add_argument("--sk", default=DEFAULT_SK, help="secret key of --ak")
    parser.add_argument("--temp-ak", default=DEFAULT_TEMP_AK, help="temporary access key")
    parser.add_argument("--temp-sk", default=DEFAULT_TEMP_SK, help="secret key of --temp-ak")
    parser.add_argument(
        "--security-token",
        default=DEFAULT_SECURITY_TOKEN,
        help="X-Security-Token required with --temp-ak",
    )
    parser.add_argument("--project-id", default=DEFAULT_PROJECT_ID, help="project id (32 chars)")
    parser.add_argument("--region", default=DEFAULT_REGION, help="region, also the project's name")
    parser.add_argument("--iam-user", default=DEFAULT_IAM_USER, help="IAM user name")
    parser.add_argument("--iam-password", default=DEFAULT_IAM_PASSWORD, help="IAM user password")
    parser.add_argument("--iam-domain", default=DEFAULT_IAM_DOMAIN, help="IAM account (domain) name")
    parser.add_argument(
        "--static-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="X-Auth-Token always accepted, never expiring (repeatable)",
    )
    parser.add_argument("--token-ttl", type=float, default=86400.0, help="lifetime of IAM-issued tokens, seconds")
    parser.add_argument(
        "--max-clock-skew",
        type=float,
        default=900.0,
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
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workflows = {spec.id: spec for spec in default_workflows()}
    for spec in args.workflow:
        workflows[spec.id] = spec
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        ak=args.ak,
        sk=args.sk,
        temp_ak=args.temp_ak,
        temp_sk=args.temp_sk,
        security_token=args.security_token,
        project_id=args.project_id,
        region=args.region,
        iam_user=args.iam_user,
        iam_password=args.iam_password,
        iam_domain=args.iam_domain,
        static_tokens=list(args.static_token),
        token_ttl=args.token_ttl,
        max_clock_skew=args.max_clock_skew,
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
        emulator = AomEmulator(config).start()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
