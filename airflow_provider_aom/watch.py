"""Which executions a watch reports, and the watermark that keeps it from reporting one twice (no I/O).

A watch (:class:`~airflow_provider_aom.triggers.aom.AomWorkflowExecutionEventTrigger`) reads a
workflow's execution list every poll. :class:`Watermark` decides which executions to report: those
that reached one of the watched statuses *after the watch began* (on AOM's clock, from the list
answer's ``Date`` header), each at most once. It is plain JSON, so the trigger can keep it in
Airflow's asset state store and a restarted trigger carries on without replaying old executions.

The moment an execution reached its status is its ``end_time`` when it ended, else its
``last_update_time`` (a status such as ``pausing`` is reached without ending). Reported executions
are remembered by id for :data:`REMEMBER_SECONDS` (at most :data:`MAX_REMEMBERED` of them), so one
that shows up late in the list, twice in one answer, or flaps (ended, executing, ended again) is
still reported once; older ones are covered by the watermark alone. A time further in the future
than :data:`FUTURE_TOLERANCE_SECONDS` on AOM's clock is absurd: such a row is not reported and does
not move the watermark (it would otherwise hide every later execution).

Only rows newer than the watermark matter, so the list is read keeping just those
(:meth:`Watermark.keep`): a history of 100,000 executions costs the watch a few rows of memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aom.execution_list import ExecutionBrief, Keep, epoch_ms, since
from airflow_provider_aom.vocabulary import is_valid_id

#: How long reported executions are remembered by id (beyond that the watermark alone decides).
REMEMBER_SECONDS = 24 * 3600
#: Most ids remembered (the watermark is stored as JSON in the asset state store: about 60 bytes each).
MAX_REMEMBERED = 5000
#: How far past AOM's clock a time may lie and still be believed (AOM stamps its own rows).
FUTURE_TOLERANCE_SECONDS = 3600
#: A new watch keeps rows of the first list this recent (AOM's clock may differ from ours; rows older
#: than the watch's start never matter).
BEGIN_LOOKBACK_SECONDS = 86400


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
        executions: Iterable[ExecutionBrief] = (),
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
        watermark.new(executions, statuses, now_ms=watermark.since_ms)
        return watermark

    @staticmethod
    def first_keep(now: float | None = None) -> Keep:
        """The rows a new watch reads from its first list."""
        return since(int(((time.time() if now is None else now) - BEGIN_LOOKBACK_SECONDS) * 1000))

    def keep(self) -> Keep:
        """The rows of a list that can matter to this watch: those newer than the watermark."""
        return since(self.since_ms)

    def to_json(self) -> dict[str, Any]:
        return {"since_ms": self.since_ms, "reported": dict(self.reported)}

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """A stored watermark, or None when the stored value is not one (then the watch begins anew)."""
        if not isinstance(value, dict) or not epoch_ms(value.get("since_ms")):
            return None
        reported = value.get("reported")
        if not isinstance(reported, dict):
            return None
        watermark = cls(value["since_ms"], {k: v for k, v in reported.items() if is_valid_id(k) and epoch_ms(v)})
        watermark._forget()
        return watermark

    def new(
        self, executions: Iterable[ExecutionBrief], statuses: frozenset[str], now_ms: int | None = None
    ) -> list[ExecutionBrief]:
        """The executions to report now, oldest first, each once; remember them.

        ``now_ms`` is AOM's time (epoch ms): later times beyond the tolerance are not believed.
        """
        limit = (int(time.time() * 1000) if now_ms is None else now_ms) + FUTURE_TOLERANCE_SECONDS * 1000
        found: dict[str, tuple[int, ExecutionBrief]] = {}
        for execution in executions:
            when = execution.reached_at
            if (
                execution.status.lower() in statuses
                and self.since_ms < when <= limit
                and execution.execution_id not in self.reported
                and when >= found.get(execution.execution_id, (0, execution))[0]
            ):
                found[execution.execution_id] = (when, execution)
        ordered = sorted(found.values(), key=lambda pair: pair[0])
        for when, execution in ordered:
            self.reported[execution.execution_id] = when
        self._forget()
        return [execution for _, execution in ordered]

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
