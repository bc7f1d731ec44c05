"""IAM tokens on their own: expiry and renewal margin, the per-process cache, its key, and IAM's answer."""

from __future__ import annotations

import dataclasses
import json
import string
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aom.api import ApiRequest
from airflow_provider_aom.auth import tokens
from airflow_provider_aom.auth.tokens import (
    MAX_TOKEN_LENGTH,
    REFRESH_MARGIN,
    TOKEN_CACHE,
    IamToken,
    TokenCache,
    cache_key,
    parse_token_response,
)
from airflow_provider_aom.config import AomConnectionConfig
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
)
from airflow_provider_aom.wire import ApiResponse

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
SECRET = "MIIsecret-subject-token-0123456789abcdefXYZ"
REQUEST = ApiRequest("POST", "/v3/auth/tokens", "Get an IAM token for user 'alice'", service="iam")
PROJECT = "0123456789abcdef0123456789abcdef"


def token(value: str = SECRET, *, lifetime: timedelta = timedelta(hours=24), issued_at: datetime = T0) -> IamToken:
    return IamToken(value=value, expires_at=issued_at + lifetime, project_id=PROJECT, issued_at=issued_at)


def live(value: str = SECRET) -> IamToken:
    """A token issued now, valid for a day."""
    return token(value, issued_at=datetime.now(timezone.utc))


def iam_body(**token_fields: Any) -> bytes:
    fields: dict[str, Any] = {
        "expires_at": "2030-01-02T12:00:00.000000Z",
        "issued_at": "2030-01-01T12:00:00.000000Z",
        "project": {"id": PROJECT, "name": "cn-north-4"},
        "user": {"name": "alice", "id": "u-0123456789"},
    }
    fields.update(token_fields)
    return json.dumps({"token": {k: v for k, v in fields.items() if v is not ...}}).encode()


def answer(
    status: int = 201, body: bytes | None = None, headers: dict[str, str] | None = None, subject: str | None = SECRET
) -> ApiResponse:
    all_headers = {"Content-Type": "application/json", "X-Request-Id": "req-1"}
    if subject is not None:
        all_headers["X-Subject-Token"] = subject
    all_headers.update(headers or {})
    return ApiResponse.build(status, iam_body() if body is None else body, all_headers)


def config(**changes: Any) -> AomConnectionConfig:
    base = AomConnectionConfig(
        conn_id="aom_default",
        auth_type="password",
        endpoint="https://aom.cn-north-4.myhuaweicloud.com",
        iam_endpoint="https://iam.myhuaweicloud.com",
        region="cn-north-4",
        project_id=PROJECT,
        username="alice",
        password="pa55-w0rd!correct-horse",
        domain_name="acme",
    )
    return dataclasses.replace(base, **changes)


