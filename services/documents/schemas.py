"""Validating document metadata: type, removal date, filename, content type."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Any

from overdracht import config
from overdracht.contracts import InvalidInput
from overdracht.timezone import today

_UNSAFE = re.compile(r"[^\w .()+-]", re.UNICODE)


def document_type(value: Any) -> str:
    types = config.document_types()
    if value not in types:
        raise InvalidInput(
            f"Onbekend documenttype; kies uit {', '.join(types)}.", "invalid_document_type"
        )
    return value


def removal_bounds(due_date: date | None, now: date | None = None) -> dict[str, str]:
    """The removal dates allowed: after today; at most due date + 6 weeks, or the horizon."""
    now = now or today()
    if due_date is not None:
        weeks = config.get_int("OVERDRACHT_REMOVAL_AFTER_DUE_WEEKS")
        latest = due_date + timedelta(weeks=weeks)
        reason = f"{weeks} weken na de uitgerekende datum"
    else:
        weeks = config.get_int("OVERDRACHT_REMOVAL_HORIZON_WEEKS")
        latest = now + timedelta(weeks=weeks)
        reason = f"{weeks} weken na vandaag"
    return {
        "min": (now + timedelta(days=1)).isoformat(),
        "max": latest.isoformat(),
        "reason": reason,
    }


def removal_date(value: Any, due_date: date | None, now: date | None = None) -> date:
    """A removal date within removal_bounds, or InvalidInput saying which bound it broke."""
    if not value:
        raise InvalidInput("Verwijderdatum ontbreekt.", "missing_removal_date")
    try:
        parsed = date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            "Verwijderdatum is geen geldige datum (JJJJ-MM-DD).", "invalid_removal_date"
        ) from None
    bounds = removal_bounds(due_date, now)
    if parsed < date.fromisoformat(bounds["min"]):
        raise InvalidInput("De verwijderdatum moet na vandaag liggen.", "removal_date_not_future")
    latest = date.fromisoformat(bounds["max"])
    if parsed > latest:
        raise InvalidInput(
            f"De verwijderdatum mag niet na {latest:%d-%m-%Y} liggen "
            f"(uiterlijk {bounds['reason']}).",
            "removal_date_too_late",
        )
    return parsed


def filename(value: Any) -> str:
    """Keep a readable base name; drop paths, control characters and anything unusual."""
    name = unicodedata.normalize("NFC", str(value or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot else name[:200]
    return name or "document"
