"""Local emulator of Huawei Cloud IAM and the AOM Automation workflow API.

One HTTP server (standard library only, no Airflow import) answers both as the
IAM endpoint (``POST /v3/auth/tokens``, ``GET /v3/projects`` and the
self-lookups ``GET /v3/auth/tokens`` with ``X-Subject-Token``,
``GET /v3.0/OS-CREDENTIAL/credentials/{access_key}``, ``GET /v3/users/{user_id}``)
and as the AOM endpoint (the ``/v1/{project_id}/cms/...`` workflow API: workflow
list, execute, execution detail and list, terminate, node operations, trigger
switch), with the documented paths, shapes and error bodies, so DAGs, tests and
demos run without a cloud account. Run it with ``python -m airflow_provider_aom.emulator`` or in-process::

    with AomEmulator() as emu:
        emu.base_url          # "http://127.0.0.1:PORT": AOM and IAM endpoint
        emu.state.add_fault("status", path="/executions$", status=429, retry_after=1)

Default workflows (``EmulatorConfig.workflows=None``):

* ``wf-success``: ``executing`` for 2 s, then ``success``;
* ``wf-fail``: ``executing`` for 2 s, then ``fail`` (its second node fails);
* ``wf-approval``: ``executing`` for 1 s, then ``waitApproval`` for good
  (approvers ``["ops-lead"]``);
* ``wf-long``: ``executing`` for 600 s, then ``success``;
* ``wf-flaky`` (named ``flaky-patching``): ``pause_on_fail``, 2 s: its second node fails once and
  the execution waits ``pausing`` for a restart or a skip;
* ``wf-gated`` (named ``gated-cleanup``): ``pause``, 2 s: waits at the pause node ``pause_1``;
* ``wf-nightly`` (named ``nightly-patching``): a ``cron`` workflow (its trigger can be switched), 2 s.

Outcomes (``WorkflowSpec.outcome``); tasks take half the duration each, and an
execution's state is replayed from its plan, start, accepted operations and
cancel time on every read (no timers):

* ``success``: ``node_1`` then ``node_2`` succeed;
* ``fail``: ``node_2`` fails on its first run and the execution ends ``fail``;
  ``restart`` of ``node_2`` (even after the end) runs it again from the restart
  time, it succeeds on run 2 and the execution ends ``success``;
* ``pause_on_fail``: ``node_2`` fails on its first run and the execution stays
  ``pausing`` (node ``fail``) until ``restart`` (runs again, succeeds) or
  ``skip`` (node ``skip``, the execution goes on, here to ``success``);
* ``pause``: ``node_1``, then the pause node ``pause_1`` (execution and node
  ``pausing``) until ``continue`` passes it, then ``node_2``;
* ``approval``: ``node_1``, then ``approval_1`` in ``waitApproval`` for good.

Node operations (``POST .../executions/{id}/operation?action=&node_id=``) are
recorded (``EmulatorState.operations``, ``GET /_emulator/executions``). A
``cron`` workflow has a trigger switch (``PUT .../trigger/action?action=``),
``enable`` at first, shown as the list's ``trigger_status``.
``EmulatorConfig(pattern_workflows=True)`` (CLI ``--pattern-workflows``) also
serves any id ``wf-ok-<anything>`` (success after 3 s) and
``wf-slow-<anything>`` (ten years) without registering it; the workflow list
shows registered workflows only. ``EmulatorConfig(answer_delay=SECONDS)`` (CLI
``--answer-delay``) holds every AOM answer (``/v1/...``, not IAM or admin calls)
that long before it is sent, as a backend's latency, in the connection's own
thread (other connections are served meanwhile).

Credentials: the AK/SK pair ``DEFAULT_AK``/``DEFAULT_SK``, the temporary pair
``DEFAULT_TEMP_AK``/``DEFAULT_TEMP_SK`` (needs ``X-Security-Token:
DEFAULT_SECURITY_TOKEN``, signed), IAM user ``DEFAULT_IAM_USER`` /
``DEFAULT_IAM_PASSWORD`` in domain ``DEFAULT_IAM_DOMAIN``, project
``DEFAULT_PROJECT_ID`` named after ``DEFAULT_REGION``.

Fault kinds (``EmulatorState.add_fault`` or ``POST /_emulator/faults``, per
method, path regex and count): ``delay``, ``drop_before``, ``drop_after``,
``status`` (``status``, default 503, ``retry_after``, ``error_code``),
``malformed``, ``truncated``, ``expire_token``, and

* ``trickle``: the real answer, one byte every ``delay`` seconds (default 1);
* ``huge``: 200 with ``size`` bytes (default 400 MiB) of ``[0,0,...``, streamed;
  ``size=-1`` is chunked and endless;
* ``gzip_bomb``: 200, ``Content-Encoding: gzip``, inflating to ``size`` bytes
  (default 1 GiB, about 1 MB sent; compressed once per size, ~3 s for 1 GiB);
* ``body``: the raw text ``body`` with ``status`` (default 200);
* ``patch``: the real 2xx JSON answer with ``patch``'s keys set (in each object
  of an array answer); NaN/Infinity go out as literals.

``status``, ``body``, ``huge`` and ``gzip_bomb`` answer in place of the route
(nothing is done); ``trickle`` and ``patch``, like ``drop_after``, ``malformed``
and ``truncated``, let it run first. ``POST /_emulator/executions``
(``{"workflow_id", "created_by", "started_ago"}``, or
``EmulatorState.create_execution``) adds an execution someone else started
seconds ago.

``EmulatorConfig(history=N, history_nodes=K)`` (CLI ``--history``,
``--history-nodes``; at run time ``POST /_emulator/config`` with
``{"history": N, "history_nodes": K}``, read back by ``GET /_emulator/config``,
put back by a reset) seeds every workflow with N old, ended executions of K
node results, generated from their index and never held (see
:mod:`airflow_provider_aom.emulator.history`): the execution list streams them
(chunked), then the real executions; their ids are ``h-<12 hex>-<index>``; their
detail answers, terminate says "already finished", node operations are refused;
``EmulatorState.executions()`` and the request log leave them out.

Outages (``scripts/chaos.py`` uses them): a ``storm`` fault (``add_fault("storm", duration=S, share=P,
seed=N, retry_after=R)``, or ``POST /_emulator/faults``) answers a seeded share ``P`` of the matching
requests with 503 or 429 (``status`` 0, the default: a seeded mix) and ``Retry-After`` for ``S`` seconds;
``EmulatorConfig.clock_skew`` (CLI ``--clock-skew``, ``POST /_emulator/config`` ``{"clock_skew": S}``)
runs the emulator's clock ``S`` seconds off the host's: the ``Date`` header, begin/end times, token times
and the gateway's check of a signature's ``X-Sdk-Date`` (the client's clock, within ``max_clock_skew`` of
the emulator's, as the APIG gateway checks it against its own); ``EmulatorConfig.state_file`` (CLI
``--state-file``) keeps workflows, executions and tokens across a restart (written after every change,
before the answer).

Emulator choices where the real API is undocumented:

* unknown execution: 404 ``AOM.31001307`` "execution not exist.";
* terminating a finished execution: 400 ``AOM.31001302`` "execution already finished.";
* terminate goes straight to ``cancel`` (no visible ``canceling`` step);
* node ids are ``node_1``/``node_2`` (``node_1``/``approval_1`` for approval
  workflows, ``node_1``/``pause_1``/``node_2`` for pause workflows), each task
  taking half the duration; an execution that has not ended reports
  ``end_time`` 0, and so does a node still running or waiting;
* an operation that does not fit the execution's state (wrong or unknown node,
  execution still executing, ended ``success`` or cancelled, ``skip`` of a
  ``fail`` outcome's node, ``continue`` on a failed node, ``restart``/``skip``
  of a pause node, anything on an approval node): 400 ``AOM.31001302``
  "action ACTION refused: node NODE is STATUS|has not started|does not exist,
  execution is STATUS"; an accepted one answers 200 ``{"result": "success"}``;
* a restarted node shows one entry: its latest run (``begin_time`` the restart,
  a new ``function_execution_id``); a skipped node's ``end_time`` is the skip;
  a terminate turns running or waiting nodes into ``cancel`` (a failed node
  stays ``fail``);
* the trigger switch of a non-``cron`` workflow: 400 ``AOM.31001302``
  "workflow ID has no trigger: it is not a cron workflow."; its 200 body is the
  JSON string ``"success"`` (the SDK models it as ``str`` and reads it back as
  ``"success"``; the doc's ``{"success"}`` is not JSON); ``trigger_id`` is
  derived from the workflow id;
* query parameters of operation and trigger calls are checked (400
  ``Invalid param``: missing, repeated, empty or not in the enum) before the
  workflow and execution exist (404);
* ``x_enterprise_project_id`` is validated but every workflow is in project ``"0"``;
* parameter checks (400) come before the project check (401 ``AOM.31009004``);
* ``/_emulator/*`` admin calls are neither authenticated, fault-injected nor logged;
* execution lists are ordered by begin time, newest first (with a seeded
  history: the seeded rows, newest first, then the real executions);
* verifying a static token reports method ``token``, issued now, expiring
  after ``token_ttl``; a credential's ``create_time`` is the emulator's start;
  reading another user is 403.
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
