"""When a failed call may be sent again, how long to pause, and when to give up (sans-IO).

* Reads and terminate (idempotent): retried on connection errors, no answer within
  ``timeout``, 429 (after its ``Retry-After``), 500/502/503/504 and a 2xx whose body is
  not what the API documents, with exponential backoff and jitter, bounded in attempts
  and in total time. Not retried: an answer that started but did not finish before the
  deadline (a trickling server holds every attempt as long) and a body over the cap.
* The execute POST (not idempotent, the API has no client token): re-sent only when it
  provably started nothing: no byte of it was written, or the gateway throttled it (429).
  A 401 is renewed and re-sent by the protocol. Everything else is ambiguous and is
  resolved by the hook (:mod:`~airflow_provider_aom.submit`), which re-sends only after a 503
  (:func:`is_unavailable`) and only when the execution list shows that nothing began.

:class:`RetrySchedule` only decides; the sync hook sleeps with ``time.sleep`` and the async
hook with ``asyncio.sleep``, so both follow one policy.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_aom.exceptions import (
    AomError,
    AomInvalidResponseError,
    AomResponseTooLargeError,
    AomServerError,
    AomSlowResponseError,
    AomThrottledError,
    AomTransportError,
)

log = logging.getLogger(__name__)

RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of automatic retries (connection extras ``retry_attempts``, ``retry_max_wait``, ``retry_total``)."""

    attempts: int = 5
    max_wait: float = 30.0
    total: float = 120.0
    initial_wait: float = 0.5


def is_transient(exc: BaseException) -> bool:
    """True for failures of an idempotent call that a later identical call may not have."""
    if isinstance(exc, (AomSlowResponseError, AomResponseTooLargeError)):
        return False
    if isinstance(exc, (AomTransportError, AomThrottledError, AomInvalidResponseError)):
        return True
    return isinstance(exc, AomServerError) and exc.status in RETRYABLE_SERVER_STATUSES


def is_safe_to_resend(exc: BaseException) -> bool:
    """True only when a call that is not idempotent (the execute POST, a node operation) provably did nothing."""
    if isinstance(exc, AomError) and exc.before_send:  # getting the IAM token failed: the POST was not sent
        return is_transient(exc)
    if isinstance(exc, AomTransportError):
        return not exc.sent
    return isinstance(exc, AomThrottledError)


def is_unavailable(exc: BaseException) -> bool:
    """A 503: the server says it cannot handle requests for now (overload, a backend down), so it most likely did not.

    RFC 9110 §15.6.4. For a call that is not idempotent this is a strong hint, not a proof: the
    submit re-sends after a 503 only once the execution list, read after the pause, shows no
    execution began.
    """
    return isinstance(exc, AomServerError) and exc.status == 503


def may_have_happened(exc: AomError) -> bool:
    """After this failure of a call that is not idempotent, it may have taken effect (sent, then no clear answer)."""
    if exc.before_send:
        return False
    return (isinstance(exc, AomTransportError) and exc.sent) or isinstance(
        exc, (AomServerError, AomInvalidResponseError)
    )


class RetrySchedule:
    """The attempts of one call: after each failure, the pause before the next one, or None to give up.

    ``deadline`` (``time.monotonic()``) ends the whole call, attempts and pauses included: it is
    the earlier of ``retry_total`` after the first attempt and the caller's own deadline.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        retryable: Callable[[BaseException], bool] = is_transient,
        deadline: float | None = None,
    ) -> None:
        self.policy = policy
        self.retryable = retryable
        self.attempt = 0
        total_end = time.monotonic() + policy.total
        self.deadline = total_end if deadline is None else min(total_end, deadline)

    def pause_after(self, exc: BaseException) -> float | None:
        """Record a failed attempt; the seconds to wait before the next one, or None when the call must fail."""
        self.attempt += 1
        if self.attempt >= self.policy.attempts or not self.retryable(exc):
            return None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Never earlier than the server asked; give up instead when that would pass the deadline.
            pause = float(retry_after)
        else:
            ceiling = min(self.policy.max_wait, self.policy.initial_wait * 2 ** (self.attempt - 1))
            pause = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        if time.monotonic() + pause >= self.deadline:
            return None
        log.warning("Attempt %d failed (%s); retrying in %.1f s.", self.attempt, exc, pause)
        return pause
