"""The provider's errors (airflow_provider_aom/exceptions.py): the class per status, safe messages, not_sent().

An error names what failed and what to do, shows what the server sent only escaped (it cannot forge a
log line) and never a secret; the errors that no Airflow retry can fix fail the task at once; and
:meth:`~airflow_provider_aom.exceptions.AomError.not_sent` marks a copy, never the original.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_aom.exceptions import (
    AomApiError,
    AomAuthenticationError,
    AomBadRequestError,
    AomError,
    AomInvalidResponseError,
    AomNotFoundError,
    AomPermissionError,
    AomServerError,
    AomThrottledError,
    AomTransportError,
    error_for_status,
)


def api_error(
    status: int, *, error_code: str = "AOM.0001", error_msg: str = "refused", request_id: str | None = "r-1"
) -> AomApiError:
    return error_for_status(status)(
        status=status, error_code=error_code, error_msg=error_msg, request_id=request_id, action="Get execution"
    )


@pytest.mark.parametrize(
    ("status", "cls", "fails_at_once"),
    [
        (400, AomBadRequestError, True),
        (401, AomAuthenticationError, True),
        (403, AomPermissionError, True),
        (404, AomNotFoundError, True),
        (429, AomThrottledError, False),
        (500, AomServerError, False),
        (502, AomServerError, False),
        (503, AomServerError, False),
        (599, AomServerError, False),
        (402, AomApiError, False),
        (409, AomApiError, False),
        (418, AomApiError, False),
        (499, AomApiError, False),
    ],
)
def test_error_for_status(status: int, cls: type[AomApiError], fails_at_once: bool) -> None:
    assert error_for_status(status) is cls
    error = api_error(status)
    assert isinstance(error, AomError) and type(error) is cls and error.status == status
    assert isinstance(error, AirflowFailException) is fails_at_once, "only what a retry cannot fix fails at once"


def test_the_message_names_the_action_the_fields_and_what_to_do() -> None:
    error = api_error(403, error_code="AOM.0403", error_msg="no permission", request_id="req-9")
    assert str(error) == (
        "Get execution failed: HTTP 403, error_code=AOM.0403, error_msg='no permission', request_id=req-9. "
        + AomPermissionError.hint
    )
    assert str(api_error(502, error_code="", error_msg="", request_id=None)) == "Get execution failed: HTTP 502."


def test_server_text_cannot_forge_a_log_line() -> None:
    forged = "x\r\n2026-12-02 ERROR forged\u2028\u202e"
    error = api_error(500, error_code=forged, error_msg=forged, request_id=forged)
    message = str(error)
    for raw in ("\r", "\n", "\u2028", "\u202e"):
        assert raw not in message
    assert "\\r\\n2026-12-02 ERROR forged" in message
    assert error.error_code == "x\\x0d\\x0a2026-12-02 ERROR forged\\u2028\\u202e"
    assert "\n" not in str(error.request_id)


def test_long_server_fields_are_cut() -> None:
    error = api_error(500, error_code="C" * 500, request_id="R" * 500)
    assert error.error_code == "C" * 64 + "…" and error.request_id == "R" * 128 + "…"


def test_a_secret_the_server_echoes_is_redacted() -> None:
    """A gateway may echo the signed request back, X-Security-Token and all: masked secrets never show."""
    from airflow.providers.common.compat.sdk import mask_secret

    secret = "STS-exceptions-test-0f9e8d7c6b5a"
    mask_secret(secret)
    error = api_error(401, error_msg=f"canonical request: x-security-token:{secret}\nhost:aom")
    assert secret not in str(error) and secret not in error.error_msg


def test_an_invalid_response_names_status_and_escaped_request_id() -> None:
    error = AomInvalidResponseError("Get execution: not JSON", status=200, request_id="r\n1")
    assert str(error) == "Get execution: not JSON (HTTP 200, request_id=r\\x0a1)"
    assert str(AomInvalidResponseError("x", status=200, request_id=None)) == "x (HTTP 200)"


def test_not_sent_keeps_class_message_and_fields_and_leaves_the_original_alone() -> None:
    original: AomApiError
    try:
        raise api_error(503, error_msg="IAM down")
    except AomServerError as exc:
        original = exc
    copy = original.not_sent()
    assert type(copy) is AomServerError and copy is not original
    assert str(copy) == str(original) and copy.args == original.args
    assert (copy.status, copy.error_code, copy.error_msg, copy.request_id, copy.action) == (
        503,
        "AOM.0001",
        "IAM down",
        "r-1",
        "Get execution",
    )
    assert copy.before_send and not original.before_send
    assert copy.__traceback__ is original.__traceback__


def test_not_sent_of_a_transport_error_keeps_sent() -> None:
    original = AomTransportError("could not connect", sent=False)
    copy = original.not_sent()
    assert type(copy) is AomTransportError and str(copy) == "could not connect"
    assert copy.sent is False and copy.before_send and not original.before_send
