"""IAM tokens: parsing IAM's answer and a per-process cache shared by every hook and trigger.

One cache entry per identity (IAM endpoint, account, user, password, scope), so
all hooks of one connection in a process, and all triggers in one triggerer,
share a single token: 1,000 waits cost one IAM call, not 1,000.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from airflow_provider_aom.api import ApiRequest, json_body, name_and_id
from airflow_provider_aom.exceptions import AomInvalidResponseError
from airflow_provider_aom.wire import ApiResponse

if TYPE_CHECKING:
    from airflow_provider_aom.config import AomConnectionConfig

#: Renew this long before ``expires_at``, so a token never expires mid-request.
REFRESH_MARGIN = timedelta(minutes=5)
#: AOM accepts an ``X-Auth-Token`` of 1 to 40,960 characters; IAM tokens are printable ASCII.
MAX_TOKEN_LENGTH = 40960
_TOKEN_RE = re.compile(rf"[!-~]{{1,{MAX_TOKEN_LENGTH}}}")


@dataclass(frozen=True)
class IamToken:
    value: str = field(repr=False)
    expires_at: datetime
    project_id: str | None
    issued_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: The IAM user the token was issued to (``token.user``), when IAM said.
    user_name: str | None = None
    user_id: str | None = None

    def fresh(self, now: datetime | None = None) -> bool:
        """Usable until a margin before expiry: 5 minutes, or a tenth of a short lifetime."""
        now = now or datetime.now(timezone.utc)
        margin = min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 10)
        return now < self.expires_at - margin


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_token_response(response: ApiResponse, request: ApiRequest) -> IamToken:
    """Token from ``X-Subject-Token``; expiry and project from the body.

    The caller registers the token with the secrets masker (sync or async, as its context needs).
    """
    payload = json_body(response, request)
    value = response.headers.get("x-subject-token")
    token = payload.get("token") if isinstance(payload, dict) else None
    if not value or not isinstance(token, dict):
        raise _bad(request, response)
    if not _TOKEN_RE.fullmatch(value):
        # It becomes a header of every call: one line of printable ASCII, or nothing.
        raise _bad(request, response)
    try:
        expires_at = _parse_time(str(token["expires_at"]))
    except (KeyError, ValueError, TypeError):
        raise _bad(request, response) from None
    project = token.get("project")
    project_id = project.get("id") if isinstance(project, dict) else None
    user_name, user_id = name_and_id(token.get("user"))
    return IamToken(
        value=value,
        expires_at=expires_at,
        project_id=project_id if isinstance(project_id, str) else None,
        user_name=user_name,
        user_id=user_id,
    )


def _bad(request: ApiRequest, response: ApiResponse) -> Exception:
    return AomInvalidResponseError(
        f"{request.action}: IAM answered without a valid X-Subject-Token or token.expires_at",
        status=response.status,
        request_id=response.request_id,
    )


def cache_key(config: AomConnectionConfig) -> str:
    """A digest of the identity, so the cache never holds a password in clear."""
    parts = [
        config.iam_endpoint,
        config.domain_name or "",
        config.username or "",
        config.password or "",
        config.project_id or "",
        config.region or "",
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class TokenCache:
    """Thread-safe map from identity to its current token."""

    def __init__(self) -> None:
        self._tokens: dict[str, IamToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> IamToken | None:
        token = self._tokens.get(key)
        return token if token is not None and token.fresh() else None

    def store(self, key: str, token: IamToken) -> None:
        self._tokens[key] = token

    def invalidate(self, key: str, value: str) -> None:
        """Drop the token only if it is still the one that was rejected (another caller may have renewed it)."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == value:
                del self._tokens[key]

    def fetch_lock(self, key: str) -> threading.Lock:
        """Held while fetching, so concurrent threads make one IAM call between them."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


#: The process-wide cache.
TOKEN_CACHE = TokenCache()
