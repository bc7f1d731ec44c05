"""Configuration objects and defaults of the AOM emulator (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEFAULT_REGION = "cn-north-4"
DEFAULT_AK = "EMULATORAK0000000000"
DEFAULT_SK = "EMULATORSK000000000000000000000000000000"
DEFAULT_TEMP_AK = "EMULATORTMPAK0000000"
DEFAULT_TEMP_SK = "EMULATORTMPSK00000000000000000000000000"
DEFAULT_SECURITY_TOKEN = "emulator-security-token"  # noqa: S105 - public fake, emulator only
DEFAULT_IAM_USER = "emulator-user"
DEFAULT_IAM_PASSWORD = "emulator-password"  # noqa: S105 - public fake, emulator only
DEFAULT_IAM_DOMAIN = "emulator-domain"

OUTCOMES = ("success", "fail", "pause_on_fail", "pause", "approval")
MAX_ID_LENGTH = 64
# Implicit workflows of EmulatorConfig.pattern_workflows: an id prefix and how long its runs take.
PATTERN_WORKFLOWS = (("wf-ok-", 3.0), ("wf-slow-", 10 * 365 * 24 * 3600.0))


@dataclass
class WorkflowSpec:
    """A workflow the emulator knows and how its executions behave.

    ``outcome`` is one of :data:`OUTCOMES` (see the package docstring for each
    node plan); ``duration`` is the number of seconds an execution spends
    ``executing`` when nobody acts on it (for ``approval``, before it starts
    waiting in ``waitApproval`` for ``approvers``). ``type`` ``cron`` gives the
    workflow a trigger that can be enabled and disabled.
    """

    id: str
    name: str
    outcome: str
    duration: float
    approvers: list[str] = field(default_factory=list)
    type: str = "manual"

    def validate(self) -> None:
        """Raise ValueError when the spec cannot be served."""
        if not isinstance(self.id, str) or not 1 <= len(self.id) <= MAX_ID_LENGTH:
            raise ValueError("workflow id must be a string of 1-64 characters")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("workflow name must be a non-empty string")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if isinstance(self.duration, bool) or not isinstance(self.duration, (int, float)):
            raise ValueError("duration must be a number of seconds")
        if self.duration < 0:
            raise ValueError("duration must not be negative")
        if not isinstance(self.approvers, list) or not all(isinstance(a, str) and a for a in self.approvers):
            raise ValueError("approvers must be a list of non-empty strings")
        if not isinstance(self.type, str) or not self.type:
            raise ValueError("type must be a non-empty string")


def default_workflows() -> list[WorkflowSpec]:
    """The workflows served when :class:`EmulatorConfig` names none."""
    return [
        WorkflowSpec(id="wf-success", name="wf-success", outcome="success", duration=2.0),
        WorkflowSpec(id="wf-fail", name="wf-fail", outcome="fail", duration=2.0),
        WorkflowSpec(
            id="wf-approval",
            name="wf-approval",
            outcome="approval",
            duration=1.0,
            approvers=["ops-lead"],
        ),
        WorkflowSpec(id="wf-long", name="wf-long", outcome="success", duration=600.0),
        # For example_aom_recover: a node that fails once, a pause node, a workflow with its own schedule.
        WorkflowSpec(id="wf-flaky", name="flaky-patching", outcome="pause_on_fail", duration=2.0),
        WorkflowSpec(id="wf-gated", name="gated-cleanup", outcome="pause", duration=2.0),
        WorkflowSpec(id="wf-nightly", name="nightly-patching", outcome="success", duration=2.0, type="cron"),
    ]


@dataclass
class EmulatorConfig:
    """Everything an emulator instance is started with."""

    host: str = "127.0.0.1"
    port: int = 0
    ak: str = DEFAULT_AK
    sk: str = DEFAULT_SK
    temp_ak: str = DEFAULT_TEMP_AK
    temp_sk: str = DEFAULT_TEMP_SK
    security_token: str = DEFAULT_SECURITY_TOKEN
    project_id: str = DEFAULT_PROJECT_ID
    region: str = DEFAULT_REGION
    iam_user: str = DEFAULT_IAM_USER
    iam_password: str = DEFAULT_IAM_PASSWORD
    iam_domain: str = DEFAULT_IAM_DOMAIN
    static_tokens: list[str] = field(default_factory=list)
    token_ttl: float = 86400.0
    max_clock_skew: float = 900.0
    workflows: list[WorkflowSpec] | None = None
    #: Serve the implicit ``wf-ok-*`` and ``wf-slow-*`` workflows (see :func:`pattern_workflow`).
    pattern_workflows: bool = False
    #: Seconds every AOM answer (``/v1/...``) waits before it is sent, as a backend's latency; IAM and
    #: admin calls are not delayed. Each connection has its own thread: a delayed answer holds no other.
    answer_delay: float = 0.0
    #: Old, ended executions seeded in every workflow's execution list, generated from their index and
    #: never held (see :mod:`airflow_provider_aom.emulator.history`); 0 to 1,000,000. Settable at run
    #: time (``POST /_emulator/config``).
    history: int = 0
    #: Node results of each seeded execution, 1 to 200.
    history_nodes: int = 20
    #: Seconds the emulator's clock is ahead of the host's (negative: behind): its ``Date`` header and every
    #: time it reports or compares (begin and end times, token expiry, the AK/SK signature's
    #: ``max_clock_skew`` check of the client's ``X-Sdk-Date`` against it). Settable at run time.
    clock_skew: float = 0.0
    #: A JSON file holding workflows, executions and tokens: loaded at start when it exists, rewritten after
    #: every change, so a restarted emulator keeps its executions as AOM does (faults and the request log
    #: are not kept).
    state_file: str | None = None


def pattern_workflow(workflow_id: str) -> WorkflowSpec | None:
    """The implicit workflow an id names when pattern workflows are on, or None.

    ``wf-ok-<anything>`` succeeds after 3 s, ``wf-slow-<anything>`` runs for ten
    years; both are named after their id.
    """
    for prefix, duration in PATTERN_WORKFLOWS:
        if workflow_id.startswith(prefix) and len(prefix) < len(workflow_id) <= MAX_ID_LENGTH:
            return WorkflowSpec(id=workflow_id, name=workflow_id, outcome="success", duration=duration)
    return None
