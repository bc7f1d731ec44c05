"""Gateway-side authentication: IAM tokens and ``SDK-HMAC-SHA256`` AK/SK signatures.

Signature verification rebuilds the canonical request with the project's shared
signer (:mod:`airflow_provider_aom.auth.signer`), so client and emulator agree by
construction and both are pinned to Huawei's own signer by the test-suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from urllib.parse import parse_qsl

from airflow_provider_aom.auth.signer import (
    ALGORITHM,
    DATE_FORMAT,
    canonical_query,
    canonical_request,
    compute_signature,
    parse_authorization,
    string_to_sign,
)
from airflow_provider_aom.emulator.errors import iam_auth_error, token_expired
from airflow_provider_aom.emulator.state import EmulatorState, same_secret

SIGNATURE_FAILED = "verify aksk signature fail"


@dataclass(frozen=True)
class Caller:
    """What an authenticated request brought beyond its credential."""

    # X-Project-Id sent with an AK/SK request (None for tokens or when absent).
    project_header: str | None = None


def auth_kind(headers: Message) -> str:
    """Which credential a request presents: ``aksk``, ``token`` or ``none``."""
    authorization = headers.get("Authorization", "")
    if authorization.strip().startswith(ALGORITHM + " "):
        return "aksk"
    if headers.get("X-Auth-Token"):
        return "token"
    return "none"


def authenticate(
    state: EmulatorState,
    *,
    kind: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Message,
    body: bytes,
    request_id: str,
) -> Caller:
    """Accept the request's credential (``kind``: :func:`auth_kind` of ``headers``) or raise the gateway's 401."""
    if kind == "aksk":
        return _verify_signature(state, method, raw_path, raw_query, headers, body, request_id)
    if kind == "token":
        return _verify_token(state, headers.get("X-Auth-Token", ""), request_id)
    raise iam_auth_error("x-auth-token not found", request_id)


def _verify_token(state: EmulatorState, token: str, request_id: str) -> Caller:
    status, expires_at = state.token_status(token.strip())
    if status == "unknown":
        raise iam_auth_error("decrypt token fail", request_id)
    if status == "expired" and expires_at is not None:
        raise token_expired(expires_at, request_id)
    return Caller()


def _verify_signature(
    state: EmulatorState,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Message,
    body: bytes,
    request_id: str,
) -> Caller:
    config = state.config
    fail = iam_auth_error(SIGNATURE_FAILED, request_id)
    parsed = parse_authorization(headers.get("Authorization", ""))
    if parsed is None:
        raise fail
    signed = parsed.signed_headers
    if "host" not in signed or "x-sdk-date" not in signed:
        raise fail
    sdk_date = headers.get("X-Sdk-Date", "").strip()
    try:
        signed_at = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise fail from None
    now = state.now()
    if abs(now - signed_at.timestamp()) > config.max_clock_skew:
        server_time = datetime.fromtimestamp(now, timezone.utc).strftime(DATE_FORMAT)
        raise iam_auth_error(f"signature expired, signature time:{sdk_date}, server time:{server_time}", request_id)

    secret: str | None = None
    temporary = False
    if same_secret(parsed.access_key, config.ak):
        secret = config.sk
    elif same_secret(parsed.access_key, config.temp_ak):
        secret, temporary = config.temp_sk, True
    if secret is None:
        raise fail
    if temporary:
        # A temporary AK is only valid with its security token, and the token
        # must be signed so it cannot be swapped in transit.
        security_token = headers.get("X-Security-Token")
        if (
            security_token is None
            or "x-security-token" not in signed
            or not same_secret(security_token.strip(), config.security_token)
        ):
            raise fail

    received: dict[str, str] = {name: headers.get(name, "") for name in signed}
    content_sha256 = headers.get("X-Sdk-Content-Sha256")
    if content_sha256 is not None:
        received.setdefault("x-sdk-content-sha256", content_sha256)
    query = canonical_query(parse_qsl(raw_query, keep_blank_values=True))
    canonical = canonical_request(method, raw_path, query, received, signed, body)
    expected = compute_signature(secret, string_to_sign(canonical, sdk_date))
    if not same_secret(expected, parsed.signature):
        raise fail

    project_header = headers.get("X-Project-Id")
    return Caller(project_header=project_header.strip() if project_header is not None else None)
