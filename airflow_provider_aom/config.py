"""The ``huaweicloud_aom`` connection, parsed and checked before any request.

Field reference (also in ``docs/connection.md``):

* ``host``: optional AOM endpoint, a full base URL (``http://127.0.0.1:8089``);
  empty means ``https://aom.{region}.myhuaweicloud.com``.
* ``login`` / ``password``: Access Key ID / Secret Access Key (``aksk``), IAM
  user / password (``password``), or nothing / an IAM token (``token``).
* ``extra``: ``auth_type``, ``region``, ``project_id``, ``domain_name``,
  ``iam_endpoint``, ``security_token``, ``user_name``, ``verify``, ``timeout``,
  ``proxies``, ``max_response_bytes``, ``max_list_bytes``, ``retry_attempts``, ``retry_max_wait``,
  ``retry_total``, ``submit_clock_skew``, ``console_url`` (template of the console link).
  Legacy ``extra__huaweicloud_aom__<field>`` keys are read too.

Secrets are stripped of surrounding white space (a value pasted from a file keeps its
newline); a control or non-latin-1 character left inside a value that travels in a header
is an error naming the field, never showing the value.

When ``auth_type`` is absent it is inferred: ``domain_name`` set → ``password``;
login and password → ``aksk``; password alone → ``token``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_aom import CONN_TYPE
from airflow_provider_aom.exceptions import AomConfigurationError
from airflow_provider_aom.retry import RetryPolicy
from airflow_provider_aom.vocabulary import (
    DEFAULT_TIMEOUT,
    MAX_LIST_BYTES,
    MAX_LIST_BYTES_LIMIT,
    MAX_RESPONSE_BYTES,
    MAX_RESPONSE_BYTES_LIMIT,
    MAX_SETTING_SECONDS,
    AuthType,
    header_value_problem,
    is_project_id,
)

AUTH_TYPES = tuple(a.value for a in AuthType)

_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

log = logging.getLogger(__name__)


def _mask(secret: str | None) -> None:
    """Register a secret with Airflow's masker as soon as it is read."""
    if not secret:
        return
    # Resolved on first use: the masker is not needed to parse a DAG file.
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


def _secret(value: Any) -> str | None:
    """A secret as read (masked), then stripped of surrounding white space (masked too)."""
    if value is None or value == "":
        return None
    text = str(value)
    _mask(text)
    stripped = text.strip()
    if stripped != text:
        _mask(stripped)
    return stripped or None


def _check_header_value(value: str | None, field_name: str, conn_id: str) -> None:
    """A value sent in a header must be one line of latin-1; the error names the field, never the value."""
    if value is None:
        return
    problem = header_value_problem(value)
    if problem is not None:
        raise _error(
            f"Connection {conn_id!r}: {field_name} contains {problem}; remove it (credentials are ASCII, one line)."
        )


def _error(message: str) -> Exception:
    return AomConfigurationError(message)


def _extra_field(extra: Mapping[str, Any], name: str) -> Any:
    """Read ``name`` from extra, falling back to the legacy prefixed key; empty means absent."""
    for key in (name, f"extra__{CONN_TYPE}__{name}"):
        value = extra.get(key)
        if value is not None and value != "":
            return value
    return None


