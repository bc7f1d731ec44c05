"""When a failed call may be sent again, and how long to wait (tenacity policies).

* Reads and terminate (idempotent): retried on connection errors, timeouts, 429
  (after its ``Retry-After``) and 500/502/503/504, with exponential backoff and
  jitter, bounded in attempts and in total time.
* The execute POST (not idempotent, the API has no client token): re-sent only
  when it provably started nothing: the connection was never established, or
  the gateway throttled it (429). A 401 is renewed and re-sent by the protocol.
  Everything else is ambiguous and is resolved by the hook, never by a re-send.

The same policies serve the sync hook (:func:`retrying`) and the async trigger
(:func:`async_retrying`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_aom.exceptions import AomError, AomServerError, AomThrottledError, AomTransportError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState, Retrying

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
    if isinstance(exc, (AomTransportError, AomThrottledError)):
        return True
    return isinstance(exc, AomServerError) and exc.status in RETRYABLE_SERVER_STATUSES


def is_safe_to_resend_submit(exc: BaseException) -> bool:
    """True only when the execute POST provably started nothing."""
    if isinstance(exc, AomError) and exc.before_send:  # getting the IAM token failed: the POST was not sent
        return is_transient(exc)
    if isinstance(exc, AomTransportError):
        return not exc.sent
    return isinstance(exc, AomThrottledError)


class _Backoff:
    """Exponential backoff with full jitter; a server's ``Retry-After`` wins when it is given."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Never earlier than the server asked; stop_before_delay gives up instead when it would pass retry_total.
            return float(retry_after)
        ceiling = min(self.policy.max_wait, self.policy.initial_wait * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("Attempt %d failed (%s); retrying in %.1f s.", state.attempt_number, exc, wait)


def _kwargs(policy: RetryPolicy, predicate: Any) -> dict[str, Any]:
    from tenacity import retry_if_exception, stop_after_attempt, stop_any, stop_before_delay

    return {
        "retry": retry_if_exception(predicate),
        # stop_before_delay: no pause that would end past retry_total (tenacity >= 8.3).
        "stop": stop_any(stop_after_attempt(policy.attempts), stop_before_delay(policy.total)),
        "wait": _Backoff(policy),
        "before_sleep": _log_retry,
        "reraise": True,
    }


def retrying(policy: RetryPolicy, *, submit: bool = False) -> Retrying:
    from tenacity import Retrying

    return Retrying(**_kwargs(policy, is_safe_to_resend_submit if submit else is_transient))


def async_retrying(policy: RetryPolicy) -> AsyncRetrying:
    from tenacity import AsyncRetrying

    return AsyncRetrying(**_kwargs(policy, is_transient))
