"""An execution detail as the provider uses it: validated field by field, storable, bounded, described.

AOM's answer is untrusted. :func:`parse_detail` keeps each documented field only when it has
its documented type (a wrong-typed optional field is dropped with one warning per process)
and refuses a detail without a usable ``status``. Everything kept is *storable*: JSON that
Airflow can put in XCom, trigger events and the metadata DB on both supported versions (no
NaN or infinity, nesting cut at :data:`MAX_DEPTH` levels). :func:`stored` gives the form that
goes to XCom and trigger events: AOM's epoch-millisecond times as ISO-8601 UTC strings, the
whole fitted into a byte budget. :func:`node_lines` and :func:`timing` describe it in a few
log lines, and :class:`StatusTracker` logs a wait's status changes.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import pendulum

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomInvalidResponseError
from airflow_provider_aom.vocabulary import SUCCEEDED_NODE_STATUSES, is_epoch_ms

log = logging.getLogger(__name__)

#: Deepest nesting kept in a node output. Airflow 3.3 refuses XCom nested ~255 deep (pydantic's
#: validation depth) and trigger kwargs double the depth of what they carry; 32 keeps well clear.
MAX_DEPTH = 32
#: Longest status kept (the API documents 1-32 characters).
MAX_STATUS_LENGTH = 64
#: Node result lines logged at the end of a wait; failing nodes are always among them.
MAX_NODE_LINES = 20

_STRING_FIELDS = ("workflow_id", "execution_id", "project_id", "last_record_id_with_snapshot", "created_by")
_TIME_FIELDS = ("begin_time", "end_time", "last_update_time", "workflow_edit_time")
_NODE_STRING_FIELDS = ("node_id", "status", "function_execution_id")
_NODE_TIME_FIELDS = ("begin_time", "end_time")
#: Fields kept when even the node list does not fit the budget.
_CORE_FIELDS = ("workflow_id", "execution_id", "status", *_TIME_FIELDS, "project_id", "created_by")

_warned: set[str] = set()


def _warn_once(what: str) -> None:
    # A poll every few seconds would repeat the same warning for the life of the wait.
    if what not in _warned:
        _warned.add(what)
        log.warning("AOM answered with %s; the field is ignored.", what)


def storable(value: Any, depth: int = 0) -> Any:
    """A copy of parsed JSON that Airflow can store: no non-finite number, nesting cut at :data:`MAX_DEPTH`."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            return f"<truncated: nested deeper than {MAX_DEPTH} levels>"
        if isinstance(value, dict):
            return {str(k): storable(v, depth + 1) for k, v in value.items()}
        return [storable(v, depth + 1) for v in value]
    return value


def _checked(
    value: Any, key: str, strings: tuple[str, ...], times: tuple[str, ...], what: str, depth: int
) -> tuple[bool, Any]:
    """``(keep, value)`` for one field: documented strings and times must have their type; the rest is made storable."""
    if key in strings:
        if isinstance(value, str):
            return True, value
        _warn_once(f"{what} {key} that is not a string")
        return False, None
    if key in times:
        if is_epoch_ms(value):
            return True, value
        _warn_once(f"{what} {key} that is not epoch milliseconds")
        return False, None
    return True, storable(value, depth)


def _parse_node(node: Mapping[str, Any]) -> dict[str, Any]:
    result = {}
    for key, value in node.items():
        keep, checked = _checked(value, key, _NODE_STRING_FIELDS, _NODE_TIME_FIELDS, "a node", 2)
        if keep:
            result[key] = checked
    return result


def parse_detail(payload: Any, *, action: str, status: int, request_id: str | None) -> dict[str, Any]:
    """The execution detail (``SearchWorkflowExecutionDetail``), each field checked against the reference.

    Raises :class:`AomInvalidResponseError` (retried by the hook) when there is no usable status.
    """
    if not isinstance(payload, dict):
        raise AomInvalidResponseError(
            f"{action}: unexpected answer, the execution detail is not an object", status=status, request_id=request_id
        )
    value = payload.get("status")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_STATUS_LENGTH:
        raise AomInvalidResponseError(
            f"{action}: unexpected answer, the execution detail's status is missing, empty, not a string or longer "
            f"than {MAX_STATUS_LENGTH} characters",
            status=status,
            request_id=request_id,
        )
    detail: dict[str, Any] = {}
    for key, item in payload.items():
        if key == "status":
            detail[key] = value.strip()
        elif key == "execution_result_list":
            if isinstance(item, list):
                nodes = [_parse_node(node) for node in item if isinstance(node, dict)]
                if len(nodes) != len(item):
                    _warn_once("node results that are not objects")
                detail[key] = nodes
            else:
                _warn_once("an execution_result_list that is not a list")
        elif key == "approve_user_name_list":
            if isinstance(item, list):
                names = [name for name in item if isinstance(name, str)]
                if len(names) != len(item):
                    _warn_once("approver names that are not strings")
                detail[key] = names
            else:
                _warn_once("an approve_user_name_list that is not a list")
        else:
            keep, checked = _checked(item, key, _STRING_FIELDS, _TIME_FIELDS, "an execution", 1)
            if keep:
                detail[key] = checked
    return detail


# --------------------------------------------------------------------------- bounding


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _failed(node: Mapping[str, Any]) -> bool:
    """Not succeeded and started: its output is kept first when the detail is cut (skipped nodes included)."""
    status = str(node.get("status", "")).lower()
    return status != "" and status not in SUCCEEDED_NODE_STATUSES


def moment(epoch_ms: Any) -> pendulum.DateTime | None:
    """An AOM time (epoch milliseconds, ``0`` for "not yet") as a timezone-aware UTC time."""
    if not is_epoch_ms(epoch_ms) or epoch_ms == 0:
        return None
    return pendulum.from_timestamp(epoch_ms / 1000, tz="UTC")