def text_of(exc: BaseException) -> str:
    """Everything a log could show of ``exc``: message, repr, attributes and the formatted traceback."""
    return "\n".join(
        [str(exc), repr(exc), repr(vars(exc)), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    )


# --------------------------------------------------------------------------- IamToken: expiry and renewal


def test_a_long_lived_token_is_renewed_five_minutes_before_expiry() -> None:
    t = token(lifetime=timedelta(hours=24))
    assert t.fresh(T0)
    assert t.fresh(t.expires_at - REFRESH_MARGIN - timedelta(microseconds=1))
    assert not t.fresh(t.expires_at - REFRESH_MARGIN)
    assert not t.fresh(t.expires_at)
    assert not t.fresh(t.expires_at + timedelta(days=1))


def test_a_short_lived_token_is_renewed_a_tenth_of_its_lifetime_before_expiry() -> None:
    t = token(lifetime=timedelta(minutes=10))  # margin 1 minute, not 5 (that would be half its life)
    assert t.fresh(T0)
    assert t.fresh(t.expires_at - timedelta(seconds=61))
    assert not t.fresh(t.expires_at - timedelta(seconds=60))


def test_the_margin_is_five_minutes_from_a_fifty_minute_lifetime_on() -> None:
    t = token(lifetime=timedelta(minutes=50))
    assert t.fresh(t.expires_at - timedelta(minutes=5, microseconds=1))
    assert not t.fresh(t.expires_at - timedelta(minutes=5))
    t = token(lifetime=timedelta(minutes=40))  # margin 4 minutes
    assert t.fresh(t.expires_at - timedelta(minutes=4, microseconds=1))
    assert not t.fresh(t.expires_at - timedelta(minutes=4))


@settings(max_examples=200, deadline=None)
@given(lifetime=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=7)))
def test_a_token_is_usable_when_issued_and_never_at_or_after_expiry(lifetime: timedelta) -> None:
    t = token(lifetime=lifetime)
    assert t.fresh(T0)
    assert not t.fresh(t.expires_at)
    assert not t.fresh(t.expires_at + timedelta(microseconds=1))
    # Never renewed earlier than the margin asks: up to five minutes, never more.
    assert t.fresh(t.expires_at - min(REFRESH_MARGIN, lifetime / 10) - timedelta(microseconds=1))
    assert not t.fresh(t.expires_at - min(REFRESH_MARGIN, lifetime / 10))


def test_fresh_defaults_to_the_current_time() -> None:
    now = datetime.now(timezone.utc)
    assert token(issued_at=now, lifetime=timedelta(hours=1)).fresh()
    assert not token(issued_at=now - timedelta(hours=2), lifetime=timedelta(hours=1)).fresh()
    assert not token(issued_at=now - timedelta(minutes=58), lifetime=timedelta(hours=1)).fresh()  # in the margin


def test_issued_at_defaults_to_now() -> None:
    before = datetime.now(timezone.utc)
    t = IamToken(value=SECRET, expires_at=before + timedelta(hours=1), project_id=None)
    assert before <= t.issued_at <= datetime.now(timezone.utc)


def test_the_token_value_is_not_in_its_repr() -> None:
    t = token()
    assert SECRET not in repr(t)
    assert SECRET not in str(t)
    assert PROJECT in repr(t)


# --------------------------------------------------------------------------- TokenCache


def test_cache_get_of_an_unknown_key_is_none() -> None:
    assert TokenCache().get("k") is None


def test_cache_stores_and_returns_the_token_per_key() -> None:
    cache = TokenCache()
    a, b = live("token-a"), live("token-b")
    cache.store("a", a)
    cache.store("b", b)
    assert cache.get("a") is a
    assert cache.get("b") is b
    assert cache.get("c") is None


def test_store_replaces_the_previous_token() -> None:
    cache = TokenCache()
    cache.store("k", live("old"))
    new = live("new")
    cache.store("k", new)
    assert cache.get("k") is new


def test_cache_does_not_hand_out_a_token_in_its_renewal_margin() -> None:
    cache = TokenCache()
    now = datetime.now(timezone.utc)
    cache.store("expired", token(issued_at=now - timedelta(hours=2), lifetime=timedelta(hours=1)))
    cache.store("margin", token(issued_at=now - timedelta(minutes=57), lifetime=timedelta(hours=1)))
    assert cache.get("expired") is None
    assert cache.get("margin") is None


def test_invalidate_drops_the_rejected_token() -> None:
    cache = TokenCache()
    cache.store("k", live("rejected"))
    cache.invalidate("k", "rejected")
    assert cache.get("k") is None


def test_invalidate_keeps_a_token_another_caller_already_renewed() -> None:
    cache = TokenCache()
    renewed = live("renewed")
    cache.store("k", renewed)
    cache.invalidate("k", "rejected")  # the value this caller was refused with
    assert cache.get("k") is renewed


def test_invalidate_touches_only_its_key() -> None:
    cache = TokenCache()
    other = live("same-value")
    cache.store("a", live("same-value"))
    cache.store("b", other)
    cache.invalidate("a", "same-value")
    assert cache.get("a") is None
    assert cache.get("b") is other


