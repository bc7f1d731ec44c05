"""escape(): untrusted text as one visible line, cut at a limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_aom.escaping import escape

C0 = [chr(c) for c in range(0x00, 0x20)]
C1_AND_DEL = [*(chr(c) for c in range(0x7F, 0xA0)), "\xad"]  # and the soft hyphen, invisible
# Zero-width space/non-joiner/joiner, LRM/RLM, line/paragraph separators, LRE/RLE/PDF/LRO/RLO,
# the isolates LRI/RLI/FSI/PDI, the zero-width no-break space (BOM), the Arabic
# letter mark, Mongolian vowel separator, word joiner and invisible operators, and lone surrogates (a line
# holding one cannot be written as UTF-8).
FORMATTING = [
    *(chr(c) for c in range(0x200B, 0x2010)),
    *(chr(c) for c in range(0x2028, 0x202F)),
    *(chr(c) for c in range(0x2060, 0x2065)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\ufeff",
    "\u061c",
    "\u180e",
    "\ud800",
    "\udfff",
]
SURROGATES = [chr(c) for c in range(0xD800, 0xE000)]
UNSAFE = C0 + C1_AND_DEL + FORMATTING + SURROGATES

#: Visible characters around the unsafe ranges, and beyond ASCII: kept as they are.
SAFE_NEIGHBOURS = [" ", "~", "\xa0", "é", "\u200a", "\u2010", "\u2027", "\u202f", "\uff01", "中", "😀"]


def expected_escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# --------------------------------------------------------------------------- unsafe characters


@pytest.mark.parametrize(("ch", "escaped"), [("\n", "\\x0a"), ("\r", "\\x0d"), ("\t", "\\x09"), ("\x00", "\\x00")])
def test_line_breaks_tabs_and_nul_become_hex_escapes(ch: str, escaped: str) -> None:
    assert escape(f"a{ch}b") == f"a{escaped}b"


def test_a_forged_log_line_stays_on_one_line() -> None:
    forged = "wf-1\r\n2030-01-01 00:00:00 INFO Execution succeeded"
    assert escape(forged) == "wf-1\\x0d\\x0a2030-01-01 00:00:00 INFO Execution succeeded"


@pytest.mark.parametrize("ch", C0 + C1_AND_DEL, ids=[f"U+{ord(c):04X}" for c in C0 + C1_AND_DEL])
def test_every_c0_c1_control_and_del_is_escaped_as_two_lowercase_hex_digits(ch: str) -> None:
    assert escape(ch) == f"\\x{ord(ch):02x}"


@pytest.mark.parametrize("ch", FORMATTING, ids=[f"U+{ord(c):04X}" for c in FORMATTING])
def test_zero_width_bidi_and_separator_characters_are_escaped_as_four_hex_digits(ch: str) -> None:
    assert escape(f"x{ch}y") == f"x\\u{ord(ch):04x}y"


def test_a_right_to_left_override_cannot_reverse_what_follows() -> None:
    # "exe.txt" shown reversed after U+202E would read as "txt.exe".
    assert escape("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"


@pytest.mark.parametrize("ch", SAFE_NEIGHBOURS, ids=[f"U+{ord(c):04X}" for c in SAFE_NEIGHBOURS])
def test_visible_characters_are_kept(ch: str) -> None:
    assert escape(f"a{ch}b") == f"a{ch}b"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(UNSAFE) | st.characters(), max_size=200))
def test_the_result_is_one_line_without_any_unsafe_character(text: str) -> None:
    out = escape(text, limit=1000)
    assert not set(out) & set(UNSAFE)
    assert len(out.splitlines()) <= 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(UNSAFE) | st.characters(), max_size=200))
def test_each_unsafe_character_is_replaced_by_its_escape_and_nothing_else_changes(text: str) -> None:
    assert escape(text, limit=1000) == "".join(expected_escape(c) if c in UNSAFE else c for c in text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters=UNSAFE), max_size=300))
def test_safe_text_within_the_limit_is_unchanged(text: str) -> None:
    assert escape(text) == text


# --------------------------------------------------------------------------- truncation


def test_the_default_limit_is_300_characters() -> None:
    assert escape("a" * 300) == "a" * 300
    assert escape("a" * 301) == "a" * 300 + "…"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 3, "abc…"),
        ("abc", 3, "abc"),
        ("ab", 3, "ab"),
        ("abcd", 0, "…"),
        ("", 0, ""),
        ("abc…", 4, "abc…"),  # a marker of its own is not a cut
    ],
)
def test_text_over_the_limit_is_cut_and_marked(text: str, limit: int, expected: str) -> None:
    assert escape(text, limit) == expected


def test_the_limit_counts_characters_of_the_input_and_never_cuts_an_escape() -> None:
    assert escape("\n" * 5, 3) == "\\x0a" * 3 + "…"
    assert escape("ab\u202ecd", 3) == "ab\\u202e…"


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(UNSAFE) | st.characters(), max_size=120), limit=st.integers(0, 100))
def test_truncation_keeps_the_first_limit_characters_escaped_then_the_marker(text: str, limit: int) -> None:
    out = escape(text, limit)
    head = escape(text[:limit], limit)
    if len(text) > limit:
        assert out == head + "…"
    else:
        assert out == head == escape(text, 10_000)


# --------------------------------------------------------------------------- non-str inputs


class Hostile:
    def __str__(self) -> str:
        return "line1\nline2\u202e"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None"),
        (42, "42"),
        (1.5, "1.5"),
        (True, "True"),
        (b"a\nb", "b'a\\nb'"),  # bytes are shown as their repr, which is already one line
        (["a", 1], "['a', 1]"),
        ({"k": "v\n"}, "{'k': 'v\\n'}"),
        (ValueError("bad\r\nvalue"), "bad\\x0d\\x0avalue"),
        (Hostile(), "line1\\x0aline2\\u202e"),
    ],
    ids=["none", "int", "float", "bool", "bytes", "list", "dict", "exception", "hostile-str"],
)
def test_non_str_values_are_escaped_as_their_str(value: object, expected: str) -> None:
    assert escape(value) == expected


def test_non_str_values_are_cut_at_the_limit_too() -> None:
    value = list(range(1000))
    assert escape(value, 10) == str(value)[:10] + "…"


def test_a_str_subclass_is_escaped_as_text() -> None:
    class Name(str):
        def __str__(self) -> str:
            return "not this"

    assert escape(Name("wf\n1")) == "wf\\x0a1"
