"""Operators that start and control Huawei Cloud AOM workflow executions."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_aom.hooks.aom import AomHook


class AomExecuteWorkflowOperator(BaseOperator):
    """
    Start an execution of an AOM automation workflow and push its ``execution_id`` to XCom.

    The id is logged, pushed under the XCom key ``execution_id`` and returned
    (so ``return_value`` holds it too).

    :param workflow_id: Id of the workflow (from the AOM workflow list). Templated.
    :param project_id: 32-character project id; default: the connection's, or
        resolved from IAM by region. Templated.
    :param aom_conn_id: Connection id of type ``huaweicloud_aom``.
    """

    template_fields: Sequence[str] = ("workflow_id", "project_id", "aom_conn_id")
    ui_color = "#c7000b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        workflow_id: str,
        project_id: str | None = None,
        aom_conn_id: str = "aom_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.project_id = project_id
        self.aom_conn_id = aom_conn_id

    @cached_property
    def hook(self) -> AomHook:
        from airflow_provider_aom.hooks.aom import AomHook

        return AomHook(aom_conn_id=self.aom_conn_id)

    def execute(self, context: Context) -> str:
        execution_id = self.hook.execute_workflow(self.workflow_id, project_id=self.project_id or None)
        self.log.info("Started execution %s of AOM workflow %s.", execution_id, self.workflow_id)
        context["ti"].xcom_push(key="execution_id", value=execution_id)
        return execution_id
