"""Making untrusted text (anything a server sent) safe to put in a message or a log line."""

from __future__ import annotations

import re

# C0 and C1 controls (a CR/LF would forge a log line), line and paragraph separators, and the
# zero-width and bidirectional formatting characters that can make a line read differently.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _replacement(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: object, limit: int = 300) -> str:
    """``value`` as one visible line: unsafe characters as ``\\xNN`` / ``\\uNNNN``, cut after ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_replacement, text)
