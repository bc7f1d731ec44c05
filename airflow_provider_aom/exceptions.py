"""Typed errors of the AOM provider.

Every error a user can act on says what was wrong and what to do. None of them
ever carries a secret: messages are built from ids, status codes and the
server's ``error_code`` / ``error_msg``, never from headers or credentials.
Whatever the server sent is escaped (:func:`~airflow_provider_aom.escaping.escape`)
before it enters a message, so it cannot forge a log line.

Errors that can never succeed on an Airflow retry (bad configuration, unknown
workflow, rejected credentials, invalid request) also derive from
``AirflowFailException``, so the task fails at once instead of retrying.
"""

from __future__ import annotations

from typing import TypeVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_aom.escaping import escape

E = TypeVar("E", bound="AomError")


class AomError(AirflowException):
    """Base class of every error raised by the AOM provider."""

    #: True when the failure happened before the request it was for was sent (e.g. while getting an IAM
    #: token for it): such a request provably started nothing. Set only on the copy :meth:`not_sent` makes.
    before_send: bool = False

    def not_sent(self: E) -> E:
        """This error, as the failure of a request that provably never left (getting its IAM token failed).

        A new error of the same class, message and fields; the original (the token request's own
        failure) is left as it was.
        """
        clone = type(self).__new__(type(self), *self.args)
        clone.__dict__.update(self.__dict__)
        clone.before_send = True
        return clone.with_traceback(self.__traceback__)


class AomConfigurationError(AomError, AirflowFailException):
    """The connection or an operator argument is missing, malformed or inconsistent."""


class AomTransportError(AomError):
    """The request did not get a complete HTTP answer (refused, DNS, certificate, timeout, dropped connection).

    ``sent`` tells whether the request may have reached the server: False only
    when no byte of it was written (so it provably started nothing).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class AomSlowResponseError(AomTransportError):
    """An answer started but did not complete before the deadline (a trickling server or proxy).

    Not retried within the call: the same server would hold the next attempt just as long.
    """


class AomApiError(AomError):
    """The AOM API or Huawei Cloud's gateway answered with an error.

    Carries the HTTP status, ``error_code``, ``error_msg`` and the request id
    (``X-Request-Id`` or the gateway's ``request_id``), all as sent by the server.
    """

    hint: str = ""

    def __init__(
        self,
        *,
        status: int,
        error_code: str,
        error_msg: str,
        request_id: str | None,
        action: str,
        retry_after: float | None = None,
    ) -> None:
        from airflow.providers.common.compat.sdk import redact

        # A gateway may echo the request back (APIG's signature failure includes the canonical request,
        # X-Security-Token among its signed headers): drop every secret registered with the masker.
        error_msg = str(redact(error_msg))
        error_code = escape(error_code, 64)
        request_id = escape(request_id, 128) if request_id else request_id
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.action = action
        self.retry_after = retry_after
        parts = [f"{action} failed: HTTP {status}"]
        if error_code:
            parts.append(f"error_code={error_code}")
        if error_msg:
            parts.append(f"error_msg={error_msg!r}")
        if request_id:
            parts.append(f"request_id={request_id}")
        message = ", ".join(parts) + "."
        if self.hint:
            message += " " + self.hint
        super().__init__(message)


class AomBadRequestError(AomApiError, AirflowFailException):
    """HTTP 400: the server rejected a parameter; repeating the request unchanged cannot help."""

    hint = "Check the workflow id, execution id and project id."


class AomAuthenticationError(AomApiError, AirflowFailException):
    """HTTP 401: the credentials were rejected (wrong AK/SK, password, or an invalid token)."""

    hint = (
        "Check the connection's credentials and auth_type; for AK/SK also the machine's clock "
        "(Huawei Cloud rejects signatures more than 15 minutes off)."
    )


class AomPermissionError(AomApiError, AirflowFailException):
    """HTTP 403: the identity is valid but lacks permission for AOM in this project."""

    hint = "Grant the IAM user AOM permissions in this project and region."


class AomNotFoundError(AomApiError, AirflowFailException):
    """HTTP 404: the workflow or execution does not exist in this project and region."""

    hint = "Check the id and that the connection's region and project id are those of the workflow."


class AomThrottledError(AomApiError):
    """HTTP 429 (gateway code ``APIG.0308``): the request was throttled and not processed."""

    hint = "The request was not processed; it is safe to send it again after a pause."


class AomServerError(AomApiError):
    """HTTP 5xx: the server failed; for a submit it is unknown whether anything started."""


class AomInvalidResponseError(AomError):
    """A success status with a body that is not what the API documents."""

    def __init__(self, message: str, *, status: int, request_id: str | None) -> None:
        request_id = escape(request_id, 128) if request_id else request_id
        suffix = f" (HTTP {status}" + (f", request_id={request_id})" if request_id else ")")
        super().__init__(message + suffix)
        self.status = status
        self.request_id = request_id


class AomResponseTooLargeError(AomInvalidResponseError):
    """A 2xx body larger than the cap (counted after decompression): reading stopped at the cap."""


class AomAmbiguousSubmitError(AomError, AirflowFailException):
    """A submit failed in a way that may have started an execution anyway: an Airflow retry could start a second."""


class AomWorkflowNotFoundError(AomConfigurationError):
    """No workflow, or more than one, has the name a task asked for."""


class AomNodeActionRefusedError(AomError, AirflowFailException):
    """AOM refused a node operation (restart, skip, continue); the message names the action, node and status."""


class AomNothingToOperateError(AomError, AirflowFailException):
    """A node operation without a node id found no failed node (restart, skip) or pause node (continue)."""


class AomAmbiguousOperationError(AomError):
    """A node operation got no clear answer and the execution shows no change: it was not re-sent."""


class AomExecutionFailedError(AomError):
    """The workflow execution ended in a failure status."""


class AomExecutionTimeoutError(AomError):
    """The wait for the execution passed its deadline."""


def error_for_status(status: int) -> type[AomApiError]:
    """The exception class that fits an HTTP error status."""
    if status == 400:
        return AomBadRequestError
    if status == 401:
        return AomAuthenticationError
    if status == 403:
        return AomPermissionError
    if status == 404:
        return AomNotFoundError
    if status == 429:
        return AomThrottledError
    if status >= 500:
        return AomServerError
    return AomApiError