def _parse_verify(value: Any, conn_id: str) -> bool | str | None:
    """``extra.verify``: None when absent (then the environment's CA bundle, or certifi's, applies)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    if not os.path.exists(text):
        raise _error(
            f"Connection {conn_id!r}: extra.verify is neither true/false nor an existing CA bundle "
            f"path ({text!r} does not exist)."
        )
    return text


def _parse_number(extra: Mapping[str, Any], name: str, default: float, low: float, high: float, conn_id: str) -> float:
    value = _extra_field(extra, name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _error(f"Connection {conn_id!r}: extra.{name} must be a number, got {value!r}.")
    if not low < number <= high:
        raise _error(f"Connection {conn_id!r}: extra.{name} must be more than {low:g} and at most {high:g}.")
    return number


def _parse_base_url(value: str, what: str, conn_id: str) -> str:
    url = value.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _error(f"Connection {conn_id!r}: {what} must be an http(s) URL, got {value!r}.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _error(f"Connection {conn_id!r}: {what} must be a plain base URL (no query, fragment or user info).")
    return url


def _parse_console_url(value: Any, conn_id: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    try:
        text.format(region="r", workflow_id="w", execution_id="e")
    except (KeyError, IndexError, ValueError):
        raise _error(
            f"Connection {conn_id!r}: extra.console_url may only use {{region}}, {{workflow_id}} and {{execution_id}}."
        )
    if not text.startswith(("https://", "http://")):
        raise _error(f"Connection {conn_id!r}: extra.console_url must be an http(s) URL template.")
    return text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AomConnectionConfig:
    """Settings of one ``huaweicloud_aom`` connection; secrets are excluded from ``repr``."""

    conn_id: str
    auth_type: str
    endpoint: str
    iam_endpoint: str
    region: str | None = None
    project_id: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    domain_name: str | None = None
    token: str | None = field(default=None, repr=False)
    #: None: not set in the connection (the environment's CA bundle applies, else certifi's).
    verify: bool | str | None = None
    #: Total time of one HTTP exchange: connect, send and the whole answer.
    timeout: float = DEFAULT_TIMEOUT
    #: None: not set (the environment's proxy variables apply); ``{}``: no proxy at all.
    proxies: Mapping[str, str] | None = None
    max_response_bytes: int = MAX_RESPONSE_BYTES
    #: Cap of the execution list's body (read as a stream, counted after decompression).
    max_list_bytes: int = MAX_LIST_BYTES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Only when the server sends no usable ``Date`` header: how far AOM's clock may be off ours when
    #: matching executions to an ambiguous submit.
    submit_clock_skew: float = 10.0
    console_url: str | None = None
    #: The IAM user name the connection acts as (``extra.user_name``); checked against an adopted
    #: execution's ``created_by``. Looked up from IAM when absent.
    user_name: str | None = None

    @classmethod
    def from_connection(cls, conn: Any) -> AomConnectionConfig:
        """Build from an Airflow ``Connection`` (sync; extras via ``extra_dejson``)."""
        return cls.from_parts(
            conn_id=conn.conn_id,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson or {},
        )

    @classmethod
    def from_parts(
        cls,
        *,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
    ) -> AomConnectionConfig:
        """Validate the connection's fields; the error names the field and the auth type."""
        login = (login or "").strip() or None
        password = _secret(password)
        security_token = _secret(_extra_field(extra, "security_token"))
        domain_name = _extra_field(extra, "domain_name")
        auth_type = _extra_field(extra, "auth_type")
        if auth_type is None:
            if domain_name:
                auth_type = "password"
            elif login and password:
                auth_type = "aksk"
            elif password:
                auth_type = "token"
            else:
                raise _error(
                    f"Connection {conn_id!r}: cannot tell the auth type. Set extra.auth_type to one of "
                    f"{', '.join(AUTH_TYPES)}, or fill login and password (AK/SK), or password alone "
                    "(IAM token), or extra.domain_name with login and password (IAM password)."
                )
        auth_type = str(auth_type).strip().lower()
        if auth_type not in AUTH_TYPES:
            raise _error(
                f"Connection {conn_id!r}: extra.auth_type is {auth_type!r}; use one of {', '.join(AUTH_TYPES)}."
            )

        region = _extra_field(extra, "region")
        if region is not None:
            region = str(region).strip()
            if not _REGION_RE.match(region):
                raise _error(f"Connection {conn_id!r}: extra.region {region!r} is not a region id like cn-north-4.")
        project_id = _extra_field(extra, "project_id")
        if project_id is not None:
            project_id = str(project_id).strip()
            if not is_project_id(project_id):
                raise _error(
                    f"Connection {conn_id!r}: extra.project_id must be 32 letters or digits "
                    f"(the project id from IAM), got {len(project_id)} characters."
                )

        host = (host or "").strip()
        if host:
            endpoint = _parse_base_url(host, "host (the AOM endpoint)", conn_id)
        elif region:
            endpoint = f"https://aom.{region}.myhuaweicloud.com"
        else:
            raise _error(f"Connection {conn_id!r}: set extra.region (e.g. cn-north-4) or host (the AOM endpoint URL).")

        iam_value = _extra_field(extra, "iam_endpoint")
        if iam_value:
            iam_endpoint = _parse_base_url(str(iam_value), "extra.iam_endpoint", conn_id)
        elif region:
            iam_endpoint = f"https://iam.{region}.myhuaweicloud.com"
        else:
            iam_endpoint = ""

        def need(value: Any, what: str) -> None:
            if not value:
                raise _error(f"Connection {conn_id!r} (auth_type {auth_type}): {what} is required.")

        kwargs: dict[str, Any] = {}
        if auth_type == "aksk":
            need(login, "login (the Access Key ID)")
            need(password, "password (the Secret Access Key)")
            _check_header_value(login, "login (the Access Key ID)", conn_id)
            _check_header_value(security_token, "extra.security_token", conn_id)
            kwargs.update(access_key=login, secret_key=password, security_token=security_token)
        elif auth_type == "password":
            need(login, "login (the IAM user name)")
            need(password, "password (the IAM user's password)")
            need(domain_name, "extra.domain_name (the account name)")
            need(region or project_id, "extra.region or extra.project_id (the token's project scope)")
            need(iam_endpoint, "extra.iam_endpoint or extra.region (where to get tokens)")
            kwargs.update(username=login, password=password, domain_name=str(domain_name))
        else:
            need(password, "password (the IAM token)")
            _check_header_value(password, "password (the IAM token)", conn_id)
            kwargs.update(token=password)
        if not project_id and auth_type != "password" and not (iam_endpoint and region):
            raise _error(
                f"Connection {conn_id!r} (auth_type {auth_type}): extra.project_id is required, or "
                "extra.region (with IAM reachable) to look it up."
            )

        # Not _extra_field: an empty object is a value here (no proxy, whatever the environment says).
        proxies = extra.get("proxies", extra.get(f"extra__{CONN_TYPE}__proxies"))
        if proxies == "":
            proxies = None
        if proxies is not None and not (
            isinstance(proxies, Mapping) and all(isinstance(v, str) and v for v in proxies.values())
        ):
            raise _error(
                f'Connection {conn_id!r}: extra.proxies must be an object like {{"https": "http://proxy:3128"}} '
                "(or {} for no proxy at all)."
            )
        if proxies is not None:
            for url in proxies.values():
                _mask(urlsplit(url if "://" in url else "http://" + url).password)
        user_name = _extra_field(extra, "user_name")
        if user_name is not None:
            user_name = str(user_name).strip() or None

        config = cls(
            conn_id=conn_id,
            auth_type=auth_type,
            endpoint=endpoint,
            iam_endpoint=iam_endpoint,
            region=region,
            project_id=project_id,
            verify=_parse_verify(_extra_field(extra, "verify"), conn_id),
            timeout=_parse_number(extra, "timeout", DEFAULT_TIMEOUT, 0, MAX_SETTING_SECONDS, conn_id),
            proxies=dict(proxies) if proxies is not None else None,
            max_response_bytes=int(
                _parse_number(
                    extra,
                    "max_response_bytes",
                    MAX_RESPONSE_BYTES,
                    64 * 1024 - 1,
                    MAX_RESPONSE_BYTES_LIMIT,
                    conn_id,
                )
            ),
            max_list_bytes=int(
                _parse_number(
                    extra, "max_list_bytes", MAX_LIST_BYTES, 64 * 1024 - 1, MAX_LIST_BYTES_LIMIT, conn_id
                )
            ),
            user_name=user_name,
            retry=RetryPolicy(
                attempts=int(_parse_number(extra, "retry_attempts", RetryPolicy.attempts, 0, 20, conn_id)),
                max_wait=_parse_number(extra, "retry_max_wait", RetryPolicy.max_wait, 0, 600, conn_id),
                total=_parse_number(extra, "retry_total", RetryPolicy.total, 0, MAX_SETTING_SECONDS, conn_id),
            ),
            submit_clock_skew=_parse_number(extra, "submit_clock_skew", 10.0, -1, MAX_SETTING_SECONDS, conn_id),
            console_url=_parse_console_url(_extra_field(extra, "console_url"), conn_id),
            **kwargs,
        )
        config.warn_if_plain_http()
        return config

    def warn_if_plain_http(self) -> None:
        """Credentials over plain HTTP are only acceptable to loopback (e.g. the emulator)."""
        for url in (self.endpoint, self.iam_endpoint):
            parts = urlsplit(url)
            if url and parts.scheme == "http" and not is_loopback(parts.hostname or ""):
                warnings.warn(
                    f"Connection {self.conn_id!r} sends credentials over plain HTTP to {parts.hostname}; use https.",
                    UserWarning,
                    stacklevel=3,
                )
