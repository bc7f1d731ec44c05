"""Thread-safe in-memory state of the emulator: workflows, executions, tokens, faults, log.

Executions are not driven by timers: their state is replayed from their node
plan, their start, the operations accepted on them and their cancel time each
time they are read, so a stopped or idle emulator costs nothing and the status
moves exactly with wall time.
"""

from __future__ import annotations

import copy
import hmac
import json
import math
import os
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from airflow_provider_aom.emulator.history import History, validate_history
from airflow_provider_aom.emulator.models import (
    EmulatorConfig,
    WorkflowSpec,
    default_workflows,
    pattern_workflow,
)

FAULT_KINDS = (
    "delay",
    "drop_before",
    "drop_after",
    "status",
    "malformed",
    "truncated",
    "expire_token",
    "trickle",
    "huge",
    "gzip_bomb",
    "body",
    "patch",
    "storm",
)
# Per-kind defaults of add_fault's ``status`` and ``size`` when not given.
DEFAULT_FAULT_STATUS = 503
DEFAULT_BODY_STATUS = 200
DEFAULT_HUGE_SIZE = 400 * 1024 * 1024
DEFAULT_GZIP_BOMB_SIZE = 1024 * 1024 * 1024
DEFAULT_TRICKLE_PAUSE = 1.0
#: The ``Retry-After`` of a ``storm`` fault's answers when not given, seconds.
DEFAULT_STORM_RETRY_AFTER = 2.0
#: A ``storm`` fault's ``status`` 0: each answer is 503 or 429, a seeded even choice.
STORM_MIXED = 0
STORM_STATUSES = (503, 429)
# ``size`` of a ``huge`` fault that never ends.
ENDLESS = -1
TERMINAL_STATUSES = frozenset({"success", "fail", "cancel"})
WORKFLOW_SORT_FIELDS = ("create_time", "update_time", "last_execution_start_time")
FAILURE_MESSAGE = "script exited with code 1"
TRIGGER_ACTIONS = ("enable", "disable")
# Trigger ids derive from the workflow id, so they are stable across restarts.
_TRIGGER_NAMESPACE = uuid.UUID("9b1f3c2e-7a4d-4e5f-8c6b-1d2e3f4a5b6c")
#: The EmulatorConfig fields ``EmulatorState.configure`` (``POST /_emulator/config``) changes at run time.
RUNTIME_CONFIG_FIELDS = ("history", "history_nodes", "clock_skew")
#: The version of the ``EmulatorConfig.state_file`` format.
STATE_FILE_VERSION = 1

JsonDict = dict[str, Any]


def epoch_ms(moment: float) -> int:
    """Seconds since the epoch to the integer milliseconds AOM uses."""
    return int(moment * 1000)


def same_secret(given: object, expected: str) -> bool:
    """Constant-time equality of a received value (a non-string never matches) and a secret."""
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass
class Fault:
    """An injected fault; ``remaining`` counts down as matching requests consume it."""

    kind: str
    method: str | None
    path: str
    remaining: int
    status: int
    retry_after: float | None
    delay: float
    error_code: str | None
    pattern: re.Pattern[str] = field(repr=False)
    # 0 for kinds that send no generated body.
    size: int = 0
    body: str | None = None
    patch: JsonDict | None = None
    #: ``storm``: the share of matching requests it answers (the others pass), and when it ends (the
    #: emulator's clock); its seeded generator draws both the share and each answer's status.
    share: float = 1.0
    until: float | None = None
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def matches(self, method: str, path: str, has_token: bool) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        # An expired-token fault means nothing to a request that carries no token
        # (IAM token requests, AK/SK requests), so those leave it for a later one.
        if self.kind == "expire_token" and not has_token:
            return False
        return self.pattern.search(path) is not None

    def to_dict(self) -> JsonDict:
        # A copy: the caller may change the dict without touching the fault.
        return {
            item.name: copy.deepcopy(getattr(self, item.name))
            for item in fields(self)
            if item.name not in ("pattern", "rng")
        }


@dataclass
class TokenRecord:
    """An IAM token issued by the emulator (the token string itself is the dict key)."""

    issued_at: float
    expires_at: float

    def expire(self, now: float) -> float:
        """Expire at ``now`` unless already expired earlier; returns the expiry time."""
        self.expires_at = min(self.expires_at, now)
        return self.expires_at


@dataclass
class RequestRecord:
    """One entry of the request log (never holds credentials)."""

    time: float
    method: str
    path: str
    query: str
    status: int
    auth: str
    fault: str | None
    request_id: str


# Node kinds of an execution plan.
TASK = "task"
PAUSE = "pause"
APPROVAL = "approval"
OPERATION_ACTIONS = ("restart", "skip", "continue")
# Node statuses that still wait for the clock or for people: a terminate turns them into "cancel".
_OPEN_NODE_STATUSES = frozenset({"executing", "pausing", "waitApproval"})
# Function execution ids of later runs derive from the first run's, so a replay
# always shows the same id for the same run.
_RUN_NAMESPACE = uuid.UUID("0f6f5a0e-3b8e-4d0a-9a55-2a3c4c7d9e11")


