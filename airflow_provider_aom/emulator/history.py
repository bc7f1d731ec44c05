"""Seeded execution histories: old, ended executions generated from their index, never held.

``EmulatorConfig.history`` (CLI ``--history``) gives every workflow that many
executions that ended before the emulator started, ``history_nodes`` node
results each. Row ``index`` 0 is the newest: it began
:data:`NEWEST_AGE` seconds before the emulator started, and each older one
:data:`SPACING` seconds earlier. Everything in a row derives from the workflow
id and the index (a BLAKE2b digest of both), so a row is rebuilt identically
whenever it is needed: the execution list streams the rows one by one, an
execution detail rebuilds the one it is asked for, and nothing but a few
templates per workflow is ever held.

A row is a ``WorkflowExecutionBrief`` (§1.3): ``execution_id``
``h-<12 hex of the workflow id's digest>-<index>`` (which no uuid4 of a real
execution can be), status ``success`` for most, ``fail`` (the last node failed)
for some and ``cancel`` (terminated during the last node) for a few,
``created_by`` the configured IAM user for most and :data:`OTHER_USERS` for the
others, exactly ``history_nodes`` node results ``node_1``..``node_K``, the
whole run lasting at most :data:`RUN_BUDGET_MS` milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

MAX_HISTORY = 1_000_000
MAX_HISTORY_NODES = 200
#: Seconds between the begin times of two consecutive seeded executions.
SPACING = 300
#: Seconds between the newest seeded execution's begin and the emulator's start.
NEWEST_AGE = 3600
#: The longest a seeded execution runs (all its nodes), in milliseconds.
RUN_BUDGET_MS = 240_000
#: Who started the seeded executions the configured IAM user did not start.
OTHER_USERS = ("ops-oncall", "release-bot")
ID_PREFIX = "h-"
_ID_PATTERN = re.compile(r"h-([0-9a-f]{12})-(0|[1-9][0-9]{0,6})")
# Node duration profiles per workflow: each row takes one, chosen by its digest.
_PROFILES = 8
_SUCCESS_OUTPUT = '{"code": 0, "message": "%s finished successfully"}'
_FAIL_OUTPUT = (
    '{"code": 1, "message": "%s failed: script exited with code 1", "error_msg": "script exited with code 1"}'
)
_CANCEL_OUTPUT = '{"message": "execution terminated by user"}'

JsonDict = dict[str, Any]


def validate_history(history: object, history_nodes: object) -> None:
    """Raise ValueError unless ``history`` is 0..MAX_HISTORY and ``history_nodes`` 1..MAX_HISTORY_NODES."""
    if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= MAX_HISTORY:
        raise ValueError(f"history must be an integer from 0 to {MAX_HISTORY}")
    if (
        isinstance(history_nodes, bool)
        or not isinstance(history_nodes, int)
        or not 1 <= history_nodes <= MAX_HISTORY_NODES
    ):
        raise ValueError(f"history_nodes must be an integer from 1 to {MAX_HISTORY_NODES}")


def _literal(value: Any) -> str:
    """``value`` as JSON text, safe inside a %-format template."""
    return json.dumps(value).replace("%", "%%")


class History:
    """The seeded executions of one workflow as of one configuration (cheap to build, holds no row)."""

    def __init__(
        self,
        *,
        workflow_id: str,
        count: int,
        nodes: int,
        started_at: float,
        iam_user: str,
        project_id: str,
        edit_time: int,
        approvers: Sequence[str] = (),
    ) -> None:
        validate_history(count, nodes)
        self.workflow_id = workflow_id
        self.count = count
        self.nodes = nodes
        #: ``begin_time`` (epoch ms) of row 0, the newest.
        self.newest_begin = int((started_at - NEWEST_AGE) * 1000)
        self._digest = hashlib.blake2b(workflow_id.encode("utf-8"), digest_size=32, person=b"aom-history")
        self.tag = hashlib.blake2b(workflow_id.encode("utf-8"), digest_size=6, person=b"aom-history-id").hexdigest()
        self._users = tuple(json.dumps(user) for user in (iam_user, *OTHER_USERS))
        step = RUN_BUDGET_MS // nodes
        seed = hashlib.blake2b(workflow_id.encode("utf-8"), digest_size=64, person=b"aom-history-t").digest()
        # _offsets[profile]: (begin, end) of each node, milliseconds after the execution's begin.
        self._offsets: list[list[tuple[int, int]]] = []
        for profile in range(_PROFILES):
            offsets, moment = [], 0
            for node in range(nodes):
                jitter = seed[(profile * 7 + node) % len(seed)] ^ (node * 37 & 0xFF)
                duration = step // 2 + jitter * (step // 2) // 256
                offsets.append((moment, moment + duration))
                moment += duration
            self._offsets.append(offsets)
        head = (
            f'{{"workflow_id": {_literal(workflow_id)}, "execution_id": "{ID_PREFIX}{self.tag}-%d", '
            '"status": "%s", "begin_time": %d, "end_time": %d, "last_update_time": %d, "execution_result_list": ['
        )
        tail = (
            f'], "approve_user_name_list": {_literal(list(approvers))}, "project_id": {_literal(project_id)}, '
            f'"workflow_edit_time": {int(edit_time)}, "last_record_id_with_snapshot": "%s", "created_by": %s}}'
        )
        node_template = (
            '{"node_id": "%s", "begin_time": %%d, "end_time": %%d, "function_execution_id": "%%s%08x", '
            '"output": %s, "status": "%s"}'
        )
        names = [f"node_{node + 1}" for node in range(nodes)]
        succeeded = [node_template % (name, node, _SUCCESS_OUTPUT % name, "success") for node, name in enumerate(names)]
        last = nodes - 1
        # The template of a whole row, per final status: only its times, ids and creator vary.
        self._templates = {
            "success": head + ", ".join(succeeded) + tail,
            "fail": head
            + ", ".join([*succeeded[:last], node_template % (names[last], last, _FAIL_OUTPUT % names[last], "fail")])
            + tail,
            "cancel": head
            + ", ".join([*succeeded[:last], node_template % (names[last], last, _CANCEL_OUTPUT, "cancel")])
            + tail,
        }

    def execution_id(self, index: int) -> str:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return f"{ID_PREFIX}{self.tag}-{index}"

    def index_of(self, execution_id: str) -> int | None:
        """The row index a seeded execution id of this workflow names, or None."""
        match = _ID_PATTERN.fullmatch(execution_id)
        if match is None or match.group(1) != self.tag:
            return None
        index = int(match.group(2))
        return index if index < self.count else None

    def encode(self, index: int) -> bytes:
        """Row ``index`` as the JSON text of its ``WorkflowExecutionBrief``."""
        digest = self._digest.copy()
        digest.update(index.to_bytes(4, "big"))
        seed = digest.digest()
        draw = seed[28]
        status = "cancel" if draw < 8 else "fail" if draw < 28 else "success"
        user = seed[29]
        created_by = self._users[1 + user % len(OTHER_USERS)] if user < 40 else self._users[0]
        offsets = self._offsets[seed[30] % _PROFILES]
        begin = self.newest_begin - index * SPACING * 1000
        end = begin + offsets[-1][1]
        prefix = seed[16:28].hex()
        values: list[Any] = [index, status, begin, end, end]
        for node_begin, node_end in offsets:
            values += (begin + node_begin, begin + node_end, prefix)
        values += (seed[:16].hex(), created_by)
        return (self._templates[status] % tuple(values)).encode("utf-8")

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The encoded rows ``start`` to ``stop`` (default: all), newest first."""
        for index in range(start, self.count if stop is None else min(stop, self.count)):
            yield self.encode(index)

    def brief(self, index: int) -> JsonDict:
        brief: JsonDict = json.loads(self.encode(index))
        return brief

    def detail(self, index: int) -> JsonDict:
        """The ``SearchWorkflowExecutionDetail`` body (§1.2) of row ``index``: its brief without ``created_by``."""
        detail = self.brief(index)
        del detail["created_by"]
        return detail
