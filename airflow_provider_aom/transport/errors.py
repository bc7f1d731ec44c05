"""The provider's error for an exchange that got no complete answer: what happened, and could it have been sent?

The budget records whether a byte of *this* request was written. A failure before that
(refused, DNS, certificate, an invalid header value, a deadline spent waiting for a free
connection) provably started nothing, and the error says ``sent=False``: a submit may then be
re-sent. Anything later is ``sent=True``.
"""

from __future__ import annotations

import httpcore

from airflow_provider_aom.escaping import escape
from airflow_provider_aom.exceptions import AomSlowResponseError, AomTransportError
from airflow_provider_aom.transport.deadline import CallBudget, DeadlineExpired
from airflow_provider_aom.transport.settings import PoolKey

#: What the exchange drivers map to :func:`classify` (the rest of httpcore's errors are configuration errors).
NETWORK_FAILURES = (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError, DeadlineExpired)


def _tls_hint(key: PoolKey) -> str:
    source = key.trust.source
    where = "extra.verify" if source in ("extra.verify", "certifi") else f"{source} (extra.verify wins over it)"
    return f" Check {where}: a CA bundle path, or false; and the certificate of the server or proxy."


def classify(exc: BaseException, budget: CallBudget, action: str, key: PoolKey) -> AomTransportError:
    """The error for ``exc``, raised by the exchange ``action`` to ``key`` under ``budget``."""
    where = escape(key.label, 300)
    spent = budget.remaining() <= 0.01
    if isinstance(exc, (DeadlineExpired, httpcore.TimeoutException)) and (spent or isinstance(exc, DeadlineExpired)):
        if budget.sent and budget.received:
            return AomSlowResponseError(
                f"{action}: the answer from {where} did not complete before the deadline (a server or proxy "
                "trickling it, or a body that never ends); the partial answer was dropped.",
                sent=True,
            )
        if budget.sent:
            return AomTransportError(f"{action}: no answer from {where} within the timeout.", sent=True)
        return AomTransportError(
            f"{action}: could not connect to {where} and send the request before the deadline.", sent=False
        )
    reason = escape(str(exc) or type(exc).__name__, 200)
    if isinstance(exc, httpcore.ProxyError):
        return AomTransportError(f"{action}: the proxy refused the tunnel to {where} ({reason}).", sent=False)
    if isinstance(exc, httpcore.LocalProtocolError) or not budget.sent:
        text = str(exc).upper()
        hint = (
            _tls_hint(key)
            if "CERTIFICATE" in text or "SSL" in text
            else " Check the connection's host/region and the network."
        )
        return AomTransportError(f"{action}: could not connect to {where} ({reason}).{hint}", sent=False)
    return AomTransportError(
        f"{action}: the connection to {where} broke before a complete answer ({reason}).", sent=True
    )
