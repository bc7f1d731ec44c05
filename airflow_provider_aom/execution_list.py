"""AOM's execution list, read as it streams in and normalized once for every caller (no I/O).

The list (``GET .../executions``) has no paging: it answers a workflow's whole history as one
JSON array, each row carrying up to 200 node results. A workflow run every five minutes has
about 100,000 rows after a year, hundreds of megabytes. So the list is never held: the
transport hands each decoded piece of the body to an :class:`ExecutionListReader`, which
parses rows as they complete (``ijson`` on its C backend), keeps only the fields callers use
(:class:`ExecutionBrief`: ids, status, the three times, ``created_by``; never node results)
and only the rows a caller asked for (``keep``), and forgets the rest at once.

The same reader is the one normalizer of list answers: rows are de-duplicated by
``execution_id`` (the row with the latest time wins), invalid rows are dropped and counted
(one escaped warning per read), and nothing depends on the order of rows.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import coroutine
from typing import Any

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomInvalidResponseError
from airflow_provider_aom.execution import MAX_STATUS_LENGTH
from airflow_provider_aom.vocabulary import MAX_EPOCH_MS, is_epoch_ms, is_valid_id

log = logging.getLogger(__name__)

#: Longest ``created_by`` kept (the API documents 1-32 characters).
MAX_CREATED_BY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class ExecutionBrief:
    """One row of the execution list, with only what the provider uses. Times are epoch ms, None when absent."""

    execution_id: str
    status: str
    workflow_id: str | None = None
    begin_time: int | None = None
    end_time: int | None = None
    last_update_time: int | None = None
    created_by: str | None = None

    @property
    def latest(self) -> int:
        """The row's latest time (epoch ms; 0 when it has none): which of two rows of one execution is newer."""
        return max(self.begin_time or 0, self.end_time or 0, self.last_update_time or 0)

    @property
    def reached_at(self) -> int:
        """When the execution reached its current status: its end, else its last update (0 when unknown)."""
        return self.end_time or self.last_update_time or 0

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON (the fields AOM sent, by their API names)."""
        return {name: getattr(self, name) for name in _FIELDS if getattr(self, name) is not None}


def epoch_ms(value: Any) -> int | None:
    """Epoch ms from a number, or from the ``yyyy-MM-ddTHH:mm:ssZ`` text AOM's page documents for some times."""
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return None
        value = int(moment.timestamp() * 1000) if moment.tzinfo is not None else None
    return value if is_epoch_ms(value) else None


_FIELDS = ("workflow_id", "execution_id", "status", "begin_time", "end_time", "last_update_time", "created_by")
_TIMES = ("begin_time", "end_time", "last_update_time")


def brief(row: Any) -> ExecutionBrief | str:
    """The row as an :class:`ExecutionBrief`, or why it is not one (a row without a valid id or status).

    An optional field of the wrong type is dropped, not the row: the row still names an execution.
    Run on every row of a list of 100,000: strings that repeat (status, workflow, creator) are
    checked once each.
    """
    if not isinstance(row, Mapping):
        return f"a row that is {type(row).__name__}, not an object"
    execution_id = row.get("execution_id")
    if not isinstance(execution_id, str) or not is_valid_id(execution_id):
        return "a row without a valid execution_id"
    status = _repeated(row.get("status"), _is_status)
    if status is None:
        return f"execution {escape(execution_id, 64)} without a valid status"
    get = row.get
    return ExecutionBrief(
        execution_id,
        status,
        _repeated(get("workflow_id"), is_valid_id),
        _time(get("begin_time")),
        _time(get("end_time")),
        _time(get("last_update_time")),
        _repeated(get("created_by"), _is_created_by),
    )


def _time(value: Any) -> int | None:
    if type(value) is int and 0 <= value <= MAX_EPOCH_MS:  # the common case, without the calls of epoch_ms
        return value
    return None if value is None else epoch_ms(value)


def _is_status(value: str) -> bool:
    return bool(value.strip()) and len(value) <= MAX_STATUS_LENGTH


def _is_created_by(value: str) -> bool:
    return 0 < len(value) <= MAX_CREATED_BY_LENGTH


