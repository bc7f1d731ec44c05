"""The retry policy on its own (sans-IO): which failures are retried, and the schedule of pauses.

The hooks only sleep what :class:`~airflow_provider_aom.retry.RetrySchedule` returns; these tests drive it
with a fake monotonic clock (``retry.time``) and, where the exact value matters, a fake ``random.uniform``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aom import retry
from airflow_provider_aom.api import ApiRequest, error_from_response
from airflow_provider_aom.exceptions import (
    AomApiError,
    AomConfigurationError,
    AomError,
    AomInvalidResponseError,
    AomResponseTooLargeError,
    AomSlowResponseError,
    AomThrottledError,
    AomTransportError,
    error_for_status,
)
from airflow_provider_aom.retry import RetryPolicy, RetrySchedule, is_safe_to_resend, is_transient, may_have_happened
from airflow_provider_aom.wire import ApiResponse

REQUEST = ApiRequest("POST", "/v1/p/cms/workflow/wf/executions", "Execute AOM workflow 'wf'", idempotent=False)


# --------------------------------------------------------------------------- helpers


def api_error(status: int, retry_after: float | None = None) -> AomApiError:
    """The typed error the API layer raises for ``status``."""
    return error_for_status(status)(
        status=status, error_code="", error_msg="", request_id=None, action="test", retry_after=retry_after
    )


def sent(sent: bool) -> AomTransportError:
    return AomTransportError("connection reset", sent=sent)


def slow() -> AomSlowResponseError:
    return AomSlowResponseError("the answer trickled", sent=True)


def invalid() -> AomInvalidResponseError:
    return AomInvalidResponseError("not JSON", status=200, request_id=None)


def too_large() -> AomResponseTooLargeError:
    return AomResponseTooLargeError("over the cap", status=200, request_id=None)


def before_send(exc: AomError) -> AomError:
    """``exc`` as the hook marks a failure to get the IAM token for a request (which never left)."""
    exc.before_send = True
    return exc


class Clock:
    """A ``time.monotonic`` that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(retry, "time", SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
def uniform_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[float, float]]]:
    """Jitter always picks the top of its range; the ranges asked for are recorded."""
    calls: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        calls.append((a, b))
        return b

    monkeypatch.setattr(retry, "random", SimpleNamespace(uniform=uniform))
    yield calls


def pauses(schedule: RetrySchedule, exc: BaseException, count: int) -> list[float | None]:
    return [schedule.pause_after(exc) for _ in range(count)]


# --------------------------------------------------------------------------- which failures are retried


RETRIED_IF_IDEMPOTENT: list[tuple[str, Callable[[], BaseException]]] = [
    ("transport error, nothing sent", lambda: sent(False)),
    ("transport error after sending", lambda: sent(True)),
    ("429", lambda: api_error(429)),
    ("429 with Retry-After", lambda: api_error(429, retry_after=3.0)),
    ("500", lambda: api_error(500)),
    ("502", lambda: api_error(502)),
    ("503", lambda: api_error(503)),
    ("504", lambda: api_error(504)),
    ("2xx with an undocumented body", invalid),
]

NEVER_RETRIED_IF_IDEMPOTENT: list[tuple[str, Callable[[], BaseException]]] = [
    ("slow answer", slow),
    ("slow answer, nothing sent", lambda: AomSlowResponseError("trickled", sent=False)),
    ("body over the cap", too_large),
    ("400", lambda: api_error(400)),
    ("401", lambda: api_error(401)),
    ("403", lambda: api_error(403)),
    ("404", lambda: api_error(404)),
    ("409", lambda: api_error(409)),
    ("501", lambda: api_error(501)),
    ("505", lambda: api_error(505)),
    ("599", lambda: api_error(599)),
    ("configuration", lambda: AomConfigurationError("bad extra")),
    ("plain AomError", lambda: AomError("something")),
    ("not an AOM error", lambda: OSError("disk full")),
    ("TimeoutError", lambda: TimeoutError()),
]


@pytest.mark.parametrize("make", [m for _, m in RETRIED_IF_IDEMPOTENT], ids=[n for n, _ in RETRIED_IF_IDEMPOTENT])
def test_is_transient_for_failures_a_later_identical_call_may_not_have(make: Callable[[], BaseException]) -> None:
    assert is_transient(make())


@pytest.mark.parametrize(
    "make", [m for _, m in NEVER_RETRIED_IF_IDEMPOTENT], ids=[n for n, _ in NEVER_RETRIED_IF_IDEMPOTENT]
)
def test_is_transient_false_for_permanent_slow_or_oversized_failures(make: Callable[[], BaseException]) -> None:
    assert not is_transient(make())


