"""Local emulator of Huawei Cloud IAM and the AOM Automation workflow API.

One HTTP server (standard library only, no Airflow import) answers both as the
IAM endpoint (``POST /v3/auth/tokens``, ``GET /v3/projects``) and as the AOM
endpoint (the ``/v1/{project_id}/cms/...`` workflow API), with the documented
paths, shapes and error bodies, so DAGs, tests and demos run without a cloud
account. Run it with ``python -m airflow_provider_aom.emulator`` or in-process::

    with AomEmulator() as emu:
        emu.base_url          # "http://127.0.0.1:PORT": AOM and IAM endpoint
        emu.state.add_fault("status", path="/executions$", status=429, retry_after=1)

Default workflows (``EmulatorConfig.workflows=None``):

* ``wf-success``: ``executing`` for 2 s, then ``success``;
* ``wf-fail``: ``executing`` for 2 s, then ``fail`` (its second node fails);
* ``wf-approval``: ``executing`` for 1 s, then ``waitApproval`` for good
  (approvers ``["ops-lead"]``);
* ``wf-long``: ``executing`` for 600 s, then ``success``.

Credentials: the AK/SK pair ``DEFAULT_AK``/``DEFAULT_SK``, the temporary pair
``DEFAULT_TEMP_AK``/``DEFAULT_TEMP_SK`` (needs ``X-Security-Token:
DEFAULT_SECURITY_TOKEN``, signed), IAM user ``DEFAULT_IAM_USER`` /
``DEFAULT_IAM_PASSWORD`` in domain ``DEFAULT_IAM_DOMAIN``, project
``DEFAULT_PROJECT_ID`` named after ``DEFAULT_REGION``.

Emulator choices where the real API is undocumented:

* unknown execution: 404 ``AOM.31001307`` "execution not exist.";
* terminating a finished execution: 400 ``AOM.31001302`` "execution already finished.";
* terminate goes straight to ``cancel`` (no visible ``canceling`` step);
* node ids are ``node_1``/``node_2`` (``node_1``/``approval_1`` for approval
  workflows), each taking half the duration; an executing execution reports
  ``end_time`` 0;
* ``x_enterprise_project_id`` is validated but every workflow is in project ``"0"``;
* parameter checks (400) come before the project check (401 ``AOM.31009004``);
* ``/_emulator/*`` admin calls are neither authenticated, fault-injected nor logged.
"""

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
    EmulatorConfig,
    WorkflowSpec,
    default_workflows,
)
from airflow_provider_aom.emulator.server import AomEmulator
from airflow_provider_aom.emulator.state import FAULT_KINDS, EmulatorState

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_IAM_DOMAIN",
    "DEFAULT_IAM_PASSWORD",
    "DEFAULT_IAM_USER",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_REGION",
    "DEFAULT_SECURITY_TOKEN",
    "DEFAULT_SK",
    "DEFAULT_TEMP_AK",
    "DEFAULT_TEMP_SK",
    "FAULT_KINDS",
    "AomEmulator",
    "EmulatorConfig",
    "EmulatorState",
    "WorkflowSpec",
    "default_workflows",
]