@dataclass(frozen=True)
class _Step:
    """One node of an execution plan."""

    node_id: str
    kind: str
    # Seconds one run of a task takes (pause and approval nodes wait for people instead).
    duration: float = 0.0
    # The first run fails; a run after a restart succeeds.
    fails_first_run: bool = False


@dataclass(frozen=True)
class Operation:
    """An accepted ``StartPausingWorkflowExecutions`` call (§1.5)."""

    time: float
    action: str
    node_id: str


@dataclass
class _NodeRun:
    """A node as the execution detail shows it: its latest run."""

    node_id: str
    function_execution_id: str
    begin: float
    # None while the node runs or waits.
    end: float | None
    status: str
    output: JsonDict

    def result(self) -> JsonDict:
        """The ``execution_result_list`` item (§1.2)."""
        return {
            "node_id": self.node_id,
            "begin_time": epoch_ms(self.begin),
            "end_time": 0 if self.end is None else epoch_ms(self.end),
            "function_execution_id": self.function_execution_id,
            "output": copy.deepcopy(self.output),
            "status": self.status,
        }


@dataclass
class _Replay:
    """An execution as of one moment: what its plan and its operations made of it."""

    status: str
    # The nodes reached so far, in plan order.
    nodes: list[_NodeRun]
    # When the execution ended; None while it has not.
    end: float | None
    # The node an operation may act on now, and the actions it accepts.
    waiting: str | None = None
    accepts: frozenset[str] = frozenset()


def _plan(spec: WorkflowSpec) -> tuple[tuple[_Step, ...], bool]:
    """The node plan of the spec's outcome, and whether a failed node pauses the execution instead of ending it."""
    half = spec.duration / 2
    if spec.outcome == "approval":
        return (_Step("node_1", TASK, spec.duration), _Step("approval_1", APPROVAL)), False
    if spec.outcome == "pause":
        return (_Step("node_1", TASK, half), _Step("pause_1", PAUSE), _Step("node_2", TASK, half)), False
    fails = spec.outcome in ("fail", "pause_on_fail")
    return (_Step("node_1", TASK, half), _Step("node_2", TASK, half, fails)), spec.outcome == "pause_on_fail"


def _failure_output(node_id: str) -> JsonDict:
    return {"code": 1, "message": f"{node_id} failed: {FAILURE_MESSAGE}", "error_msg": FAILURE_MESSAGE}


def _success_output(node_id: str, run: int) -> JsonDict:
    suffix = "" if run == 1 else f" on run {run}"
    return {"code": 0, "message": f"{node_id} finished successfully{suffix}"}