SAFE_TO_RESEND: list[tuple[str, Callable[[], BaseException]]] = [
    ("transport error, no byte written", lambda: sent(False)),
    ("429: throttled, not processed", lambda: api_error(429)),
    ("429 with Retry-After", lambda: api_error(429, retry_after=1.0)),
    # Getting the IAM token failed transiently: the POST it was for never left.
    ("IAM token: transport error after sending", lambda: before_send(sent(True))),
    ("IAM token: 503", lambda: before_send(api_error(503))),
    ("IAM token: undocumented answer", lambda: before_send(invalid())),
]

NOT_SAFE_TO_RESEND: list[tuple[str, Callable[[], BaseException]]] = [
    ("transport error after sending", lambda: sent(True)),
    ("slow answer", slow),
    ("500", lambda: api_error(500)),
    ("502", lambda: api_error(502)),
    ("503", lambda: api_error(503)),
    ("504", lambda: api_error(504)),
    ("2xx with an undocumented body", invalid),
    ("body over the cap", too_large),
    # 401 is renewed and re-sent by the protocol, not by the schedule.
    ("401", lambda: api_error(401)),
    ("400", lambda: api_error(400)),
    ("403", lambda: api_error(403)),
    ("404", lambda: api_error(404)),
    # Getting the IAM token failed for good: resending cannot help.
    ("IAM token: 401", lambda: before_send(api_error(401))),
    ("IAM token: 400", lambda: before_send(api_error(400))),
    ("IAM token: body over the cap", lambda: before_send(too_large())),
    ("IAM token: slow answer", lambda: before_send(slow())),
    ("configuration", lambda: AomConfigurationError("bad extra")),
    ("not an AOM error", lambda: ValueError("boom")),
]


@pytest.mark.parametrize("make", [m for _, m in SAFE_TO_RESEND], ids=[n for n, _ in SAFE_TO_RESEND])
def test_is_safe_to_resend_when_the_post_provably_started_nothing(make: Callable[[], BaseException]) -> None:
    assert is_safe_to_resend(make())


@pytest.mark.parametrize("make", [m for _, m in NOT_SAFE_TO_RESEND], ids=[n for n, _ in NOT_SAFE_TO_RESEND])
def test_is_safe_to_resend_false_when_the_post_may_have_started_something(make: Callable[[], BaseException]) -> None:
    assert not is_safe_to_resend(make())


MAY_HAVE_HAPPENED: list[tuple[str, Callable[[], AomError]]] = [
    ("transport error after sending", lambda: sent(True)),
    ("slow answer (sent)", slow),
    ("500", lambda: api_error(500)),
    ("501", lambda: api_error(501)),
    ("503", lambda: api_error(503)),
    ("504", lambda: api_error(504)),
    ("2xx with an undocumented body", invalid),
    ("2xx body over the cap", too_large),
]

CANNOT_HAVE_HAPPENED: list[tuple[str, Callable[[], AomError]]] = [
    ("transport error, no byte written", lambda: sent(False)),
    ("429", lambda: api_error(429)),
    ("400", lambda: api_error(400)),
    ("401", lambda: api_error(401)),
    ("403", lambda: api_error(403)),
    ("404", lambda: api_error(404)),
    ("IAM token: transport error after sending", lambda: before_send(sent(True))),
    ("IAM token: 500", lambda: before_send(api_error(500))),
    ("IAM token: undocumented answer", lambda: before_send(invalid())),
    ("configuration", lambda: AomConfigurationError("bad extra")),
]


@pytest.mark.parametrize("make", [m for _, m in MAY_HAVE_HAPPENED], ids=[n for n, _ in MAY_HAVE_HAPPENED])
def test_may_have_happened_after_sending_without_a_clear_answer(make: Callable[[], AomError]) -> None:
    assert may_have_happened(make())


@pytest.mark.parametrize("make", [m for _, m in CANNOT_HAVE_HAPPENED], ids=[n for n, _ in CANNOT_HAVE_HAPPENED])
def test_may_have_happened_false_when_unsent_refused_or_before_send(make: Callable[[], AomError]) -> None:
    assert not may_have_happened(make())


ALL_AOM_ERRORS: list[Callable[[], AomError]] = [m for _, m in MAY_HAVE_HAPPENED + CANNOT_HAVE_HAPPENED] + [
    partial(api_error, s) for s in (400, 401, 403, 404, 409, 429, 500, 502, 503, 504)
]


@pytest.mark.parametrize("make", ALL_AOM_ERRORS)
def test_a_failure_safe_to_resend_never_may_have_happened(make: Callable[[], AomError]) -> None:
    """The two questions about a non-idempotent call never both answer yes (that would submit twice)."""
    exc = make()
    assert not (is_safe_to_resend(exc) and may_have_happened(exc))


