"""The AOM and IAM endpoints the provider calls: one table for the client and for the emulator's routes.

Each :class:`Endpoint` is a method, a path template whose ``{placeholders}`` are path
segments, and the service whose base URL it belongs to. :mod:`~airflow_provider_aom.api`
builds requests from these entries and :mod:`~airflow_provider_aom.emulator` routes them, so
a path exists exactly once. Standard library only: the emulator imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airflow_provider_aom.auth.signer import encode_segment

Service = Literal["aom", "iam"]


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint (reference: ``aom-api.md`` section in ``doc``)."""

    method: str
    path: str
    service: Service
    #: Where the reference documents it (aom-api.md section, or the IAM page).
    doc: str
    #: False when sending it twice may do it twice (start an execution): never re-sent blindly.
    idempotent: bool = True

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    def format(self, **values: str) -> str:
        """The path with each placeholder replaced by its value, percent-encoded as exactly one segment."""
        return "/".join(encode_segment(values[part[1:-1]]) if part.startswith("{") else part for part in self.segments)


_WORKFLOW = "/v1/{project_id}/cms/workflow/{workflow_id}"
_EXECUTION = _WORKFLOW + "/executions/{execution_id}"

EXECUTE_WORKFLOW = Endpoint("POST", _WORKFLOW + "/executions", "aom", "§1.1 ExecuteWorkflow", idempotent=False)
GET_EXECUTION = Endpoint("GET", _EXECUTION + "/status", "aom", "§1.2 SearchWorkflowExecutionDetail")
LIST_EXECUTIONS = Endpoint("GET", _WORKFLOW + "/executions", "aom", "§1.3 ListWorkflowExecutions")
TERMINATE_EXECUTION = Endpoint("POST", _EXECUTION + "/terminate", "aom", "§1.4 StopExecution")
OPERATE_EXECUTION = Endpoint(
    "POST", _EXECUTION + "/operation", "aom", "§1.5 StartPausingWorkflowExecutions", idempotent=False
)
LIST_WORKFLOWS = Endpoint("POST", "/v1/{project_id}/cms/workflow-list", "aom", "§1.6 ListWorkflow")
SET_WORKFLOW_TRIGGER = Endpoint("PUT", _WORKFLOW + "/trigger/action", "aom", "§1.8 UpdateWorkflowTriggerStatus")

IAM_ISSUE_TOKEN = Endpoint("POST", "/v3/auth/tokens", "iam", "§3.1 password token")
IAM_VERIFY_TOKEN = Endpoint("GET", "/v3/auth/tokens", "iam", "IAM: Verifying a Token")
IAM_LIST_PROJECTS = Endpoint("GET", "/v3/projects", "iam", "§3.2 project id discovery")
IAM_GET_CREDENTIAL = Endpoint(
    "GET", "/v3.0/OS-CREDENTIAL/credentials/{access_key}", "iam", "IAM: Querying a Permanent Access Key"
)
IAM_GET_USER = Endpoint("GET", "/v3/users/{user_id}", "iam", "IAM: Querying IAM User Details")