@dataclass
class Execution:
    """One run of a workflow.

    Its state is a pure function of its node plan, its start, the operations
    accepted on it, its cancel time and the clock: :meth:`replay` recomputes it
    on every read.
    """

    execution_id: str
    workflow_id: str
    outcome: str
    duration: float
    approvers: list[str]
    created_at: float
    created_by: str
    workflow_edit_time: int
    snapshot_id: str
    plan: tuple[_Step, ...]
    # True: a failed node leaves the execution ``pausing``; False: the execution ends ``fail``.
    pause_on_fail: bool
    # The function execution id of each node's first run.
    function_execution_ids: dict[str, str]
    operations: list[Operation] = field(default_factory=list)
    cancelled_at: float | None = None

    @classmethod
    def create(cls, spec: WorkflowSpec, edit_time: int, created_by: str, now: float) -> Execution:
        plan, pause_on_fail = _plan(spec)
        return cls(
            execution_id=str(uuid.uuid4()),
            workflow_id=spec.id,
            outcome=spec.outcome,
            duration=spec.duration,
            approvers=list(spec.approvers) if spec.outcome == "approval" else [],
            created_at=now,
            created_by=created_by,
            workflow_edit_time=edit_time,
            snapshot_id=uuid.uuid4().hex,
            plan=plan,
            pause_on_fail=pause_on_fail,
            function_execution_ids={step.node_id: uuid.uuid4().hex for step in plan},
        )

    def _function_execution_id(self, node_id: str, run: int) -> str:
        first = self.function_execution_ids[node_id]
        return first if run == 1 else uuid.uuid5(_RUN_NAMESPACE, f"{first}/{run}").hex

    def replay(self, now: float) -> _Replay:
        """The execution as of ``now``."""
        if self.cancelled_at is None:
            return self._replay(now)
        cancelled_at = self.cancelled_at
        replay = self._replay(min(now, cancelled_at))
        for node in replay.nodes:
            if node.status in _OPEN_NODE_STATUSES:
                node.status, node.end = "cancel", cancelled_at
                node.output = {"message": "execution terminated by user"}
        return _Replay("cancel", replay.nodes, cancelled_at)

    def _replay(self, moment: float) -> _Replay:
        """Walk the plan up to ``moment``, taking one operation at each point that waits for one."""
        # Operations are accepted only where the execution waits for one, and in
        # time order, so the n-th operation belongs to the n-th waiting point.
        pending = iter([operation for operation in self.operations if operation.time <= moment])
        nodes: list[_NodeRun] = []
        # Times are an anchor (the start, or the operation that last moved the
        # execution on) plus an offset: an execution nobody acted on reports
        # exactly created_at plus its plan's offsets.
        anchor, offset = self.created_at, 0.0
        for step in self.plan:
            run = 1
            node = _NodeRun(step.node_id, self._function_execution_id(step.node_id, 1), anchor + offset, None, "", {})
            nodes.append(node)
            if step.kind == APPROVAL:
                node.status = "waitApproval"
                node.output = {"message": "waiting for approval", "approvers": list(self.approvers)}
                return _Replay("waitApproval", nodes, None)
            if step.kind == PAUSE:
                node.status, node.output = "pausing", {"message": "paused: waiting for continue"}
                operation = next(pending, None)
                if operation is None:
                    return _Replay("pausing", nodes, None, step.node_id, frozenset({"continue"}))
                node.status, node.end = "success", operation.time
                node.output = {"code": 0, "message": f"{step.node_id} continued by user"}
                anchor, offset = operation.time, 0.0
                continue
            while True:
                end_offset = offset + step.duration
                if moment - anchor < end_offset:
                    node.status = "executing"
                    return _Replay("executing", nodes, None)
                node.end = anchor + end_offset
                if not (step.fails_first_run and run == 1):
                    node.status, node.output = "success", _success_output(step.node_id, run)
                    offset = end_offset
                    break
                node.status, node.output = "fail", _failure_output(step.node_id)
                operation = next(pending, None)
                if operation is None:
                    if self.pause_on_fail:
                        return _Replay("pausing", nodes, None, step.node_id, frozenset({"restart", "skip"}))
                    return _Replay("fail", nodes, node.end, step.node_id, frozenset({"restart"}))
                anchor, offset = operation.time, 0.0
                if operation.action == "skip":
                    node.status, node.end, node.output = "skip", operation.time, {"message": "skipped by user"}
                    break
                # A restart: the same node runs again from the operation's time.
                run += 1
                node.function_execution_id = self._function_execution_id(step.node_id, run)
                node.begin, node.end, node.output = operation.time, None, {}
        return _Replay("success", nodes, anchor + offset)

    def status_at(self, now: float) -> str:
        return self.replay(now).status

    def operate(self, action: str, node_id: str, now: float) -> str | None:
        """Apply ``action`` on ``node_id`` at ``now``: None when accepted, else why it was refused."""
        replay = self.replay(now)
        if replay.waiting == node_id and action in replay.accepts:
            self.operations.append(Operation(now, action, node_id))
            return None
        shown = {node.node_id: node.status for node in replay.nodes}
        if node_id in shown:
            node_state = f"is {shown[node_id]}"
        elif any(step.node_id == node_id for step in self.plan):
            node_state = "has not started"
        else:
            node_state = "does not exist"
        return f"action {action} refused: node {node_id} {node_state}, execution is {replay.status}"

    def detail(self, now: float, project_id: str) -> JsonDict:
        """The ``SearchWorkflowExecutionDetail`` body (§1.2) as of ``now``."""
        replay = self.replay(now)
        # The last event: a node starting or ending (restarts, skips and
        # continues each start or end one), or the execution ending.
        events = [self.created_at]
        for node in replay.nodes:
            events.append(node.begin)
            if node.end is not None:
                events.append(node.end)
        if replay.end is not None:
            events.append(replay.end)
        return {
            "workflow_id": self.workflow_id,
            "execution_id": self.execution_id,
            "status": replay.status,
            "begin_time": epoch_ms(self.created_at),
            "end_time": 0 if replay.end is None else epoch_ms(replay.end),
            "last_update_time": epoch_ms(max(events)),
            # The first node always exists, so the list is never empty (§1.3 asks 1-200).
            "execution_result_list": [node.result() for node in replay.nodes],
            "approve_user_name_list": list(self.approvers),
            "project_id": project_id,
            "workflow_edit_time": self.workflow_edit_time,
            "last_record_id_with_snapshot": self.snapshot_id,
        }

    def brief(self, now: float, project_id: str) -> JsonDict:
        """The ``WorkflowExecutionBrief`` (§1.3): the detail plus ``created_by``."""
        body = self.detail(now, project_id)
        body["created_by"] = self.created_by
        return body


@dataclass
class _WorkflowRecord:
    spec: WorkflowSpec
    create_time: int
    update_time: int


@dataclass
class WorkflowQuery:
    """A validated ``WorkflowQueryParam`` (§1.6)."""

    search: str | None = None
    type: str | None = None
    status: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enterprise_project_id: str | None = None
    create_by: str | None = None
    sort_field: str | None = None
    sort_type: str = "DESC"
    search_time_start: int | None = None
    search_time_end: int | None = None
    page: int = 1
    size: int = 10


