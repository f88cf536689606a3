"""Names people type (a client's maiden name, a provider's full name): one form, one script.

Shared because two services check names the same way and must not drift apart: two
names that look the same must be the same string.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import regex

#: the scripts a name may be written in, one per name (UTS #39 "single script"): a Latin name
#: with a Cyrillic or Greek lookalike letter in it is refused; Common and Inherited characters
#: (spaces, punctuation, combining accents) belong to any script
_SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Georgian", "Hebrew", "Arabic", "Syriac",
    "Thaana", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Tamil", "Telugu", "Kannada",
    "Malayalam", "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Khmer", "Ethiopic",
    "Tifinagh", "Hangul", "Han", "Hiragana", "Katakana",
)  # fmt: skip
_ONE_SCRIPT = tuple(
    regex.compile(rf"[\p{{Script={script}}}\p{{Script=Common}}\p{{Script=Inherited}}]*")
    for script in _SCRIPTS
)
ONE_SCRIPT_MESSAGE = (
    "gebruik gewone letters van één schrift; "
    "geen tekens uit verschillende alfabetten of speciale lettervormen."
)


def normalized(value: Any) -> str:
    """NFC, whitespace collapsed."""
    return unicodedata.normalize("NFC", " ".join(str(value or "").split()))


def one_script(name: str) -> bool:
    """No compatibility forms (fullwidth, mathematical letters, ligatures), one script only."""
    if unicodedata.normalize("NFKC", name) != name:
        return False
    return any(pattern.fullmatch(name) for pattern in _ONE_SCRIPT)