def test_retry_after_from_the_answer_reaches_the_schedule(clock: Clock) -> None:
    response = ApiResponse.build(429, b'{"error_code":"APIG.0308","error_msg":"throttled"}', {"Retry-After": "7"})
    exc = error_from_response(response, REQUEST)
    assert isinstance(exc, AomThrottledError)
    assert is_safe_to_resend(exc)
    assert RetrySchedule(RetryPolicy(), retryable=is_safe_to_resend).pause_after(exc) == 7.0


# --------------------------------------------------------------------------- the schedule: attempts


@pytest.mark.parametrize("attempts", [0, 1, 2, 3, 5, 8])
def test_schedule_allows_attempts_minus_one_retries(clock: Clock, attempts: int) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=attempts, total=10_000))
    results = pauses(schedule, sent(True), attempts + 3)
    retries = max(attempts - 1, 0)
    assert all(p is not None for p in results[:retries])
    assert results[retries:] == [None] * (len(results) - retries)


def test_schedule_gives_up_at_once_on_a_failure_that_is_not_retryable(clock: Clock) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=5, total=10_000))
    assert schedule.pause_after(api_error(400)) is None
    assert schedule.pause_after(api_error(429, retry_after=1.0)) is not None


def test_schedule_uses_its_retryable_predicate(clock: Clock) -> None:
    """The execute POST's schedule (is_safe_to_resend) refuses what an idempotent one (default) retries."""
    assert RetrySchedule(RetryPolicy()).pause_after(sent(True)) is not None
    assert RetrySchedule(RetryPolicy(), retryable=is_safe_to_resend).pause_after(sent(True)) is None
    assert RetrySchedule(RetryPolicy(), retryable=is_safe_to_resend).pause_after(sent(False)) is not None
    assert RetrySchedule(RetryPolicy(), retryable=lambda _: False).pause_after(sent(False)) is None


# --------------------------------------------------------------------------- the schedule: backoff and jitter


def test_backoff_doubles_from_initial_wait_up_to_max_wait(
    clock: Clock, uniform_calls: list[tuple[float, float]]
) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=10, max_wait=30.0, total=10_000, initial_wait=0.5))
    assert pauses(schedule, api_error(503), 9) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_jitter_draws_from_the_upper_half_of_each_ceiling(
    clock: Clock, uniform_calls: list[tuple[float, float]]
) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=6, max_wait=3.0, total=10_000, initial_wait=0.5))
    pauses(schedule, sent(True), 5)
    assert uniform_calls == [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)]


def test_jitter_spreads_the_pauses_of_concurrent_callers(clock: Clock) -> None:
    """Many callers failing together do not all come back at the same instant."""
    first = {RetrySchedule(RetryPolicy(total=10_000)).pause_after(sent(True)) for _ in range(50)}
    assert len(first) > 10
    assert all(p is not None and 0.25 <= p <= 0.5 for p in first)


@settings(max_examples=200, deadline=None)
@given(
    initial_wait=st.floats(0.01, 10.0),
    max_wait=st.floats(0.0, 120.0),
    failures=st.integers(1, 12),
)
def test_every_backoff_pause_is_within_its_jitter_bounds(initial_wait: float, max_wait: float, failures: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retry, "time", SimpleNamespace(monotonic=Clock()))
        schedule = RetrySchedule(
            RetryPolicy(attempts=failures + 1, max_wait=max_wait, total=1e9, initial_wait=initial_wait)
        )
        for attempt in range(1, failures + 1):
            pause = schedule.pause_after(sent(True))
            ceiling = min(max_wait, initial_wait * 2 ** (attempt - 1))
            assert pause is not None
            assert ceiling / 2 <= pause <= ceiling
            assert pause <= max_wait


# --------------------------------------------------------------------------- the schedule: total and deadline


def test_total_budget_counts_from_the_schedules_start(clock: Clock, uniform_calls: list[tuple[float, float]]) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=20, total=10.0, initial_wait=0.5, max_wait=0.5))
    clock.now += 9.4
    assert schedule.pause_after(sent(True)) == 0.5  # ends at 9.9 < 10
    clock.now += 0.2
    assert schedule.pause_after(sent(True)) is None  # would end at 10.1


def test_a_pause_ending_exactly_at_the_deadline_is_refused(
    clock: Clock, uniform_calls: list[tuple[float, float]]
) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=20, total=10.0, initial_wait=0.5, max_wait=0.5))
    clock.now += 9.5
    assert schedule.pause_after(sent(True)) is None


def test_callers_deadline_wins_when_earlier_than_total(clock: Clock, uniform_calls: list[tuple[float, float]]) -> None:
    schedule = RetrySchedule(RetryPolicy(total=120.0), deadline=clock.now + 3.0)
    assert schedule.deadline == clock.now + 3.0
    clock.now += 2.4
    assert schedule.pause_after(sent(True)) == 0.5
    clock.now += 0.2
    assert schedule.pause_after(sent(True)) is None  # 2.6 + 1.0 passes the caller's 3 s