class EmulatorState:
    """Everything the emulator remembers; every public method is thread-safe."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        validate_history(config.history, config.history_nodes)
        self.config = config
        # What reset() puts back of the settings configure() changes.
        self._initial_config = {name: getattr(config, name) for name in RUNTIME_CONFIG_FIELDS}
        self._clock = clock
        self._lock = threading.RLock()
        self._workflows: dict[str, _WorkflowRecord] = {}
        # The trigger switch of each registered workflow ("enable", "disable",
        # or "" for one without a schedule): state, not part of the spec.
        self._trigger_status: dict[str, str] = {}
        self._executions: dict[str, Execution] = {}
        # The newest execution of each workflow id, for the workflow list.
        self._last_execution: dict[str, Execution] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        validate_clock_skew(config.clock_skew)
        self._state_file = None if config.state_file is None else Path(config.state_file)
        # Nothing is saved while the state is being built.
        self._loading = True
        # When this state came to be: the creation time of the permanent AK.
        self.started_at = self.now()
        specs = default_workflows() if config.workflows is None else config.workflows
        for spec in specs:
            self.add_workflow(spec)
        if self._state_file is not None and self._state_file.exists():
            self._load(self._state_file)
        self._loading = False
        self.save()

    def now(self) -> float:
        """The emulator's clock: the host's plus ``config.clock_skew`` (every time it reports or compares)."""
        return self._clock() + self.config.clock_skew

    # -- persistence (EmulatorConfig.state_file) ---------------------------

    def save(self) -> None:
        """Write what survives a restart to ``config.state_file`` (atomically; nothing without one).

        Called after every change, under the lock, so an answer that told a client about an execution is
        sent only once that execution is on disk: a restart never forgets what a client was told.
        """
        if self._state_file is None or self._loading:
            return
        with self._lock:
            data = {
                "version": STATE_FILE_VERSION,
                "started_at": self.started_at,
                "workflows": [
                    {
                        "spec": asdict(record.spec),
                        "create_time": record.create_time,
                        "update_time": record.update_time,
                        "trigger_status": self._trigger_status.get(workflow_id, ""),
                    }
                    for workflow_id, record in self._workflows.items()
                ],
                "executions": [asdict(execution) for execution in self._executions.values()],
                "last_execution": {key: value.execution_id for key, value in self._last_execution.items()},
                "tokens": {token: asdict(record) for token, record in self._tokens.items()},
            }
            target = self._state_file
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            # Tokens are secrets: the file is the owner's only.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(temporary, target)

    def _load(self, path: Path) -> None:
        """Take workflows, executions and tokens from a state file :meth:`save` wrote (ValueError if unreadable)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_FILE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_FILE_VERSION}")
            started_at = float(data["started_at"])
            workflows = [
                (
                    _WorkflowRecord(WorkflowSpec(**item["spec"]), int(item["create_time"]), int(item["update_time"])),
                    str(item["trigger_status"]),
                )
                for item in data["workflows"]
            ]
            executions = [_execution_from_dict(item) for item in data["executions"]]
            last = {str(key): str(value) for key, value in data["last_execution"].items()}
            tokens = {str(token): TokenRecord(**record) for token, record in data["tokens"].items()}
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"cannot load the emulator state from {path}: {exc}") from None
        with self._lock:
            self.started_at = started_at
            for record, trigger in workflows:
                record.spec.validate()
                self._workflows[record.spec.id] = record
                self._trigger_status[record.spec.id] = trigger
            self._executions = {execution.execution_id: execution for execution in executions}
            self._last_execution = {
                workflow_id: self._executions[execution_id]
                for workflow_id, execution_id in last.items()
                if execution_id in self._executions
            }
            self._tokens.update(tokens)

    # -- test-facing API -------------------------------------------------

    def runtime_config(self) -> JsonDict:
        """The settings :meth:`configure` changes, as they are now."""
        with self._lock:
            settings = {name: getattr(self.config, name) for name in RUNTIME_CONFIG_FIELDS}
            # The host's clock (no skew) is the default, shown only once changed.
            if not settings["clock_skew"]:
                del settings["clock_skew"]
            return settings

    def configure(
        self, *, history: int | None = None, history_nodes: int | None = None, clock_skew: float | None = None
    ) -> JsonDict:
        """Change the seeded history or the clock skew (``None`` leaves a setting as it is); returns
        :meth:`runtime_config`.

        All are checked before any changes (ValueError). Answers being sent keep the history they began with.
        A new skew moves the emulator's clock at once, as a clock stepped by NTP would: running executions
        jump with it.
        """
        with self._lock:
            new_history = self.config.history if history is None else history
            new_nodes = self.config.history_nodes if history_nodes is None else history_nodes
            validate_history(new_history, new_nodes)
            if clock_skew is not None:
                validate_clock_skew(clock_skew)
            self.config.history, self.config.history_nodes = new_history, new_nodes
            if clock_skew is not None:
                self.config.clock_skew = float(clock_skew)
            return self.runtime_config()

    def history(self, workflow_id: str) -> History | None:
        """The seeded history of a workflow (:mod:`~airflow_provider_aom.emulator.history`); None when it has none.

        None too for an unknown workflow. The object holds no row: it builds any of them on request.
        """
        with self._lock:
            return self._history(workflow_id)

    def _history(self, workflow_id: str) -> History | None:
        """The workflow's seeded history as configured now (call with the lock held)."""
        if self.config.history == 0:
            return None
        found = self._workflow(workflow_id)
        if found is None:
            return None
        spec, edit_time = found
        return History(
            workflow_id=workflow_id,
            count=self.config.history,
            nodes=self.config.history_nodes,
            started_at=self.started_at,
            iam_user=self.config.iam_user,
            project_id=self.config.project_id,
            edit_time=edit_time,
            approvers=spec.approvers if spec.outcome == "approval" else (),
        )

    def _seeded(self, workflow_id: str, execution_id: str) -> tuple[History, int] | None:
        """The history and row index of a seeded execution of this workflow (call with the lock held)."""
        history = self._history(workflow_id)
        index = None if history is None else history.index_of(execution_id)
        return None if history is None or index is None else (history, index)

    def executions(self, with_operations: bool = False) -> list[JsonDict]:
        """Every execution created (as ``WorkflowExecutionBrief`` dicts), oldest first.

        ``with_operations`` adds each one's accepted operations under ``operations``.
        Seeded history is not included (see :meth:`history`).
        """
        with self._lock:
            now = self.now()
            pid = self.config.project_id
            briefs = []
            for execution in self._executions.values():
                brief = execution.brief(now, pid)
                if with_operations:
                    brief["operations"] = [asdict(operation) for operation in execution.operations]
                briefs.append(brief)
            return briefs

    def operations(self, execution_id: str) -> list[JsonDict]:
        """The operations accepted on an execution (``time``, ``action``, ``node_id``), oldest first.

        Raises KeyError for an unknown execution id.
        """
        with self._lock:
            return [asdict(operation) for operation in self._executions[execution_id].operations]

    def requests(self) -> list[JsonDict]:
        """The request log, oldest first (admin ``/_emulator/`` calls are not logged)."""
        with self._lock:
            return [asdict(record) for record in self._log]

    def count_requests(self, method: str | None = None, path_prefix: str | None = None) -> int:
        """How many logged requests have this method and a path starting with the prefix."""
        with self._lock:
            return sum(
                1
                for record in self._log
                if (method is None or record.method.upper() == method.upper())
                and (path_prefix is None or record.path.startswith(path_prefix))
            )

    def iam_token_requests(self) -> int:
        """How many ``POST /v3/auth/tokens`` calls were received (whatever their outcome)."""
        return self.count_requests("POST", "/v3/auth/tokens")

    def add_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str = "",
        count: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        error_code: str | None = None,
        size: int | None = None,
        body: str | None = None,
        patch: JsonDict | None = None,
        share: float | None = None,
        duration: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Inject a fault into the next ``count`` requests matching ``method`` and ``path``.

        ``path`` is a regular expression searched in the raw request path.
        ``status``: the answer's status for ``status`` (default 503) and ``body``
        (default 200) faults. ``delay``: seconds to wait before answering, or for
        ``trickle`` the pause between bytes (default 1 s). ``size``: body bytes
        of ``huge`` (default 400 MiB, ``-1`` endless) and decompressed bytes of
        ``gzip_bomb`` (default 1 GiB). ``body``: the raw text a ``body`` fault
        answers. ``patch``: keys a ``patch`` fault sets in the real JSON answer. ``count`` defaults to 1.

        A ``storm`` (a throttling or overload episode of the gateway) lasts ``duration`` seconds (required)
        and answers a ``share`` (default 1) of the matching requests with ``status`` (default 0: each answer
        503 or 429, an even choice) and ``Retry-After: retry_after`` (default 2 s); the other requests are
        served. ``seed`` seeds the draws (share and status). Without ``count`` it has no limit of answers
        (``remaining`` -1); it ends ``duration`` seconds after it was added.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        storm = kind == "storm"
        if count is None:
            count = ENDLESS if storm else 1
        elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if not storm and (share is not None or duration is not None or seed is not None):
            raise ValueError("share, duration and seed are settings of a storm fault only")
        if storm:
            if duration is None or isinstance(duration, bool) or not isinstance(duration, (int, float)):
                raise ValueError("a storm fault needs its duration in seconds")
            if not (math.isfinite(duration) and duration > 0):
                raise ValueError("duration must be a positive number of seconds")
            if share is None:
                share = 1.0
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise ValueError("share must be a number above 0 and at most 1")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise ValueError("seed must be an integer")
            if status is None:
                status = STORM_MIXED
            elif status not in (STORM_MIXED, *STORM_STATUSES):
                raise ValueError("a storm answers 503 or 429 (status 0: a mix of both)")
            if retry_after is None:
                retry_after = DEFAULT_STORM_RETRY_AFTER
        if status is None:
            # None is the "not given" sentinel: a body fault stands for a normal
            # answer, a status fault for a failure.
            status = DEFAULT_BODY_STATUS if kind == "body" else DEFAULT_FAULT_STATUS
        if not storm and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError("status must be an HTTP status code")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError("delay must be a non-negative number of seconds")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative number of seconds")
        if method is not None and not isinstance(method, str):
            raise ValueError("method must be a string")
        if error_code is not None and not isinstance(error_code, str):
            raise ValueError("error_code must be a string")
        if not isinstance(path, str):
            raise ValueError("path must be a regular expression string")
        try:
            pattern = re.compile(path)
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression: {exc}") from exc
        size = _fault_size(kind, size)
        if body is not None and not isinstance(body, str):
            raise ValueError("body must be a string")
        if kind == "body" and body is None:
            raise ValueError("a body fault needs the body to send")
        if patch is not None:
            patch = _json_object(patch, "patch")
        if kind == "patch" and patch is None:
            raise ValueError("a patch fault needs the patch to apply")
        if kind == "trickle" and delay == 0:
            delay = DEFAULT_TRICKLE_PAUSE
        fault = Fault(
            kind=kind,
            method=method,
            path=path,
            remaining=count,
            status=status,
            retry_after=None if retry_after is None else float(retry_after),
            delay=float(delay),
            error_code=error_code,
            pattern=pattern,
            size=size,
            body=body,
            patch=patch,
        )
        with self._lock:
            if storm:
                assert share is not None and duration is not None
                fault.share, fault.until, fault.seed = float(share), self.now() + float(duration), seed
                fault.rng = random.Random(seed)  # noqa: S311 - reproducible faults, not cryptography
            self._faults.append(fault)

    def faults(self) -> list[JsonDict]:
        """Faults not yet used up, in the order they are matched."""
        with self._lock:
            now = self.now()
            self._faults = [fault for fault in self._faults if fault.until is None or now < fault.until]
            return [fault.to_dict() for fault in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_workflow(self, spec: WorkflowSpec) -> None:
        """Add a workflow, or replace the one with the same id (keeping its create time).

        A ``cron`` workflow's trigger starts enabled; a replacement that stays
        ``cron`` keeps the switch where it was.
        """
        spec.validate()
        stored = copy.deepcopy(spec)
        with self._lock:
            now_ms = epoch_ms(self.now())
            existing = self._workflows.get(spec.id)
            create_time = existing.create_time if existing else now_ms
            self._workflows[spec.id] = _WorkflowRecord(stored, create_time, now_ms)
            if spec.type != "cron":
                self._trigger_status[spec.id] = ""
            elif existing is None or existing.spec.type != "cron":
                self._trigger_status[spec.id] = "enable"
            self.save()

    def workflows(self) -> list[WorkflowSpec]:
        with self._lock:
            return [copy.deepcopy(record.spec) for record in self._workflows.values()]

    def expire_tokens(self) -> None:
        """Treat every token issued so far as expired (static tokens are not affected)."""
        with self._lock:
            now = self.now()
            for record in self._tokens.values():
                record.expire(now)
            self.save()

    def reset(self) -> None:
        """Forget executions, faults and the request log; triggers and the seeded history back as started.

        Workflows and tokens stay.
        """
        with self._lock:
            for name, value in self._initial_config.items():
                setattr(self.config, name, value)
            self._executions.clear()
            self._last_execution.clear()
            self._faults.clear()
            self._log.clear()
            for workflow_id, record in self._workflows.items():
                self._trigger_status[workflow_id] = "enable" if record.spec.type == "cron" else ""
            self.save()

    # -- used by the HTTP server ------------------------------------------

    def take_fault(self, method: str, path: str, has_token: bool) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            now = self.now()
            for fault in list(self._faults):
                if fault.until is not None and now >= fault.until:
                    self._faults.remove(fault)
                    continue
                if not fault.matches(method, path, has_token):
                    continue
                if fault.kind == "storm":
                    # A storm answers a seeded share of the calls; the others go on as if it were not there.
                    if fault.rng.random() >= fault.share:
                        continue
                    status = fault.status or fault.rng.choice(STORM_STATUSES)
                    self._consume(fault)
                    return replace(fault, status=status)
                self._consume(fault)
                return fault
        return None

    def _consume(self, fault: Fault) -> None:
        """One use of ``fault`` (call with the lock held); an endless one (``remaining`` -1) stays."""
        if fault.remaining == ENDLESS:
            return
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.remove(fault)

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def issue_token(self) -> tuple[str, TokenRecord]:
        """A fresh opaque ``MII…`` token, valid for ``config.token_ttl`` seconds."""
        # Real tokens are several KB; a few hundred characters keep the shape
        # (long, opaque, URL-safe) without bloating every request.
        token = "MII" + secrets.token_urlsafe(300)
        with self._lock:
            now = self.now()
            record = TokenRecord(issued_at=now, expires_at=now + self.config.token_ttl)
            self._tokens[token] = record
            self.save()
            return token, copy.copy(record)

    def token_info(self, token: str) -> tuple[str, TokenRecord] | None:
        """The auth method and a copy of the record of a valid token; None when unknown or expired.

        A static token was never issued: it reports method ``token``, issued now
        and valid for ``config.token_ttl`` seconds (it never really expires).
        """
        if any(same_secret(token, static) for static in self.config.static_tokens):
            now = self.now()
            return "token", TokenRecord(issued_at=now, expires_at=now + self.config.token_ttl)
        with self._lock:
            record = self._tokens.get(token)
            if record is None or self.now() >= record.expires_at:
                return None
            return "password", copy.copy(record)

    def token_status(self, token: str) -> tuple[str, float | None]:
        """``("valid", None)``, ``("expired", expires_at)`` or ``("unknown", None)``."""
        if any(same_secret(token, static) for static in self.config.static_tokens):
            return "valid", None
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                return "unknown", None
            if self.now() >= record.expires_at:
                return "expired", record.expires_at
            return "valid", None

    def expire_token(self, token: str) -> float:
        """Mark one token expired now; returns the expiry time to report."""
        with self._lock:
            now = self.now()
            record = self._tokens.get(token)
            if record is None:
                return now
            expiry = record.expire(now)
            self.save()
            return expiry

    def _workflow(self, workflow_id: str) -> tuple[WorkflowSpec, int] | None:
        """The spec and edit time of a registered or implicit workflow (call with the lock held)."""
        record = self._workflows.get(workflow_id)
        if record is not None:
            return record.spec, record.update_time
        spec = pattern_workflow(workflow_id) if self.config.pattern_workflows else None
        # Implicit workflows were "edited" when the emulator started.
        return None if spec is None else (spec, epoch_ms(self.started_at))

    def has_workflow(self, workflow_id: str) -> bool:
        with self._lock:
            return self._workflow(workflow_id) is not None

    def create_execution(self, workflow_id: str, created_by: str, started_ago: float = 0.0) -> str | None:
        """Start an execution on behalf of ``created_by``; None when the workflow does not exist.

        ``started_ago`` shifts the whole run back: it began that many seconds ago
        (and has progressed accordingly). Tests use it, with another
        ``created_by``, for executions someone else started.
        """
        if not isinstance(workflow_id, str):
            raise ValueError("workflow_id must be a string")
        if not isinstance(created_by, str) or not created_by:
            raise ValueError("created_by must be a non-empty string")
        if (
            isinstance(started_ago, bool)
            or not isinstance(started_ago, (int, float))
            or not math.isfinite(started_ago)
            or started_ago < 0
        ):
            raise ValueError("started_ago must be a non-negative number of seconds")
        with self._lock:
            found = self._workflow(workflow_id)
            if found is None:
                return None
            spec, edit_time = found
            begin = self.now() - started_ago
            execution = Execution.create(spec, edit_time, created_by, begin)
            self._executions[execution.execution_id] = execution
            last = self._last_execution.get(execution.workflow_id)
            # A run backdated before the current last one does not replace it.
            if last is None or begin >= last.created_at:
                self._last_execution[execution.workflow_id] = execution
            self.save()
            return execution.execution_id

    def _find(self, workflow_id: str, execution_id: str) -> Execution | None:
        """The execution with this id if it belongs to this workflow (call with the lock held)."""
        execution = self._executions.get(execution_id)
        if execution is None or execution.workflow_id != workflow_id:
            return None
        return execution

    def execution_detail(self, workflow_id: str, execution_id: str) -> JsonDict | None:
        with self._lock:
            execution = self._find(workflow_id, execution_id)
            if execution is not None:
                return execution.detail(self.now(), self.config.project_id)
            seeded = self._seeded(workflow_id, execution_id)
        # Rebuilt outside the lock: a seeded row never changes.
        return None if seeded is None else seeded[0].detail(seeded[1])

    def list_executions(self, workflow_id: str) -> list[JsonDict]:
        """Briefs of the workflow's executions, newest (by begin time) first.

        Real executions only: the execution list answer puts them after the seeded history (:meth:`history`).
        """
        with self._lock:
            now = self.now()
            pid = self.config.project_id
            # Latest-created first, then a stable sort by begin time: only
            # backdated executions (create_execution's started_ago) move.
            ordered = sorted(
                (
                    execution
                    for execution in reversed(self._executions.values())
                    if execution.workflow_id == workflow_id
                ),
                key=lambda execution: execution.created_at,
                reverse=True,
            )
            return [execution.brief(now, pid) for execution in ordered]

    def terminate(self, workflow_id: str, execution_id: str) -> str:
        """``"cancelled"``, ``"finished"`` (already terminal) or ``"missing"``."""
        with self._lock:
            execution = self._find(workflow_id, execution_id)
            if execution is None:
                # A seeded execution ended long ago.
                return "missing" if self._seeded(workflow_id, execution_id) is None else "finished"
            now = self.now()
            if execution.status_at(now) in TERMINAL_STATUSES:
                return "finished"
            execution.cancelled_at = now
            self.save()
            return "cancelled"

    def operate(self, workflow_id: str, execution_id: str, action: str, node_id: str) -> tuple[str, str]:
        """Apply a node operation (§1.5) now.

        Returns ``("accepted", "")``, ``("missing", "")`` for an unknown
        execution, or ``("refused", message)`` when the action does not fit the
        execution's state; the message names the action, the node and both states.
        """
        if action not in OPERATION_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(OPERATION_ACTIONS)}")
        with self._lock:
            execution = self._find(workflow_id, execution_id)
            if execution is None:
                seeded = self._seeded(workflow_id, execution_id)
                if seeded is None:
                    return "missing", ""
                return "refused", _seeded_refusal(seeded[0].detail(seeded[1]), action, node_id)
            refusal = execution.operate(action, node_id, self.now())
            if refusal is not None:
                return "refused", refusal
            self.save()
            return "accepted", ""

    def set_trigger(self, workflow_id: str, action: str) -> str:
        """Enable or disable a workflow's trigger (§1.8).

        Returns ``"ok"``, ``"missing"`` (no such workflow) or ``"no_trigger"``
        (a workflow without a schedule: any type but ``cron``).
        """
        if action not in TRIGGER_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(TRIGGER_ACTIONS)}")
        with self._lock:
            found = self._workflow(workflow_id)
            if found is None:
                return "missing"
            if found[0].type != "cron":
                return "no_trigger"
            self._trigger_status[workflow_id] = action
            self.save()
            return "ok"

    def list_workflows(self, query: WorkflowQuery) -> tuple[list[JsonDict], int]:
        """One page of ``Workflow`` objects matching the query, and the total match count."""
        with self._lock:
            now = self.now()
            elements = [self._workflow_dict(record, now) for record in self._workflows.values()]
        matched = [element for element in elements if _workflow_matches(element, query)]
        if query.sort_field is not None:
            sort_key = query.sort_field
            matched.sort(key=lambda element: int(element[sort_key]), reverse=query.sort_type == "DESC")
        start = (query.page - 1) * query.size
        return matched[start : start + query.size], len(matched)

    def _workflow_dict(self, record: _WorkflowRecord, now: float) -> JsonDict:
        spec = record.spec
        last = self._last_execution.get(spec.id)
        user = self.config.iam_user
        if last is not None:
            last_detail: JsonDict | None = last.brief(now, self.config.project_id)
        else:
            # Without a real execution, the newest seeded one is the last.
            history = self._history(spec.id)
            last_detail = None if history is None else history.brief(0)
        return {
            "id": spec.id,
            "workflow_id": spec.id,
            "name": spec.name,
            "type": spec.type,
            "description": f"Emulated workflow: {spec.outcome} after {spec.duration:g} s",
            "tags": {},
            "create_time": record.create_time,
            "create_by": user,
            "update_time": record.update_time,
            "update_by": user,
            "template_name": "",
            "template_id": "",
            "input": {},
            "last_execution_id": last_detail["execution_id"] if last_detail else "",
            "status": last_detail["status"] if last_detail else "",
            "citation_urns": [],
            "last_execution_end_time": last_detail["end_time"] if last_detail else 0,
            "last_execution_start_time": last_detail["begin_time"] if last_detail else 0,
            "quote": [],
            "job_name": "",
            "job_id": "",
            "service_scenario": "",
            "service_name": "",
            "task_type": "script",
            "project_id": self.config.project_id,
            "task_status": "",
            "nodes": [],
            "edit_time": record.update_time,
            "execution_action_rules": [],
            "execution_permission": [],
            "global_parameters": [],
            "is_delete": False,
            "steps": [],
            "output": "",
            "trigger_id": uuid.uuid5(_TRIGGER_NAMESPACE, spec.id).hex if spec.type == "cron" else "",
            "trigger_status": self._trigger_status.get(spec.id, ""),
            "approve_id": "",
            "template_i18n": {"en-us": {}, "zh-cn": {}},
            "enterprise_project_id": "0",
            "last_execute_by": last_detail["created_by"] if last_detail else "",
        }


