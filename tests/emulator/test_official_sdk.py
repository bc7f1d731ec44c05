"""Huawei's official Python SDK (huaweicloudsdkaom), unchanged, against the emulator.

If the SDK signs, sends and parses every AOM workflow call against the emulator,
the emulator speaks the wire format the real service is consumed with.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("huaweicloudsdkaom")

from huaweicloudsdkaom.v1 import (
    AomClient,
    ExecuteWorkflowRequest,
    ListWorkflowExecutionsRequest,
    ListWorkflowRequest,
    SearchWorkflowExecutionDetailRequest,
    StartPausingWorkflowExecutionsRequest,
    StartPausingWorkflowExecutionsResponse,
    StopExecutionRequest,
    UpdateWorkflowTriggerStatusRequest,
    UpdateWorkflowTriggerStatusResponse,
    WorkflowQueryParam,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import (
    ClientRequestException,
    SdkException,
    ServerResponseException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region

from airflow_provider_aom.emulator import (
    DEFAULT_AK,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SECURITY_TOKEN,
    DEFAULT_SK,
    DEFAULT_TEMP_AK,
    DEFAULT_TEMP_SK,
    AomEmulator,
    EmulatorConfig,
    WorkflowSpec,
    default_workflows,
)

FAST = 0.2


#: The default workflows these tests list exactly (the ones the example DAGs need are left out).
CORE_WORKFLOW_IDS = ("wf-success", "wf-fail", "wf-approval", "wf-long")


def core_workflows() -> list[WorkflowSpec]:
    return [spec for spec in default_workflows() if spec.id in CORE_WORKFLOW_IDS]


@pytest.fixture
def emu() -> Iterator[AomEmulator]:
    workflows = [
        *core_workflows(),
        WorkflowSpec(id="fast-success", name="fast success", outcome="success", duration=FAST),
        WorkflowSpec(id="fast-fail", name="fast fail", outcome="fail", duration=FAST),
        WorkflowSpec(id="fast-approval", name="fast approval", outcome="approval", duration=0, approvers=["ops-lead"]),
    ]
    with AomEmulator(EmulatorConfig(workflows=workflows)) as emulator:
        yield emulator


def http_config() -> HttpConfig:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 10)
    return config


def client_for(emu: AomEmulator, credentials: BasicCredentials) -> AomClient:
    return (
        AomClient.new_builder()
        .with_credentials(credentials)
        .with_http_config(http_config())
        .with_endpoints([emu.base_url])
        .build()
    )


CREDENTIALS: dict[str, Callable[[], BasicCredentials]] = {
    "permanent": lambda: BasicCredentials(DEFAULT_AK, DEFAULT_SK, DEFAULT_PROJECT_ID),
    "temporary": lambda: BasicCredentials(DEFAULT_TEMP_AK, DEFAULT_TEMP_SK, DEFAULT_PROJECT_ID).with_security_token(
        DEFAULT_SECURITY_TOKEN
    ),
}


def wait_status(client: AomClient, workflow_id: str, execution_id: str, wanted: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        detail = client.search_workflow_execution_detail(
            SearchWorkflowExecutionDetailRequest(workflow_id=workflow_id, execution_id=execution_id)
        )
        if detail.status == wanted or time.monotonic() > deadline:
            return str(detail.status)
        time.sleep(0.05)


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_every_endpoint_with_the_official_sdk(emu: AomEmulator, kind: str) -> None:
    client = client_for(emu, CREDENTIALS[kind]())

    # Execute.
    executed = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="fast-success"))
    assert executed.status_code == 200
    execution_id = executed.execution_id
    assert str(uuid.UUID(execution_id)) == execution_id

    # Detail, while running and once done.
    detail = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="fast-success", execution_id=execution_id)
    )
    assert detail.status == "executing"
    assert detail.workflow_id == "fast-success" and detail.execution_id == execution_id
    assert detail.project_id == DEFAULT_PROJECT_ID
    assert isinstance(detail.begin_time, int) and detail.end_time == 0
    assert detail.execution_result_list[0].status == "executing"
    assert wait_status(client, "fast-success", execution_id, "success") == "success"
    done = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="fast-success", execution_id=execution_id)
    )
    assert done.end_time > done.begin_time
    assert [node.status for node in done.execution_result_list] == ["success", "success"]
    assert isinstance(done.execution_result_list[1].output, dict)

    # A failing and an approval workflow, as the SDK models them.
    failing = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="fast-fail")).execution_id
    assert wait_status(client, "fast-fail", failing, "fail") == "fail"
    approval = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="fast-approval")).execution_id
    waiting = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="fast-approval", execution_id=approval)
    )
    assert waiting.status == "waitApproval" and waiting.approve_user_name_list == ["ops-lead"]

    # History: the SDK models the bare JSON array as ``body: list[WorkflowExecutionBrief]``.
    second = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="fast-success")).execution_id
    history = client.list_workflow_executions(
        ListWorkflowExecutionsRequest(workflow_id="fast-success", x_enterprise_project_id="0")
    )
    assert [brief.execution_id for brief in history.body] == [second, execution_id]
    assert history.body[1].status == "success"
    assert history.body[0].created_by and history.body[0].project_id == DEFAULT_PROJECT_ID

    # Terminate. The SDK models the 200 body as ``str``; the emulator sends the
    # documented example object {"result": "success"}, which the SDK's
    # deserializer turns into the string form of that dict without complaint.
    long_run = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf-long")).execution_id
    stopped = client.stop_execution(StopExecutionRequest(workflow_id="wf-long", execution_id=long_run))
    assert stopped.status_code == 200
    assert "success" in str(stopped.body)
    assert wait_status(client, "wf-long", long_run, "cancel") == "cancel"
    with pytest.raises(ClientRequestException) as finished:
        client.stop_execution(StopExecutionRequest(workflow_id="wf-long", execution_id=long_run))
    assert finished.value.status_code == 400 and finished.value.error_code == "AOM.31001302"

    # Workflow list with filters and paging.
    listed = client.list_workflow(
        ListWorkflowRequest(
            body=WorkflowQueryParam(search="fast", page=1, size=2, sort_field="create_time", sort_type="ASC")
        )
    )
    assert listed.total_elements == 3
    assert [workflow.id for workflow in listed.elements] == ["fast-success", "fast-fail"]
    first = listed.elements[0]
    # Its last execution is ``second``, started a moment ago.
    assert first.workflow_id == "fast-success" and first.status in {"executing", "success"}
    assert first.last_execution_id == second and first.project_id == DEFAULT_PROJECT_ID
    assert first.template_i18n is not None
    by_status = client.list_workflow(ListWorkflowRequest(body=WorkflowQueryParam(status="fail")))
    assert [workflow.id for workflow in by_status.elements] == ["fast-fail"]
    assert client.list_workflow(ListWorkflowRequest()).total_elements == 7

    assert {record["auth"] for record in emu.state.requests()} == {"aksk"}
    assert all(record["status"] < 400 or record["path"].endswith("/terminate") for record in emu.state.requests())


def test_sdk_signs_special_characters_the_emulator_accepts(emu: AomEmulator) -> None:
    emu.state.add_workflow(WorkflowSpec(id="wf x~ü", name="odd", outcome="success", duration=0))
    client = client_for(emu, CREDENTIALS["permanent"]())
    execution_id = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf x~ü")).execution_id
    history = client.list_workflow_executions(
        ListWorkflowExecutionsRequest(workflow_id="wf x~ü", x_enterprise_project_id="eps id/ü~*+")
    )
    assert [brief.execution_id for brief in history.body] == [execution_id]


def test_sdk_error_mapping(emu: AomEmulator) -> None:
    client = client_for(emu, CREDENTIALS["permanent"]())

    with pytest.raises(ClientRequestException) as missing:
        client.execute_workflow(ExecuteWorkflowRequest(workflow_id="nope"))
    assert missing.value.status_code == 404
    assert missing.value.error_code == "AOM.31001306"
    assert missing.value.error_msg == "workflow not exist."
    assert missing.value.request_id == emu.state.requests()[-1]["request_id"]

    with pytest.raises(ClientRequestException) as unknown_execution:
        client.search_workflow_execution_detail(
            SearchWorkflowExecutionDetailRequest(workflow_id="wf-success", execution_id="nope")
        )
    assert unknown_execution.value.status_code == 404 and unknown_execution.value.error_code == "AOM.31001307"

    emu.state.add_fault("status", status=429, retry_after=1)
    with pytest.raises(ClientRequestException) as throttled:
        client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf-success"))
    assert throttled.value.status_code == 429 and throttled.value.error_code == "APIG.0308"

    emu.state.add_fault("status", status=503)
    with pytest.raises(ServerResponseException) as unavailable:
        client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf-success"))
    assert unavailable.value.status_code == 503 and unavailable.value.error_code == "APIG.0201"
    assert emu.state.executions() == []


@pytest.mark.parametrize(
    "credentials",
    [
        BasicCredentials(DEFAULT_AK, DEFAULT_SK[::-1], DEFAULT_PROJECT_ID),
        BasicCredentials(DEFAULT_TEMP_AK, DEFAULT_TEMP_SK, DEFAULT_PROJECT_ID),
        BasicCredentials(DEFAULT_TEMP_AK, DEFAULT_TEMP_SK, DEFAULT_PROJECT_ID).with_security_token("stale"),
    ],
    ids=["wrong-sk", "temporary-without-token", "temporary-wrong-token"],
)
def test_sdk_rejected_credentials(emu: AomEmulator, credentials: BasicCredentials) -> None:
    client = client_for(emu, credentials)
    with pytest.raises(ClientRequestException) as rejected:
        client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf-success"))
    assert rejected.value.status_code == 401
    assert rejected.value.error_code == "APIG.0301"
    assert rejected.value.error_msg == "Incorrect IAM authentication information: verify aksk signature fail"


def test_sdk_discovers_project_id_through_iam() -> None:
    # The SDK caches discovered project ids per AK + region for the whole process,
    # so this test uses an AK of its own to be sure the lookup really happens.
    ak = "DISCOVERY" + uuid.uuid4().hex[:11].upper()
    sk = "discovery-secret-key"
    with AomEmulator(EmulatorConfig(ak=ak, sk=sk)) as own:
        credentials = BasicCredentials(ak, sk).with_iam_endpoint(own.base_url)
        client = (
            AomClient.new_builder()
            .with_credentials(credentials)
            .with_http_config(http_config())
            .with_region(Region(DEFAULT_REGION, own.base_url))
            .build()
        )
        assert credentials.project_id == DEFAULT_PROJECT_ID
        assert own.state.count_requests("GET", "/v3/projects") == 1
        assert client.execute_workflow(ExecuteWorkflowRequest(workflow_id="wf-success")).execution_id
        assert own.state.requests()[0]["query"] == f"name={DEFAULT_REGION}"


def test_sdk_project_discovery_fails_for_unknown_region() -> None:
    ak = "DISCOVERY" + uuid.uuid4().hex[:11].upper()
    with AomEmulator(EmulatorConfig(ak=ak, sk="another-secret")) as own:
        credentials = BasicCredentials(ak, "another-secret").with_iam_endpoint(own.base_url)
        builder = (
            AomClient.new_builder()
            .with_credentials(credentials)
            .with_http_config(http_config())
            .with_region(Region("eu-west-101", own.base_url))
        )
        with pytest.raises(SdkException, match="Failed to get project id"):
            builder.build()


def backdated(emu: AomEmulator, workflow_id: str) -> str:
    """An execution started long enough ago to wait at its first pause or failure."""
    execution_id = emu.state.create_execution(workflow_id, DEFAULT_IAM_USER, started_ago=30)
    assert execution_id is not None
    return execution_id


def test_node_operations_with_the_official_sdk(emu: AomEmulator) -> None:
    emu.state.add_workflow(WorkflowSpec(id="op-retry", name="retry", outcome="pause_on_fail", duration=0))
    emu.state.add_workflow(WorkflowSpec(id="op-pause", name="pause", outcome="pause", duration=0))
    client = client_for(emu, CREDENTIALS["permanent"]())

    def operate(
        workflow_id: str, execution_id: str, action: str, node_id: str
    ) -> StartPausingWorkflowExecutionsResponse:
        request = StartPausingWorkflowExecutionsRequest(
            workflow_id=workflow_id, execution_id=execution_id, action=action, node_id=node_id
        )
        with warnings.catch_warnings():
            # A body the SDK cannot map onto its model only warns: make that fail.
            warnings.simplefilter("error")
            return client.start_pausing_workflow_executions(request)

    retry = backdated(emu, "op-retry")
    restarted = operate("op-retry", retry, "restart", "node_2")
    assert restarted.status_code == 200 and restarted.result == "success"
    done = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="op-retry", execution_id=retry)
    )
    assert done.status == "success"
    assert done.execution_result_list[1].output == {"code": 0, "message": "node_2 finished successfully on run 2"}

    paused = backdated(emu, "op-pause")
    assert operate("op-pause", paused, "continue", "pause_1").result == "success"
    passed = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="op-pause", execution_id=paused)
    )
    assert [node.status for node in passed.execution_result_list] == ["success", "success", "success"]

    skipped = backdated(emu, "op-retry")
    assert operate("op-retry", skipped, "skip", "node_2").result == "success"
    with pytest.raises(ClientRequestException) as refused:
        operate("op-retry", skipped, "skip", "node_2")
    assert refused.value.status_code == 400
    assert refused.value.error_code == "AOM.31001302"
    assert refused.value.error_msg == "action skip refused: node node_2 is skip, execution is success"
    assert refused.value.request_id == emu.state.requests()[-1]["request_id"]

    with pytest.raises(ClientRequestException) as invalid:
        operate("op-pause", paused, "pause", "pause_1")
    assert invalid.value.status_code == 400 and invalid.value.error_msg == "Invalid param"
    with pytest.raises(ClientRequestException) as missing:
        operate("op-pause", "nope", "continue", "pause_1")
    assert missing.value.status_code == 404 and missing.value.error_code == "AOM.31001307"
    assert [(op["action"], op["node_id"]) for op in emu.state.operations(skipped)] == [("skip", "node_2")]


def test_trigger_switch_and_workflow_search_with_the_official_sdk(emu: AomEmulator) -> None:
    for index in range(3):
        emu.state.add_workflow(
            WorkflowSpec(id=f"nightly-{index}", name="nightly", outcome="success", duration=1, type="cron")
        )
    client = client_for(emu, CREDENTIALS["permanent"]())

    def trigger(workflow_id: str, action: str) -> UpdateWorkflowTriggerStatusResponse:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return client.update_workflow_trigger_status(
                UpdateWorkflowTriggerStatusRequest(workflow_id=workflow_id, action=action)
            )

    # The SDK models the 200 body as ``str``: the emulator's JSON string comes back as that str.
    disabled = trigger("nightly-1", "disable")
    assert disabled.status_code == 200 and disabled.body == "success"

    page = client.list_workflow(ListWorkflowRequest(body=WorkflowQueryParam(search="NIGHTLY", page=2, size=2)))
    assert page.total_elements == 3
    assert [workflow.id for workflow in page.elements] == ["nightly-2"]
    first = client.list_workflow(ListWorkflowRequest(body=WorkflowQueryParam(search="nightly", page=1, size=2)))
    assert [(w.id, w.name, w.trigger_status) for w in first.elements] == [
        ("nightly-0", "nightly", "enable"),
        ("nightly-1", "nightly", "disable"),
    ]
    assert all(workflow.trigger_id for workflow in first.elements)
    assert trigger("nightly-1", "enable").body == "success"

    with pytest.raises(ClientRequestException) as manual:
        trigger("wf-success", "enable")
    assert manual.value.status_code == 400 and manual.value.error_code == "AOM.31001302"
    assert manual.value.error_msg == "workflow wf-success has no trigger: it is not a cron workflow."
    with pytest.raises(ClientRequestException) as unknown:
        trigger("nope", "disable")
    assert unknown.value.status_code == 404 and unknown.value.error_code == "AOM.31001306"
    with pytest.raises(ClientRequestException) as invalid:
        trigger("nightly-0", "toggle")
    assert invalid.value.status_code == 400 and invalid.value.error_msg == "Invalid param"


def test_seeded_history_with_the_official_sdk(emu: AomEmulator) -> None:
    """The streamed (chunked) list of a workflow with history parses into the SDK's models."""
    emu.state.configure(history=50, history_nodes=20)
    client = client_for(emu, CREDENTIALS["permanent"]())
    real = client.execute_workflow(ExecuteWorkflowRequest(workflow_id="fast-success")).execution_id
    with warnings.catch_warnings():
        # A body the SDK cannot map onto its model only warns: make that fail.
        warnings.simplefilter("error")
        history = client.list_workflow_executions(
            ListWorkflowExecutionsRequest(workflow_id="fast-success", x_enterprise_project_id="0")
        )
    assert history.status_code == 200
    briefs = history.body
    assert len(briefs) == 51 and briefs[-1].execution_id == real
    assert len({brief.execution_id for brief in briefs}) == 51
    for brief in briefs[:50]:
        assert brief.execution_id.startswith("h-") and brief.workflow_id == "fast-success"
        assert brief.status in {"success", "fail", "cancel"} and brief.created_by
        assert brief.project_id == DEFAULT_PROJECT_ID and brief.end_time > brief.begin_time
        assert isinstance(brief.last_record_id_with_snapshot, str) and isinstance(brief.workflow_edit_time, int)
        assert len(brief.execution_result_list) == 20
        assert all(isinstance(node.output, dict) and node.function_execution_id for node in brief.execution_result_list)
        assert brief.execution_result_list[-1].status == brief.status
    seeded = briefs[7]
    detail = client.search_workflow_execution_detail(
        SearchWorkflowExecutionDetailRequest(workflow_id="fast-success", execution_id=seeded.execution_id)
    )
    assert detail.status == seeded.status and detail.end_time == seeded.end_time
    assert [node.node_id for node in detail.execution_result_list] == [f"node_{n}" for n in range(1, 21)]
    with pytest.raises(ClientRequestException) as finished:
        client.stop_execution(StopExecutionRequest(workflow_id="fast-success", execution_id=seeded.execution_id))
    assert finished.value.status_code == 400 and finished.value.error_msg == "execution already finished."