def test_total_wins_when_earlier_than_the_callers_deadline(clock: Clock) -> None:
    schedule = RetrySchedule(RetryPolicy(total=5.0), deadline=clock.now + 3600.0)
    assert schedule.deadline == clock.now + 5.0
    clock.now += 5.0
    assert schedule.pause_after(sent(True)) is None


def test_a_deadline_already_passed_allows_no_retry(clock: Clock) -> None:
    schedule = RetrySchedule(RetryPolicy(), deadline=clock.now - 1.0)
    assert schedule.pause_after(api_error(503)) is None


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(0, 20),
    total=st.floats(0.0, 300.0),
    max_wait=st.floats(0.0, 60.0),
    caller_deadline=st.none() | st.floats(-10.0, 600.0),
    failures=st.lists(
        st.sampled_from(["transport", "503", "429", "429-after"]) | st.floats(0.0, 5.0), min_size=1, max_size=30
    ),
)
def test_pauses_never_outlast_the_budget_or_the_attempts(
    attempts: int,
    total: float,
    max_wait: float,
    caller_deadline: float | None,
    failures: list[str | float],
) -> None:
    """Slept pauses plus the time attempts take never reach the deadline; at most attempts - 1 retries."""
    clock = Clock(0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retry, "time", SimpleNamespace(monotonic=clock))
        schedule = RetrySchedule(
            RetryPolicy(attempts=attempts, total=total, max_wait=max_wait), deadline=caller_deadline
        )
        limit = total if caller_deadline is None else min(total, caller_deadline)
        retries = 0
        for failure in failures:
            if isinstance(failure, float):  # an attempt that took this long
                clock.now += failure
                continue
            makers: dict[str, Callable[[], AomError]] = {
                "transport": lambda: sent(True),
                "503": lambda: api_error(503),
                "429": lambda: api_error(429),
                "429-after": lambda: api_error(429, retry_after=4.0),
            }
            exc = makers[failure]()
            pause = schedule.pause_after(exc)
            if pause is None:
                break
            assert pause >= 0
            clock.now += pause
            retries += 1
            assert clock.now < limit
        assert retries <= max(attempts - 1, 0)


# --------------------------------------------------------------------------- the schedule: Retry-After


@pytest.mark.parametrize("retry_after", [0.0, 0.1, 2.0, 45.0, 100.0])
def test_retry_after_is_waited_exactly_even_beyond_max_wait(clock: Clock, retry_after: float) -> None:
    """Never earlier than the server asked (nor later): jitter and max_wait do not apply."""
    schedule = RetrySchedule(RetryPolicy(max_wait=1.0, total=120.0), retryable=is_safe_to_resend)
    assert schedule.pause_after(api_error(429, retry_after=retry_after)) == retry_after


def test_retry_after_of_a_server_error_is_honoured_too(clock: Clock) -> None:
    assert RetrySchedule(RetryPolicy()).pause_after(api_error(503, retry_after=12.0)) == 12.0


def test_retry_after_past_the_deadline_gives_up_instead_of_waiting_less(clock: Clock) -> None:
    schedule = RetrySchedule(RetryPolicy(total=10.0))
    assert schedule.pause_after(api_error(429, retry_after=10.0)) is None
    schedule = RetrySchedule(RetryPolicy(total=120.0), deadline=clock.now + 5.0)
    assert schedule.pause_after(api_error(429, retry_after=6.0)) is None
    assert schedule.pause_after(api_error(429, retry_after=4.0)) == 4.0


def test_retry_after_does_not_extend_the_attempts(clock: Clock) -> None:
    schedule = RetrySchedule(RetryPolicy(attempts=2, total=10_000))
    assert pauses(schedule, api_error(429, retry_after=1.0), 3) == [1.0, None, None]


def test_retry_after_on_a_failure_that_is_not_retried_is_ignored(clock: Clock) -> None:
    exc = api_error(400, retry_after=1.0)
    assert RetrySchedule(RetryPolicy()).pause_after(exc) is None


def test_retry_after_in_http_date_form_falls_back_to_backoff(clock: Clock) -> None:
    response = ApiResponse.build(429, b"{}", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    exc = error_from_response(response, REQUEST)
    pause = RetrySchedule(RetryPolicy(initial_wait=0.5)).pause_after(exc)
    assert pause is not None and 0.25 <= pause <= 0.5


def test_a_negative_retry_after_from_the_server_means_no_wait(clock: Clock) -> None:
    response = ApiResponse.build(429, b"{}", {"Retry-After": "-30"})
    exc = error_from_response(response, REQUEST)
    assert RetrySchedule(RetryPolicy()).pause_after(exc) == 0.0


def test_policy_defaults_match_the_documented_extras() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.max_wait, policy.total, policy.initial_wait) == (5, 30.0, 120.0, 0.5)