def validate_clock_skew(value: object) -> None:
    """ValueError unless ``value`` is a finite number of seconds (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("clock_skew must be a finite number of seconds")


def _execution_from_dict(item: JsonDict) -> Execution:
    """An :class:`Execution` from its ``asdict`` form (a state file)."""
    data = dict(item)
    data["plan"] = tuple(_Step(**step) for step in data["plan"])
    data["operations"] = [Operation(**operation) for operation in data["operations"]]
    return Execution(**data)


def _seeded_refusal(detail: JsonDict, action: str, node_id: str) -> str:
    """Why ``action`` on ``node_id`` of an ended seeded execution is refused, in :meth:`Execution.operate`'s words."""
    shown = {node["node_id"]: node["status"] for node in detail["execution_result_list"]}
    node_state = f"is {shown[node_id]}" if node_id in shown else "does not exist"
    return f"action {action} refused: node {node_id} {node_state}, execution is {detail['status']}"


def _fault_size(kind: str, size: int | None) -> int:
    """``size`` validated for ``kind``, or the kind's default when not given."""
    if size is None:
        return {"huge": DEFAULT_HUGE_SIZE, "gzip_bomb": DEFAULT_GZIP_BOMB_SIZE}.get(kind, 0)
    if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != ENDLESS):
        raise ValueError("size must be a positive number of bytes (or -1: endless, huge only)")
    if size == ENDLESS and kind != "huge":
        raise ValueError("only a huge fault can be endless (size -1)")
    return size


def _json_object(value: object, name: str) -> JsonDict:
    """A deep copy of ``value`` if it is a JSON-serialisable dict (NaN and Infinity allowed)."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{name} must be a JSON object")
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be serialisable as JSON: {exc}") from None
    return copy.deepcopy(value)


def _workflow_matches(element: JsonDict, query: WorkflowQuery) -> bool:
    if query.search is not None:
        needle = query.search.lower()
        if needle not in element["name"].lower() and needle not in element["description"].lower():
            return False
    if query.type is not None and element["type"] != query.type:
        return False
    if query.status is not None and element["status"] != query.status:
        return False
    if any(element["tags"].get(key) != value for key, value in query.tags.items()):
        return False
    # "all_granted_eps" is IAM's "every enterprise project I may see".
    if query.enterprise_project_id not in (None, "all_granted_eps") and (
        element["enterprise_project_id"] != query.enterprise_project_id
    ):
        return False
    if query.create_by is not None and element["create_by"] != query.create_by:
        return False
    if query.search_time_start is not None and element["create_time"] < query.search_time_start:
        return False
    return query.search_time_end is None or element["create_time"] <= query.search_time_end