def test_invalidate_of_an_unknown_key_is_a_no_op() -> None:
    cache = TokenCache()
    cache.invalidate("nothing", "x")
    assert cache.get("nothing") is None


def test_clear_forgets_every_token() -> None:
    cache = TokenCache()
    cache.store("a", live("a"))
    cache.store("b", live("b"))
    cache.clear()
    assert cache.get("a") is None and cache.get("b") is None


def test_fetch_lock_is_one_lock_per_key() -> None:
    cache = TokenCache()
    lock = cache.fetch_lock("a")
    assert cache.fetch_lock("a") is lock
    assert cache.fetch_lock("b") is not lock
    assert lock.acquire(blocking=False)
    try:
        # Held for "a": another thread cannot take it, but "b" is free.
        result: dict[str, bool] = {}
        worker = threading.Thread(
            target=lambda: result.update(
                a=cache.fetch_lock("a").acquire(timeout=0.05), b=cache.fetch_lock("b").acquire(timeout=0.05)
            )
        )
        worker.start()
        worker.join(5)
        assert result == {"a": False, "b": True}
    finally:
        lock.release()


def test_fetch_lock_survives_clear() -> None:
    cache = TokenCache()
    lock = cache.fetch_lock("a")
    cache.clear()
    assert cache.fetch_lock("a") is lock