def _iso(epoch_ms: Any) -> str | None:
    when = moment(epoch_ms)
    return when.isoformat() if when is not None else None


def with_iso_times(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``detail`` with its times (and its nodes' times) as ISO-8601 UTC strings; ``0`` becomes ``null``."""
    result = {key: (_iso(value) if key in _TIME_FIELDS else value) for key, value in detail.items()}
    nodes = detail.get("execution_result_list")
    if isinstance(nodes, list):
        result["execution_result_list"] = [
            {key: (_iso(value) if key in _NODE_TIME_FIELDS else value) for key, value in node.items()}
            if isinstance(node, Mapping)
            else node
            for node in nodes
        ]
    return result


def stored(detail: Mapping[str, Any], max_bytes: int, console_url: str | None = None) -> dict[str, Any]:
    """The detail as XCom and trigger events carry it: ISO-8601 times, at most ``max_bytes`` of JSON."""
    return bounded(with_iso_times(detail), max_bytes, console_url)


def bounded(detail: Mapping[str, Any], max_bytes: int, console_url: str | None = None) -> dict[str, Any]:
    """``detail`` cut to at most ``max_bytes`` of JSON, saying what was cut and where to see it all.

    In order, until it fits: the largest node outputs become a marker; then node results are
    dropped (failing nodes are kept first); then every field but the ids, status and times.
    """
    result = dict(detail)
    if _size(result) <= max_bytes:
        return result
    see = {"see": console_url} if console_url else {}
    nodes = [dict(node) for node in result.get("execution_result_list") or []]
    if nodes:
        sizes = [(-_size(node.get("output")), index) for index, node in enumerate(nodes) if "output" in node]
        heapq.heapify(sizes)
        result["execution_result_list"] = nodes
        total = _size(result)
        while sizes and total > max_bytes:
            negative, index = heapq.heappop(sizes)
            marker = {"truncated": True, "bytes": -negative, **see}
            total += _size(marker) + negative
            nodes[index]["output"] = marker
        total = _size(result)
        if total > max_bytes:
            kept: list[dict[str, Any]] = []
            note = {"total": len(nodes), "kept": 0, **see}
            result["execution_result_list"] = kept
            result["execution_result_list_truncated"] = note
            budget = max_bytes - _size(result) - 16
            ordered = sorted(range(len(nodes)), key=lambda i: (not _failed(nodes[i]), i))
            chosen = []
            for index in ordered:
                cost = _size(nodes[index]) + 1
                if cost > budget:
                    continue
                budget -= cost
                chosen.append(index)
            kept.extend(nodes[i] for i in sorted(chosen))
            note["kept"] = len(kept)
    if _size(result) <= max_bytes:
        return result
    core = {key: result[key] for key in _CORE_FIELDS if key in result}
    core["truncated"] = {"reason": f"the detail exceeds {max_bytes} bytes", **see}
    if _size(core) <= max_bytes:
        return core
    return {"status": result.get("status"), "truncated": {"reason": f"the detail exceeds {max_bytes} bytes"}}


def node_outputs(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``{node_id: output}`` of a (stored) detail: what downstream tasks read from XCom ``node_outputs``."""
    return {
        node["node_id"]: node.get("output")
        for node in detail.get("execution_result_list") or []
        if isinstance(node, Mapping) and isinstance(node.get("node_id"), str)
    }


# --------------------------------------------------------------------------- describing


def failing_node(detail: Mapping[str, Any]) -> str | None:
    """The first node whose status is not a success, as ``node_id (status)`` (escaped)."""
    for node in detail.get("execution_result_list") or []:
        if isinstance(node, Mapping) and _failed(node):
            return f"{escape(node.get('node_id'), 64)} ({escape(node.get('status'), 32)})"
    return None


def node_lines(detail: Mapping[str, Any], limit: int = MAX_NODE_LINES) -> list[str]:
    """Log lines of the node results: failing nodes always, then the others, at most ``limit`` + 1 lines."""
    nodes = [node for node in detail.get("execution_result_list") or [] if isinstance(node, Mapping)]
    order = [node for node in nodes if _failed(node)] + [node for node in nodes if not _failed(node)]
    shown = order[: max(limit, sum(1 for node in nodes if _failed(node)))]
    lines = []
    for node in shown:
        output = node.get("output")
        text = f", output {escape(json.dumps(output, ensure_ascii=False), 300)}" if output else ""
        lines.append(f"node {escape(node.get('node_id'), 64)}: {escape(node.get('status'), 32)}{text}")
    if len(order) > len(shown):
        lines.append(f"... and {len(order) - len(shown)} more node(s); see the execution in the AOM console.")
    return lines


def timing(detail: Mapping[str, Any]) -> str | None:
    """When the execution ran, as a log line's end: ``began …, ended … (3 minutes 12 seconds)``."""
    began, ended = moment(detail.get("begin_time")), moment(detail.get("end_time"))
    if began is None:
        return None
    if ended is None or ended < began:
        return f"began {began.isoformat()}"
    return f"began {began.isoformat()}, ended {ended.isoformat()} ({(ended - began).in_words() or '0 seconds'})"


def approvers(detail: Mapping[str, Any]) -> str:
    names = detail.get("approve_user_name_list") or []
    return ", ".join(escape(n, 64) for n in names[:20]) if names else "no approvers listed"


def failure_message(workflow_id: str, execution_id: str, detail: Mapping[str, Any]) -> str:
    node = failing_node(detail)
    return (
        f"AOM workflow {escape(workflow_id, 64)} execution {escape(execution_id, 64)} ended with status "
        f"{escape(detail.get('status'), 32)}" + (f"; failing node: {node}." if node else ".")
    )