#: Strings that repeat on every row, checked once and kept as one object each.
_CHECKED: dict[tuple[str, Callable[[str], bool]], str | None] = {}


def _repeated(value: Any, check: Callable[[str], bool]) -> str | None:
    if not isinstance(value, str):
        return None
    key = (value, check)
    try:
        return _CHECKED[key]
    except KeyError:
        pass
    if len(_CHECKED) > 10_000:  # statuses and user names are few; a hostile list must not grow this
        _CHECKED.clear()
    _CHECKED[key] = checked = value if check(value) else None
    return checked


#: A caller's choice of rows, decided on each row as it is read.
Keep = Callable[[ExecutionBrief], bool]


def since(floor_ms: int) -> Keep:
    """Rows whose latest time is after ``floor_ms``: with this choice de-duplication is exact."""
    return lambda row: row.latest > floor_ms


@dataclass(frozen=True)
class ExecutionList:
    """A list answer as the provider uses it: the chosen rows, one per execution, and what was read."""

    executions: tuple[ExecutionBrief, ...]
    #: Rows in the answer, valid or not.
    rows: int = 0
    #: Rows dropped as invalid.
    invalid: int = 0
    #: AOM's clock minus ours (seconds) from the answer's ``Date`` header; None without one.
    clock_offset: float | None = None

    def __iter__(self) -> Iterator[ExecutionBrief]:
        return iter(self.executions)

    def __len__(self) -> int:
        return len(self.executions)


#: Deepest nesting read. A row needs about six levels; ijson keeps a path string per open level, so its
#: memory grows with the square of the depth (100,000 open brackets took 23 GB): past this, the list is refused.
MAX_DEPTH = 512
_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_LEVEL = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class _DepthGuard:
    """Follows how deep the JSON is nested, at C speed, before ijson sees the bytes.

    Not a parser: it drops escapes, then everything but quotes and brackets, then whole strings,
    and counts the brackets left (what spans two pieces is carried to the next).
    """

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.carry = b""

    def check(self, data: bytes) -> bool:
        """Account for ``data``; False once the nesting passed :data:`MAX_DEPTH`."""
        data = self.carry + data
        self.carry = b""
        backslashes = len(data) - len(data.rstrip(b"\\"))
        if backslashes % 2:  # the last backslash escapes the next piece's first byte
            data, self.carry = data[:-1], b"\\"
        marks = _ESCAPED.sub(b"", data).translate(None, _NOT_STRUCTURE)
        if self.in_string:
            end = marks.find(b'"')
            if end < 0:
                return True
            marks, self.in_string = marks[end + 1 :], False
        # Two adjacent quotes hold no bracket between them, whichever of them opens: dropping them keeps the
        # pairing of the others (a cheap pass that leaves the regex only strings with brackets in them).
        marks = marks.replace(b'""', b"")
        if b'"' in marks:
            marks = _STRINGS.sub(b"", marks)
        quote = marks.find(b'"')
        if quote >= 0:  # a string that goes on in the next piece
            marks, self.in_string = marks[:quote], True
        opens = marks.count(b"[") + marks.count(b"{")
        if self.depth + opens > MAX_DEPTH:
            deepest = max(itertools.accumulate(map(_LEVEL.__getitem__, marks), initial=self.depth))
            if deepest > MAX_DEPTH:
                return False
        self.depth += 2 * opens - len(marks)
        return True


class _NeedData:
    """What the parser waits on when it has parsed every byte it was given (see :class:`ExecutionListReader`)."""


_NEED_DATA = _NeedData()


@coroutine
def _wait_for_data() -> Iterator[_NeedData]:
    yield _NEED_DATA


