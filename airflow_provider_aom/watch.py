"""Which executions a watch reports, and the watermark that keeps it from reporting one twice (no I/O).

A watch (:class:`~airflow_provider_aom.triggers.aom.AomWorkflowExecutionEventTrigger`) reads a
workflow's execution list every poll. :class:`Watermark` decides which executions to report: those
that reached one of the watched statuses *after the watch began* (on AOM's clock, from the list
answer's ``Date`` header), each exactly once. It is plain JSON, so the trigger can keep it in
Airflow's asset state store and a restarted trigger carries on without replaying old executions.

The moment an execution reached its status is its ``end_time`` when it ended, else its
``last_update_time`` (a status such as ``pausing`` is reached without ending). Executions reported
in the last :data:`REMEMBER_SECONDS` are remembered by id, so one that shows up late in the list,
or twice, is still reported once; older ones are covered by the watermark alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_aom.api import is_valid_id

#: How long reported executions are remembered by id (beyond that the watermark alone decides).
REMEMBER_SECONDS = 3600
#: Most ids remembered (the list has no paging, so one poll can hold a long history).
MAX_REMEMBERED = 5000
_TIME_LIMIT = 9_999_999_999_999


def _ms(value: Any) -> int:
    """Epoch ms from a number, or from the ``yyyy-MM-ddTHH:mm:ssZ`` text AOM's page documents for some times."""
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return 0
        value = int(moment.timestamp() * 1000) if moment.tzinfo is not None else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _TIME_LIMIT else 0


def reached_at(execution: Mapping[str, Any]) -> int:
    """When the execution reached its current status (epoch ms); 0 when the list does not say."""
    return _ms(execution.get("end_time")) or _ms(execution.get("last_update_time"))


@dataclass
class Watermark:
    """What a watch has reported: nothing that reached its status at or before ``since_ms``, and ``reported``."""

    since_ms: int
    #: execution id -> when it reached its status, for the executions reported recently.
    reported: dict[str, int] = field(default_factory=dict)

    @classmethod
    def begin(
        cls,
        clock_offset: float | None,
        executions: Iterable[Mapping[str, Any]] = (),
        statuses: frozenset[str] = frozenset(),
        now: float | None = None,
    ) -> Watermark:
        """A watch beginning now, on AOM's clock when the list answer said what time it is.

        ``Date`` counts whole seconds, so the watermark may lie up to a second before the true
        moment: the executions of this first list that had already reached a watched status are
        taken as reported, so none that ended before the watch began is ever reported.
        """
        moment = (time.time() if now is None else now) + (clock_offset or 0.0)
        watermark = cls(int(moment * 1000))
        watermark.new(executions, statuses)
        return watermark

    def to_json(self) -> dict[str, Any]:
        return {"since_ms": self.since_ms, "reported": dict(self.reported)}

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """A stored watermark, or None when the stored value is not one (then the watch begins anew)."""
        if not isinstance(value, Mapping) or not _ms(value.get("since_ms")):
            return None
        reported = value.get("reported")
        if not isinstance(reported, Mapping):
            return None
        return cls(value["since_ms"], {k: _ms(v) for k, v in reported.items() if is_valid_id(k) and _ms(v)})

    def new(self, executions: Iterable[Mapping[str, Any]], statuses: frozenset[str]) -> list[Mapping[str, Any]]:
        """The executions to report now, oldest first, and remember them."""
        found = []
        for execution in executions:
            execution_id, status = execution.get("execution_id"), execution.get("status")
            when = reached_at(execution)
            if (
                is_valid_id(execution_id)
                and isinstance(status, str)
                and status.lower() in statuses
                and when > self.since_ms
                and execution_id not in self.reported
            ):
                found.append((when, execution))
        found.sort(key=lambda pair: pair[0])
        for when, execution in found:
            self.reported[str(execution["execution_id"])] = when
        self._forget()
        return [execution for _, execution in found]

    def _forget(self) -> None:
        """Keep the memory bounded: ids older than REMEMBER_SECONDS are covered by moving ``since_ms`` up."""
        if not self.reported:
            return
        newest = max(self.reported.values())
        horizon = newest - REMEMBER_SECONDS * 1000
        if len(self.reported) > MAX_REMEMBERED:
            horizon = max(horizon, sorted(self.reported.values())[-MAX_REMEMBERED])
        if horizon > self.since_ms:
            self.since_ms = horizon
            self.reported = {k: v for k, v in self.reported.items() if v > horizon}
