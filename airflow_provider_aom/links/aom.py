"""The "AOM Workflow Execution" extra link to the execution in the Huawei Cloud console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

#: Console page of AOM Automation's execution records (the console route is not part of the public API
#: docs; override it per connection with ``extra.console_url``).
DEFAULT_CONSOLE_URL = (
    "https://console.huaweicloud.com/aom2/?region={region}#/aom2/cms/execution-record"
    "?workflow_id={workflow_id}&execution_id={execution_id}"
)


def console_url(template: str | None, *, region: str | None, workflow_id: str, execution_id: str) -> str:
    """Fill the console URL template; every value is URL-encoded."""
    values = {
        "region": quote(region or "", safe=""),
        "workflow_id": quote(workflow_id, safe=""),
        "execution_id": quote(execution_id, safe=""),
    }
    return (template or DEFAULT_CONSOLE_URL).format(**values)


class AomWorkflowExecutionLink(BaseOperatorLink):
    """Opens the workflow execution in the Huawei Cloud console.

    The URL is pushed to XCom right after submit, so the link shows while the
    task runs or is deferred, not only after it ends.
    """

    name = "AOM Workflow Execution"
    key = "_link_AomWorkflowExecutionLink"

    @property
    def xcom_key(self) -> str:
        return self.key

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        context["ti"].xcom_push(key=cls.key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey, **kwargs: Any) -> str:
        url = XCom.get_value(key=self.key, ti_key=ti_key)
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""