class ExecutionListReader:
    """Parses a list answer pushed to it piece by piece, keeping only the rows ``keep`` chooses.

    ijson's fast path (the C parser building each row in C) reads from a file, sync or async;
    its push interface passes every token through Python and costs about 2.5 times as much.
    So the reader is an async file that ijson reads, and :meth:`feed` drives ijson's async
    iterator by hand, without an event loop: it resumes the parser with the new bytes and runs
    it until it asks for more. Both hooks, sync and async, feed it the same way.

    De-duplication: a row replaces the kept row of the same execution when its time is later
    (or equal: the later row of the answer wins), even when ``keep`` would not choose it (then
    the execution is left out). When ``keep`` depends only on the row's latest time (:func:`since`)
    this is exact; otherwise a newer row of an execution read *before* the one chosen goes unseen,
    and callers confirm the execution by its detail.
    """

    def __init__(self, action: str, keep: Keep | None = None, *, request_id: str | None = None) -> None:
        import ijson  # here, not at import: DAG files import this package

        self.action = action
        self.keep = keep
        self.request_id = request_id
        self.rows = 0
        self.invalid = 0
        self.first_invalid = ""
        #: execution id -> its newest row so far, and whether ``keep`` chose it.
        self._kept: dict[str, tuple[ExecutionBrief, bool]] = {}
        self._started = False
        self._closed = False
        self._guard = _DepthGuard()
        self._pending: bytes | None = None
        self._ended = False
        self._iterator = ijson.items(self, "item", use_float=True).__aiter__()
        self._step: Any = None
        self._ijson_errors = (ijson.JSONError, ijson.IncompleteJSONError)
        self._resume()

    async def read(self, size: int) -> bytes:
        """The async-file side ijson reads from: the bytes given to :meth:`feed`, b"" at the end."""
        if size == 0:  # ijson asks once, to tell bytes from text
            return b""
        while self._pending is None:
            if self._closed:
                return b""
            await _wait_for_data()
        data, self._pending = self._pending, None
        return data

    def feed(self, data: bytes) -> None:
        """Parse ``data`` (decoded body bytes); rows completed by it are judged at once."""
        if data and not self._ended:
            if not self._started:
                data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as json.loads allows
                start = data.lstrip()[:1]
                if start and start != b"[":
                    self._ended = True
                    raise self._error("expected a JSON array of executions")
                self._started = bool(start)
            if not self._guard.check(data):
                self._ended = True
                raise self._error(f"the execution list is nested more than {MAX_DEPTH} levels deep")
            self._pending = bytes(data)
            self._resume()

    def close(self) -> ExecutionList:
        """The end of the body: the chosen rows. A body that is not one complete JSON array is an error."""
        if not self._ended:
            self._closed = True
            self._resume()
        if not self._ended:  # pragma: no cover - ijson always ends on b""
            raise self._error("the answer ended in the middle of the JSON array")
        if self.invalid:
            log.warning(
                "%s: %d of %d rows of the execution list were invalid and ignored (the first: %s).",
                self.action,
                self.invalid,
                self.rows,
                self.first_invalid,
            )
        chosen = tuple(row for row, keep in self._kept.values() if keep)
        return ExecutionList(chosen, rows=self.rows, invalid=self.invalid)

    def _resume(self) -> None:
        """Run the parser until it needs more bytes, judging every row it completes."""
        try:
            while True:
                if self._step is None:
                    self._step = self._iterator.__anext__().__await__()
                try:
                    if next(self._step) is _NEED_DATA:
                        return  # it has parsed every byte it was given
                    # anything else ijson yields is its own turn: drive on
                except StopIteration as done:
                    self._step = None
                    self._take(done.value)
        except StopAsyncIteration:
            self._ended = True
        except self._ijson_errors as exc:
            self._ended = True
            raise self._error(f"the execution list is not valid JSON ({escape(exc, 120)})") from None
        except RecursionError:
            self._ended = True
            raise self._error("the execution list is nested too deeply") from None

    def _take(self, row: Any) -> None:
        self.rows += 1
        found = brief(row)
        if isinstance(found, str):
            self.invalid += 1
            self.first_invalid = self.first_invalid or found
            return
        execution_id = found.execution_id
        kept = self._kept.get(execution_id)
        if kept is not None:
            if found.latest >= kept[0].latest:
                self._kept[execution_id] = (found, self.keep is None or self.keep(found))
        elif self.keep is None or self.keep(found):
            self._kept[execution_id] = (found, True)

    def _error(self, what: str) -> AomInvalidResponseError:
        return AomInvalidResponseError(
            f"{self.action}: unexpected answer, {what}", status=200, request_id=self.request_id
        )
