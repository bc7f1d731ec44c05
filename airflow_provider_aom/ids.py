"""Ids that become URL path segments, and the project id: one rule each, for what users and AOM send."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_aom.exceptions import AomConfigurationError

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PROJECT_ID_RE = re.compile(r"[A-Za-z0-9]{32}")


def check_id(name: str, value: Any, max_length: int = 64) -> str:
    """Check an id that becomes one path segment; values from templates are untrusted."""
    if not isinstance(value, str):
        raise AomConfigurationError(f"{name} must be a string, got {type(value).__name__}.")
    if not 1 <= len(value) <= max_length:
        raise AomConfigurationError(f"{name} must be 1 to {max_length} characters long, got {len(value)}.")
    if _CONTROL_RE.search(value):
        raise AomConfigurationError(f"{name} must not contain control characters.")
    if value.strip() != value:
        raise AomConfigurationError(f"{name} must not start or end with white space.")
    if value in (".", ".."):
        raise AomConfigurationError(f"{name} must not be {value!r}.")
    return value


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` passes :func:`check_id`: the rule for ids sent by the server too (submit, adoption).

    Checked on every row of an execution list, so without raising (the same rules, in the same order).
    """
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 64
        and not _CONTROL_RE.search(value)
        and value.strip() == value
        and value not in (".", "..")
    )


def check_project_id(value: Any) -> str:
    if not isinstance(value, str) or not _PROJECT_ID_RE.fullmatch(value):
        raise AomConfigurationError(
            "project_id must be the 32-character project id from IAM (letters and digits only)."
        )
    return value
