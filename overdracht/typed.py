"""What people type that two services check alike: names and Dutch phone numbers.

Shared so the checks cannot drift apart: two names that look the same must be the same
string, and a number must be stored in one form, whichever service keeps it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import phonenumbers
import regex

from overdracht.contracts import InvalidInput

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


def normalized(value: Any) -> str:
    """NFC, whitespace collapsed."""
    return unicodedata.normalize("NFC", " ".join(str(value or "").split()))


def one_script(name: str) -> bool:
    """No compatibility forms (fullwidth, mathematical letters, ligatures), one script only.

    A name refused here is refused in the same words wherever it is typed, each field's
    text written out whole where it is checked (for the catalogue, gateway/i18n.py):
    "<Veld>: gebruik gewone letters van één schrift; geen tekens uit verschillende
    alfabetten of speciale lettervormen."
    """
    if unicodedata.normalize("NFKC", name) != name:
        return False
    return any(pattern.fullmatch(name) for pattern in _ONE_SCRIPT)


#: how a phone number may be typed: digits, spaces, dashes, brackets, one leading +
_PHONE_TYPED = re.compile(r"\+?[0-9]+")


def dutch_phone(value: Any, message: str, mobile: bool = False) -> str:
    """A valid Dutch number (phonenumbers' metadata) in its national 10-digit form (06…, 020…).

    Raise InvalidInput(message) otherwise (a literal text, marked with N_ where it is
    written); with mobile, only mobile numbers pass.
    """
    typed = re.sub(r"[\s\-()]", "", str(value or ""))
    if not _PHONE_TYPED.fullmatch(typed):
        raise InvalidInput(message, "invalid_phone")
    try:
        number = phonenumbers.parse(typed, "NL")
    except phonenumbers.NumberParseException:
        raise InvalidInput(message, "invalid_phone") from None
    national = "0" + phonenumbers.national_significant_number(number)
    if (
        not phonenumbers.is_valid_number_for_region(number, "NL")
        or len(national) != 10
        or (mobile and phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE)
    ):
        raise InvalidInput(message, "invalid_phone")
    return national