def test_concurrent_fetches_through_the_lock_make_one_iam_call() -> None:
    """The hooks' pattern (get; under fetch_lock: get again, else fetch and store) fetches once per key."""
    cache = TokenCache()
    calls: list[str] = []
    start = threading.Barrier(16)
    got: list[IamToken] = []

    def fetch(key: str) -> None:
        start.wait(5)
        found = cache.get(key)
        if found is None:
            with cache.fetch_lock(key):
                found = cache.get(key)
                if found is None:
                    calls.append(key)
                    time.sleep(0.02)  # IAM takes a while
                    found = live(f"token-{key}")
                    cache.store(key, found)
        got.append(found)

    threads = [threading.Thread(target=fetch, args=("ab"[i % 2],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(calls) == ["a", "b"]
    assert len(got) == 16
    assert {t.value for t in got} == {"token-a", "token-b"}


def test_the_process_wide_cache_is_a_token_cache() -> None:
    assert isinstance(TOKEN_CACHE, TokenCache)
    assert tokens.TOKEN_CACHE is TOKEN_CACHE


# --------------------------------------------------------------------------- cache_key


def test_cache_key_is_stable_for_one_identity() -> None:
    assert cache_key(config()) == cache_key(config())


def test_cache_key_is_a_sha256_hex_digest() -> None:
    key = cache_key(config())
    assert len(key) == 64 and set(key) <= set(string.hexdigits.lower())


@pytest.mark.parametrize(
    "change",
    [
        {"iam_endpoint": "https://iam.ap-southeast-1.myhuaweicloud.com"},
        {"domain_name": "other-account"},
        {"domain_name": None},
        {"username": "bob"},
        {"password": "another-password"},
        {"password": None},
        {"project_id": "fedcba9876543210fedcba9876543210"},
        {"project_id": None},
        {"region": "ap-southeast-1"},
        {"region": None},
    ],
    ids=lambda change: "-".join(f"{k}={v}" for k, v in change.items()),
)
def test_cache_key_differs_per_identity(change: dict[str, Any]) -> None:
    assert cache_key(config(**change)) != cache_key(config())


def test_cache_key_is_shared_by_connections_of_one_identity() -> None:
    """Hooks of different connections (or settings) with the same identity share one token."""
    assert cache_key(config(conn_id="other_conn", timeout=5.0)) == cache_key(config())


def test_cache_key_keeps_the_fields_apart() -> None:
    """("ab", "c") and ("a", "bc") are two identities, not one string."""
    assert cache_key(config(username="ab", password="c")) != cache_key(config(username="a", password="bc"))
    assert cache_key(config(domain_name="x", username="")) != cache_key(config(domain_name="", username="x"))


@settings(max_examples=200, deadline=None)
@given(password=st.text(min_size=8, max_size=64), other=st.text(min_size=8, max_size=64))
def test_cache_key_never_holds_the_password_in_clear(password: str, other: str) -> None:
    key = cache_key(config(password=password))
    assert password not in key
    assert password.encode("utf-8", "surrogatepass").hex() not in key
    if other != password:
        assert cache_key(config(password=other)) != key


# --------------------------------------------------------------------------- parse_token_response: valid answers


def test_a_valid_answer_gives_the_token_its_expiry_project_and_user() -> None:
    before = datetime.now(timezone.utc)
    t = parse_token_response(answer(), REQUEST)
    assert t.value == SECRET
    assert t.expires_at == datetime(2030, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert t.project_id == PROJECT
    assert (t.user_name, t.user_id) == ("alice", "u-0123456789")
    assert before <= t.issued_at <= datetime.now(timezone.utc)  # our clock, not IAM's issued_at
    assert SECRET not in repr(t)


@pytest.mark.parametrize("name", ["X-Subject-Token", "x-subject-token", "X-SUBJECT-TOKEN"])
def test_the_subject_token_header_name_is_case_insensitive(name: str) -> None:
    response = ApiResponse.build(201, iam_body(), {name: SECRET})
    assert parse_token_response(response, REQUEST).value == SECRET


@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [
        ("2030-01-02T12:00:00.000000Z", datetime(2030, 1, 2, 12, tzinfo=timezone.utc)),
        ("2030-01-02T12:00:00.123Z", datetime(2030, 1, 2, 12, 0, 0, 123000, tzinfo=timezone.utc)),
        ("2030-01-02T12:00:00Z", datetime(2030, 1, 2, 12, tzinfo=timezone.utc)),
        ("2030-01-02T20:00:00+08:00", datetime(2030, 1, 2, 12, tzinfo=timezone.utc)),
        # Without an offset: UTC (IAM's clock), never the machine's local time.
        ("2030-01-02T12:00:00.000000", datetime(2030, 1, 2, 12, tzinfo=timezone.utc)),
    ],
)
def test_expires_at_is_an_aware_utc_moment(expires_at: str, expected: datetime) -> None:
    t = parse_token_response(answer(body=iam_body(expires_at=expires_at)), REQUEST)
    assert t.expires_at == expected
    assert t.expires_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("project", "user", "expected"),
    [
        (..., ..., (None, None, None)),
        ({"name": "cn-north-4"}, {"name": "alice"}, (None, "alice", None)),
        ({"id": 42}, {"id": 7, "name": ["x"]}, (None, None, None)),
        ("not-an-object", "not-an-object", (None, None, None)),
    ],
)
def test_missing_or_malformed_project_and_user_are_none(project: Any, user: Any, expected: tuple[Any, ...]) -> None:
    t = parse_token_response(answer(body=iam_body(project=project, user=user)), REQUEST)
    assert (t.project_id, t.user_name, t.user_id) == expected


@settings(max_examples=200, deadline=None)
@given(value=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200))
def test_any_printable_ascii_token_is_kept_verbatim(value: str) -> None:
    assert parse_token_response(answer(subject=value), REQUEST).value == value


def test_the_longest_token_aom_accepts_is_kept() -> None:
    value = "M" * MAX_TOKEN_LENGTH
    assert parse_token_response(answer(subject=value), REQUEST).value == value


# --------------------------------------------------------------------------- parse_token_response: bad answers


@pytest.mark.parametrize(
    "subject",
    [
        None,
        "",
        "M" * (MAX_TOKEN_LENGTH + 1),
        SECRET + " tail",
        SECRET + "\r\nX-Injected: 1",
        SECRET + "\t",
        " " + SECRET,
        SECRET + "é",
        SECRET + "\x00",
        SECRET + "\x7f",
    ],
    ids=["missing", "empty", "too-long", "space", "crlf", "tab", "leading-space", "non-ascii", "nul", "del"],
)
def test_an_answer_without_a_usable_subject_token_is_invalid(subject: str | None) -> None:
    with pytest.raises(AomInvalidResponseError) as info:
        parse_token_response(answer(subject=subject), REQUEST)
    message = str(info.value)
    assert "X-Subject-Token" in message
    assert REQUEST.action in message
    assert "HTTP 201" in message and "req-1" in message
    assert info.value.status == 201
    assert info.value.request_id == "req-1"
    if subject:
        assert subject not in text_of(info.value)
        assert SECRET not in text_of(info.value)


@pytest.mark.parametrize(
    "expires_at",
    [..., None, "", "tomorrow", "2030-13-45T99:00:00Z", 1893456000, [], {"at": "2030-01-02"}, "2030-01-02T12:00:00ZZ"],
    ids=["missing", "null", "empty", "words", "impossible-date", "epoch-number", "list", "object", "double-z"],
)
def test_a_missing_or_unreadable_expires_at_is_invalid(expires_at: Any) -> None:
    with pytest.raises(AomInvalidResponseError) as info:
        parse_token_response(answer(body=iam_body(expires_at=expires_at)), REQUEST)
    assert "expires_at" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the parser's error is not chained
    assert SECRET not in text_of(info.value)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b"null", b'"token"', b"{}", b'{"token": null}', b'{"token": "abc"}', b'{"token": []}'],
)
def test_a_body_without_a_token_object_is_invalid(body: bytes) -> None:
    with pytest.raises(AomInvalidResponseError) as info:
        parse_token_response(answer(body=body), REQUEST)
    assert SECRET not in text_of(info.value)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, AomBadRequestError),
        (401, AomAuthenticationError),
        (403, AomPermissionError),
        (404, AomNotFoundError),
        (409, AomApiError),
        (429, AomThrottledError),
        (500, AomServerError),
        (503, AomServerError),
        (302, AomApiError),
    ],
)
def test_an_error_status_raises_its_typed_error(status: int, error_type: type[AomApiError]) -> None:
    body = json.dumps({"error": {"code": "IAM.0001", "message": "The username or password is wrong."}}).encode()
    # Even an error answer that carries a token (and a token body) gives no token.
    with pytest.raises(AomError) as info:
        parse_token_response(answer(status, body=body, headers={"Retry-After": "3"}), REQUEST)
    exc = info.value
    assert type(exc) is error_type
    assert isinstance(exc, AomApiError)
    assert exc.status == status
    assert exc.error_code == "IAM.0001"
    assert exc.error_msg == "The username or password is wrong."
    assert exc.request_id == "req-1"
    assert exc.action == REQUEST.action
    assert SECRET not in text_of(exc)


def test_a_throttled_token_request_keeps_retry_after() -> None:
    with pytest.raises(AomThrottledError) as info:
        parse_token_response(answer(429, body=b"{}", headers={"Retry-After": "4"}), REQUEST)
    assert info.value.retry_after == 4.0


def test_an_error_status_with_a_valid_token_body_is_still_an_error() -> None:
    with pytest.raises(AomAuthenticationError) as info:
        parse_token_response(answer(401, body=iam_body()), REQUEST)
    assert SECRET not in text_of(info.value)


@settings(max_examples=200, deadline=None)
@given(
    value=st.text(min_size=1, max_size=100).filter(lambda v: any(not ("!" <= c <= "~") for c in v)),
)
def test_a_token_with_any_character_outside_printable_ascii_is_refused_and_not_echoed(value: str) -> None:
    with pytest.raises(AomInvalidResponseError) as info:
        parse_token_response(answer(subject=value), REQUEST)
    if len(value) >= 4:  # shorter strings may occur in the message by chance ("HTTP", "201")
        assert value not in text_of(info.value)
