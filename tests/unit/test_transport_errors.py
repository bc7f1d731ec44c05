"""What an exchange that got no complete answer becomes (airflow_provider_aom/transport/errors.py: classify).

The error says whether the request may have reached the server: ``sent=False`` only when no byte of
it was written (refused, DNS, certificate, a proxy refusing the tunnel, an invalid header value, a
deadline spent before sending), so that a submit may then be re-sent. The message names the host
escaped, and for a certificate failure the setting that chose the CA bundle.
"""

from __future__ import annotations

import time

import httpcore
import pytest

from airflow_provider_aom.exceptions import AomSlowResponseError, AomTransportError
from airflow_provider_aom.transport import CallBudget, PoolKey, Trust, classify
from airflow_provider_aom.transport.deadline import DeadlineExpired

ACTION = "Execute workflow 'wf'"


def key(source: str = "certifi", host: str = "aom.cn-north-4.myhuaweicloud.com") -> PoolKey:
    return PoolKey("https", host, 443, None, Trust(True, None, source))


def budget(*, sent: bool = False, received: int = 0, spent: bool = False) -> CallBudget:
    return CallBudget(time.monotonic() + (-1.0 if spent else 30.0), sent=sent, received=received)


def test_the_deadline_before_a_byte_was_sent_is_not_sent() -> None:
    error = classify(DeadlineExpired(), budget(spent=True), ACTION, key())
    assert type(error) is AomTransportError and error.sent is False
    assert str(error) == (
        f"{ACTION}: could not connect to aom.cn-north-4.myhuaweicloud.com:443 and send the request before the deadline."
    )


def test_the_deadline_after_sending_is_a_sent_request_without_an_answer() -> None:
    error = classify(DeadlineExpired(), budget(sent=True, spent=True), ACTION, key())
    assert type(error) is AomTransportError and error.sent is True
    assert "no answer from aom.cn-north-4.myhuaweicloud.com:443 within the timeout" in str(error)


@pytest.mark.parametrize("exc", [DeadlineExpired(), httpcore.ReadTimeout("timed out")], ids=["deadline", "timeout"])
def test_an_answer_cut_by_the_deadline_is_a_slow_response(exc: Exception) -> None:
    error = classify(exc, budget(sent=True, received=10, spent=True), ACTION, key())
    assert type(error) is AomSlowResponseError and error.sent is True
    assert "did not complete before the deadline" in str(error)


def test_a_timeout_with_time_left_is_a_broken_exchange_not_the_deadline() -> None:
    error = classify(httpcore.ReadTimeout("timed out"), budget(sent=True), ACTION, key())
    assert type(error) is AomTransportError and error.sent is True
    assert "broke before a complete answer (timed out)" in str(error)
    not_sent = classify(httpcore.ConnectTimeout("timed out"), budget(), ACTION, key())
    assert not_sent.sent is False and "could not connect" in str(not_sent)


def test_a_refused_connection_is_not_sent_and_says_what_to_check() -> None:
    error = classify(httpcore.ConnectError("[Errno 111] Connection refused"), budget(), ACTION, key())
    assert error.sent is False
    assert str(error) == (
        f"{ACTION}: could not connect to aom.cn-north-4.myhuaweicloud.com:443 ([Errno 111] Connection refused). "
        "Check the connection's host/region and the network."
    )


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("certifi", "Check extra.verify:"),
        ("extra.verify", "Check extra.verify:"),
        ("REQUESTS_CA_BUNDLE", "Check REQUESTS_CA_BUNDLE (extra.verify wins over it):"),
    ],
)
def test_a_certificate_failure_names_the_setting_that_chose_the_ca(source: str, where: str) -> None:
    exc = httpcore.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error = classify(exc, budget(), ACTION, key(source))
    assert error.sent is False and where in str(error)
    assert "the certificate of the server or proxy" in str(error)


def test_a_proxy_refusing_the_tunnel_is_not_sent() -> None:
    error = classify(httpcore.ProxyError("403 Forbidden"), budget(sent=True), ACTION, key())
    assert error.sent is False and "the proxy refused the tunnel to" in str(error)


def test_a_local_protocol_error_is_not_sent() -> None:
    error = classify(httpcore.LocalProtocolError("Illegal header value"), budget(sent=True), ACTION, key())
    assert error.sent is False and "(Illegal header value)" in str(error)


def test_a_connection_broken_after_sending_is_sent() -> None:
    exc = httpcore.RemoteProtocolError("Server disconnected without sending a response.")
    error = classify(exc, budget(sent=True), ACTION, key())
    assert type(error) is AomTransportError and error.sent is True
    assert "broke before a complete answer (Server disconnected without sending a response.)" in str(error)


def test_an_empty_exception_is_named_by_its_class() -> None:
    error = classify(httpcore.ReadError(""), budget(sent=True), ACTION, key())
    assert "(ReadError)" in str(error)


def test_host_and_reason_are_escaped() -> None:
    exc = httpcore.ConnectError("refused\r\n2026-12-02 ERROR forged")
    error = classify(exc, budget(), ACTION, key(host="evil\nhost"))
    assert "\n" not in str(error) and "\r" not in str(error)
    assert "evil\\x0ahost:443" in str(error) and "refused\\x0d\\x0a2026" in str(error)
