"""Validating document metadata: type, removal date, filename, content type."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Any

from overdracht import config
from overdracht.contracts import N_, InvalidInput
from overdracht.timezone import today

_UNSAFE = re.compile(r"[^\w .()+-]", re.UNICODE)
#: what follows a name's last dot counts as its extension when it looks like one
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,8}")
MAX_FILENAME = 200

#: per allowed content type: the extensions that name it, the canonical one (as filetype's) first
EXTENSIONS = {
    "application/pdf": ("pdf",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/tiff": ("tif", "tiff"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("docx",),
}


def document_type(value: Any) -> str:
    types = config.document_types()
    if value not in types:
        raise InvalidInput(
            "Onbekend documenttype; kies uit %(types)s.",
            "invalid_document_type",
            params={"types": ", ".join(types)},
        )
    return value


#: why the latest removal date is what it is, each with the value `weeks`; the bound's
#: `reason` is the one that applies, and `reason_template` and `reason_params` let a page
#: show it in another language
AFTER_DUE = N_("%(weeks)s weken na de uitgerekende datum")
AFTER_TODAY = N_("%(weeks)s weken na vandaag")
AFTER_PLACING = N_("%(weeks)s weken na plaatsing")
#: the refusal of a date past that bound, per reason (values `day` and `weeks`)
TOO_LATE = {
    AFTER_DUE: N_(
        "De verwijderdatum mag niet na %(day)s liggen "
        "(uiterlijk %(weeks)s weken na de uitgerekende datum)."
    ),
    AFTER_TODAY: N_(
        "De verwijderdatum mag niet na %(day)s liggen (uiterlijk %(weeks)s weken na vandaag)."
    ),
    AFTER_PLACING: N_(
        "De verwijderdatum mag niet na %(day)s liggen (uiterlijk %(weeks)s weken na plaatsing)."
    ),
}


def removal_bounds(
    due_date: date | None, now: date | None = None, placed_on: date | None = None
) -> dict[str, Any]:
    """The removal dates allowed: after today; at most due date + 6 weeks, or the horizon
    from the day it was placed (today, for a document still to be placed), so that moving
    a date again and again never keeps a document longer than placing it could."""
    now = now or today()
    if due_date is not None:
        weeks = config.get_int("OVERDRACHT_REMOVAL_AFTER_DUE_WEEKS")
        latest = due_date + timedelta(weeks=weeks)
        reason = AFTER_DUE
    else:
        weeks = config.get_int("OVERDRACHT_REMOVAL_HORIZON_WEEKS")
        latest = (placed_on or now) + timedelta(weeks=weeks)
        reason = AFTER_TODAY if placed_on is None else AFTER_PLACING
    return {
        "min": (now + timedelta(days=1)).isoformat(),
        "max": latest.isoformat(),
        "reason": reason % {"weeks": weeks},
        "reason_template": reason,
        "reason_params": {"weeks": weeks},
    }


def removal_date(
    value: Any, due_date: date | None, now: date | None = None, placed_on: date | None = None
) -> date:
    """A removal date within removal_bounds, or InvalidInput saying which bound it broke."""
    if not value:
        raise InvalidInput("Verwijderdatum ontbreekt.", "missing_removal_date")
    try:
        parsed = date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            "Verwijderdatum is geen geldige datum (JJJJ-MM-DD).", "invalid_removal_date"
        ) from None
    bounds = removal_bounds(due_date, now, placed_on)
    if parsed < date.fromisoformat(bounds["min"]):
        raise InvalidInput("De verwijderdatum moet na vandaag liggen.", "removal_date_not_future")
    latest = date.fromisoformat(bounds["max"])
    if parsed > latest:
        raise InvalidInput(
            TOO_LATE[bounds["reason_template"]],
            "removal_date_too_late",
            params={"day": latest.strftime("%d-%m-%Y"), **bounds["reason_params"]},
        )
    return parsed


def filename(value: Any) -> str:
    """Keep a readable base name; drop paths, control characters and anything unusual."""
    name = unicodedata.normalize("NFC", str(value or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot else name[:MAX_FILENAME]
    return name or "document"


def filename_for(name: str, content_type: str | None) -> str:
    """A sanitised name whose extension says what the bytes are, whatever the sender called it.

    An extension of the detected type's family is kept as typed (scan.JPG, foto.jpeg); any
    other is replaced (x.html of a PDF is x.pdf); a name without one gets the canonical one.
    A type without known extensions leaves the name as it is.
    """
    allowed = EXTENSIONS.get(content_type or "")
    if not allowed:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and _EXTENSION.fullmatch(ext) and not ext.isdigit():
        if ext.lower() in allowed:
            return name
    else:
        stem = name  # no extension: "verslag", "Echo 20.5 weken", "versie.2024"
    suffix = "." + allowed[0]
    return (stem[: MAX_FILENAME - len(suffix)].rstrip(" .") or "document") + suffix
