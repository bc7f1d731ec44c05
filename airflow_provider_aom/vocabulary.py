"""The provider's vocabulary, in one place: statuses, node actions, auth types, limits and value rules.

Everything a DAG file, the hooks, the wait and the emulator name (an execution status, what a wait
does at a failed node, an auth type, a byte cap, the rule for an id) is defined here once and
imported everywhere else. It is what operators need to be *built* (DAG files import them at parse
time) and what the connection form is made of, so it imports nothing but the standard library.

AOM documents no enum for an execution's ``status`` (reference §2): it stays an open string,
and :class:`StatusRules` classifies it into an :class:`Outcome`. The defaults come from the
workflow-status filter of the workflow list, compared case-insensitively; anything neither a
success nor a failure is still running. A deferred wait ends with a trigger event whose
``status`` is a :class:`WaitEnd`. :class:`NodeAction` and :class:`OnNodeFailure` name what can be
done at a stopped node (:mod:`~airflow_provider_aom.node_ops` does it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_aom.exceptions import AomConfigurationError


def _configuration_error(message: str) -> AomConfigurationError:
    # Imported when raised: Airflow loads the provider's connection form (which uses this module) while
    # its own configuration is still being read, before the exceptions' Airflow base classes import.
    from airflow_provider_aom.exceptions import AomConfigurationError

    return AomConfigurationError(message)

# --------------------------------------------------------------------------- statuses

DEFAULT_SUCCESS_STATUSES = frozenset({"success"})
DEFAULT_FAILURE_STATUSES = frozenset({"fail", "cancel", "timeout", "approvalfailed"})
#: Running, but waiting for a human (approval, or a paused / failed node to restart or skip).
NEEDS_PERSON_STATUSES = frozenset({"waitapproval", "pausing"})
#: The status of an execution that runs (the usual one after a start). A wait deferred with it as the
#: last logged status logs only changes away from it: a trigger that moves to another triggerer (which
#: knows only its deferral arguments) does not log "executing" again.
EXECUTING_STATUS = "executing"


#: Node statuses that mean the node failed, and the one of a manual pause node (compared in lower case).
FAILED_NODE_STATUSES = frozenset({"fail", "failed"})
PAUSED_NODE_STATUS = "pausing"
#: Node statuses of a node that ran to its end without failing, and of one skipped (by a user or a skip
#: operation): neither has an output worth quoting in a failure message.
SUCCEEDED_NODE_STATUSES = frozenset({"success"})
SKIPPED_NODE_STATUSES = frozenset({"skip", "skipped"})
#: Node statuses of a node that has not ended ("" is a node not started yet).
OPEN_NODE_STATUSES = frozenset({"", "executing", "running", "pausing", "waitapproval"})
#: Execution statuses in which a node operation can apply: paused at a node, or ended by a failed node.
PAUSED_EXECUTION_STATUS = "pausing"
FAILED_EXECUTION_STATUS = "fail"

class Outcome(str, Enum):
    """What a polled status means for the wait."""

    SUCCESS = "success"
    FAILURE = "failure"
    RUNNING = "running"


class WaitEnd(str, Enum):
    """How a deferred wait ended: the ``status`` of the trigger's event."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    ERROR = "error"

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> WaitEnd | None:
        """The end an event reports; None for anything this version does not know."""
        try:
            return cls(event.get("status"))
        except ValueError:
            return None

    @property
    def outcome(self) -> Outcome | None:
        """The execution's outcome, for the ends that have one."""
        return {WaitEnd.SUCCESS: Outcome.SUCCESS, WaitEnd.FAILURE: Outcome.FAILURE}.get(self)


