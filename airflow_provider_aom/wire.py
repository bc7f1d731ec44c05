"""The values that cross the wire, below every other layer: a prepared request, an answer, a body sink.

The transport (:mod:`~airflow_provider_aom.transport`) sends an :class:`HttpRequest` and returns an
:class:`ApiResponse`; the protocol flows build the one and the API parsers read the other. Nothing
here knows AOM: what the transport needs of the call a request is for (its name in errors, whether
it may be sent twice, where a long body goes) is :class:`RequestFacts`, which
:class:`~airflow_provider_aom.api.ApiRequest` satisfies. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class BodySink(Protocol):
    """Takes a 2xx body piece by piece as the transport decodes it, instead of the body being kept."""

    def feed(self, data: bytes) -> None:
        """Decoded body bytes, in order; may raise an :class:`~airflow_provider_aom.exceptions.AomError`."""

    def close(self) -> Any:
        """The body has ended: what was read from it (the response's ``streamed``)."""


class RequestFacts(Protocol):
    """What the transport reads of the call a request is for."""

    @property
    def action(self) -> str:
        """The call, as errors name it (``Execute workflow 'wf-1'``)."""

    @property
    def idempotent(self) -> bool:
        """False when sending it twice may do it twice: it then only goes out on a fresh connection."""

    @property
    def body_sink(self) -> Callable[[Mapping[str, str]], BodySink] | None:
        """Makes, from an answer's lower-cased headers, the sink its 2xx body streams into (None: keep it)."""


Facts = TypeVar("Facts", bound=RequestFacts, covariant=True)


@dataclass(frozen=True)
class HttpRequest(Generic[Facts]):
    """A fully prepared request: every header here is final (and, for AK/SK, signed)."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    #: The call it is for (an :class:`~airflow_provider_aom.api.ApiRequest` in the provider).
    api: Facts


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP answer; header names are lower-cased."""

    status: int
    #: A bytearray when read by the transport (no copy of a large body); empty when the body went to a sink.
    body: bytes | bytearray
    headers: Mapping[str, str] = field(default_factory=dict)
    #: What the request's body sink made of a 2xx body (its ``close()``); else None.
    streamed: Any = None
    #: ``time.time()`` when the headers arrived (the moment ``Date`` describes); None when not read off a socket.
    received_at: float | None = None

    @classmethod
    def build(
        cls,
        status: int,
        body: bytes | bytearray,
        headers: Mapping[str, str],
        streamed: Any = None,
        *,
        received_at: float | None = None,
    ) -> ApiResponse:
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls(status=status, body=body, headers=lowered, streamed=streamed, received_at=received_at)

    @property
    def request_id(self) -> str | None:
        return request_id_of(self.headers)


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The gateway's request id among an answer's lower-cased headers."""
    return headers.get("x-request-id") or headers.get("x-openstack-request-id")
