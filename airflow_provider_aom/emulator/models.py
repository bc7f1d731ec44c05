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

OUTCOMES = ("success", "fail", "approval")
MAX_ID_LENGTH = 64


@dataclass
class WorkflowSpec:
    """A workflow the emulator knows and how its executions behave.

    ``outcome`` is ``success``, ``fail`` or ``approval``; ``duration`` is the
    number of seconds an execution stays ``executing`` before it ends (or, for
    ``approval``, before it starts waiting in ``waitApproval`` for ``approvers``).
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