def normalize(statuses: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    if statuses is None:
        return default
    if isinstance(statuses, str):
        statuses = [statuses]
    return frozenset(s.strip().lower() for s in statuses)


class StatusRules:
    """Classify a status string as an :class:`Outcome`."""

    def __init__(self, success: Iterable[str] | None = None, failure: Iterable[str] | None = None) -> None:
        self.success = normalize(success, DEFAULT_SUCCESS_STATUSES)
        self.failure = normalize(failure, DEFAULT_FAILURE_STATUSES)
        overlap = self.success & self.failure
        if overlap:
            raise _configuration_error(
                f"success_statuses and failure_statuses share {sorted(overlap)}; a status can be only one."
            )

    def outcome(self, status: str) -> Outcome:
        key = status.lower()
        if key in self.success:
            return Outcome.SUCCESS
        if key in self.failure:
            return Outcome.FAILURE
        return Outcome.RUNNING

    @staticmethod
    def needs_person(status: str) -> bool:
        return status.lower() in NEEDS_PERSON_STATUSES


class NodeAction(str, Enum):
    """The node operations of reference §1.5."""

    RESTART = "restart"
    SKIP = "skip"
    CONTINUE = "continue"


class OnNodeFailure(str, Enum):
    """What a wait does when the execution pauses at a failed node."""

    FAIL = "fail"
    WAIT = "wait"
    RESTART = "restart"
    SKIP = "skip"


def on_node_failure(value: Any, allowed: tuple[OnNodeFailure, ...] = tuple(OnNodeFailure)) -> OnNodeFailure:
    """Validate an ``on_node_failure`` argument (ValueError: a DAG-file error, raised at parse time)."""
    try:
        policy = OnNodeFailure(value)
    except ValueError:
        policy = None
    if policy is None or policy not in allowed:
        raise ValueError(f"on_node_failure must be one of {', '.join(p.value for p in allowed)}, got {value!r}.")
    return policy

class AuthType(str, Enum):
    """How a connection authenticates (``extra.auth_type``; docs/connection.md)."""

    AKSK = "aksk"
    PASSWORD = "password"  # noqa: S105 - the name of an auth type, not a secret
    TOKEN = "token"  # noqa: S105


# --------------------------------------------------------------------------- limits

#: Default cap of a 2xx body, counted after decompression (``extra.max_response_bytes``). The largest
#: documented answer (an execution detail of 200 nodes) is far smaller; 16 MiB leaves room for bulky node
#: outputs while keeping a client's memory bounded.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: The largest ``extra.max_response_bytes`` a connection may set.
MAX_RESPONSE_BYTES_LIMIT = 256 * 1024 * 1024
#: Default cap of the execution list (``extra.max_list_bytes``). It streams and is never held, so the cap
#: bounds only how much is read: 1 GiB is about 400,000 executions of 20 nodes.
MAX_LIST_BYTES = 1024 * 1024 * 1024
#: The largest ``extra.max_list_bytes`` a connection may set.
MAX_LIST_BYTES_LIMIT = 64 * 1024 * 1024 * 1024
#: How much of an error body is read and kept for its message (AOM's ``error_msg`` is at most 1,024 characters).
ERROR_BODY_BYTES = 64 * 1024
#: Default seconds one HTTP exchange may take (``extra.timeout``).
DEFAULT_TIMEOUT = 30.0
#: The longest a time setting of a connection may be (``timeout``, ``retry_total``, ``submit_clock_skew``), seconds.
MAX_SETTING_SECONDS = 3600.0
#: Seconds a task whose deadline passed keeps trying to terminate its execution while AOM does not answer
#: (an outage: no answer, refused connections, 5xx, 429): it is terminated as soon as AOM answers again.
TERMINATE_PATIENCE_SECONDS = 300.0
#: Seconds: a poll that fails this close to a wait's deadline was cut by it, so the wait ends as a timeout.
DEADLINE_SLACK = 0.5

#: Default byte budget of an execution detail in XCom or in a trigger event.
DEFAULT_MAX_DETAIL_BYTES = 64 * 1024
#: Smallest budget a caller may ask for: the ids, status, times and a truncation note fit in it.
MIN_DETAIL_BYTES = 2 * 1024


def check_max_detail_bytes(value: Any) -> int:
    """Validate a ``max_detail_bytes`` argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_DETAIL_BYTES:
        raise ValueError(f"max_detail_bytes must be an integer of at least {MIN_DETAIL_BYTES} (bytes of JSON).")
    return value

# --------------------------------------------------------------------------- value rules

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PROJECT_ID_RE = re.compile(r"[A-Za-z0-9]{32}")


def check_id(name: str, value: Any, max_length: int = 64) -> str:
    """Check an id that becomes one path segment; values from templates are untrusted."""
    if not isinstance(value, str):
        raise _configuration_error(f"{name} must be a string, got {type(value).__name__}.")
    if not 1 <= len(value) <= max_length:
        raise _configuration_error(f"{name} must be 1 to {max_length} characters long, got {len(value)}.")
    if _CONTROL_RE.search(value):
        raise _configuration_error(f"{name} must not contain control characters.")
    if value.strip() != value:
        raise _configuration_error(f"{name} must not start or end with white space.")
    if value in (".", ".."):
        raise _configuration_error(f"{name} must not be {value!r}.")
    return value


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` passes :func:`check_id`: the rule for ids sent by the server too (submit, adoption).

    Checked on every row of an execution list, so without raising (the same rules, in the same order).
    """
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 64
        and not _CONTROL_RE.search(value)
        and value.strip() == value
        and value not in (".", "..")
    )


def is_project_id(value: Any) -> bool:
    """Whether ``value`` is a project id as IAM issues it: 32 letters and digits."""
    return isinstance(value, str) and _PROJECT_ID_RE.fullmatch(value) is not None


def check_project_id(value: Any) -> str:
    if not is_project_id(value):
        raise _configuration_error(
            "project_id must be the 32-character project id from IAM (letters and digits only)."
        )
    assert isinstance(value, str)
    return value


#: The latest time the API allows (its documented range of longs, epoch ms).
MAX_EPOCH_MS = 9_999_999_999_999


def is_epoch_ms(value: Any) -> bool:
    """Whether ``value`` is a time as AOM sends it: whole epoch milliseconds within the API's range."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCH_MS


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot travel in an HTTP header (it must be one line of latin-1), or None when it can.

    A control character (a credential pasted with its newline) would split the header; a character
    outside latin-1 would fail mid-send. Callers name the field or header, never the value.
    """
    if _CONTROL_RE.search(value):
        return "a control character (a line break or similar, e.g. pasted from a file)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "a character outside latin-1"
    return None
