"""Making untrusted text (anything a server sent) safe to put in a message or a log line."""

from __future__ import annotations

import re

# C0 and C1 controls (a CR/LF would forge a log line), line and paragraph separators, the invisible
# and bidirectional formatting characters that can make a line read differently (soft hyphen, Arabic
# letter mark, Mongolian vowel separator, zero-width ones, word joiner, isolates, BOM), and lone
# surrogates (json.loads makes them from "\ud800"; a line holding one cannot be written as UTF-8).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _replacement(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: object, limit: int = 300) -> str:
    """``value`` as one visible line: unsafe characters as ``\\xNN`` / ``\\uNNNN``, cut after ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_replacement, text)
