"""Huawei Cloud ``SDK-HMAC-SHA256`` request signing (AK/SK), transport-free.

The algorithm is the one of Huawei's official SDK signer (see ``docs/`` and the
reference ``aom-api.md`` section 3.2). The same canonicalisation serves the
client (:func:`sign_headers`) and the emulator's verification
(:func:`parse_authorization` + :func:`compute_signature`), so both sides agree
by construction and the test-suite pins both to Huawei's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HEADER_DATE = "X-Sdk-Date"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"


def encode_segment(value: str) -> str:
    """``value`` as one path segment or query part: RFC 3986 unreserved characters stay, "/" is encoded too."""
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Decode the path, re-encode each segment, and always end with ``/``."""
    url_path = "/".join(encode_segment(segment) for segment in unquote(path).split("/"))
    return url_path if url_path.endswith("/") else url_path + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs, each side percent-encoded, joined by ``&``.

    The same string is sent on the wire, so what is signed is what is sent.
    """
    return "&".join(f"{encode_segment(k)}={encode_segment(v)}" for k, v in sorted(params))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased, sorted header names; names containing ``_`` are never signed."""
    return sorted(name.lower() for name in headers if "_" not in name)


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    if not body:
        return EMPTY_BODY_SHA256
    for name, value in headers.items():
        if name.lower() == HEADER_CONTENT_SHA256.lower() and value:
            return value
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    """The canonical request string; ``query`` is an already canonical query string."""
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    header_lines = "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            query,
            header_lines,
            ";".join(signed_headers),
            payload_hash(body, headers),
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def compute_signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def format_sdk_date(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime(DATE_FORMAT)


def sign_headers(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    sdk_date: str | None = None,
) -> dict[str, str]:
    """Return ``headers`` plus ``X-Sdk-Date``, ``Host`` and ``Authorization``.

    ``host`` is the ``Host`` header value exactly as it is sent (with a port when
    the URL has one). Every header passed in is signed, so pass only the ones
    that will be sent unchanged (never ``Content-Length`` or ``User-Agent`` that a
    transport may rewrite).
    """
    result = dict(headers)
    if not any(name.lower() == "x-sdk-date" for name in result):
        result[HEADER_DATE] = sdk_date or format_sdk_date()
    if not any(name.lower() == "host" for name in result):
        result["Host"] = host
    date_value = next(v for k, v in result.items() if k.lower() == "x-sdk-date")
    names = signed_header_names(result)
    canonical = canonical_request(method, path, query, result, names, body)
    signature = compute_signature(secret_key, string_to_sign(canonical, date_value))
    result["Authorization"] = f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return result


@dataclass(frozen=True)
class ParsedAuthorization:
    access_key: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """Parse an ``Authorization: SDK-HMAC-SHA256 Access=…`` header; None if malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    try:
        return ParsedAuthorization(
            access_key=parts["Access"],
            signed_headers=[h for h in parts["SignedHeaders"].split(";") if h],
            signature=parts["Signature"],
        )
    except KeyError:
        return None
