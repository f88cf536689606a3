"""Validating what providers type: BSN (elfproef), phone, names and dates."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from overdracht.contracts import N_, InvalidInput, checked
from overdracht.identifiers import (  # noqa: F401 - clients' schemas, as before
    PHONE_MESSAGE,
    birth_date,
    bsn,
    keyed_hash,
    parse_date,
    phone,
    search_criteria,
)
from overdracht.timezone import today
from overdracht.typed import normalized, one_script

_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)*$")


def due_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    parsed = parse_date(
        value,
        "due_date",
        N_("Uitgerekende datum ontbreekt."),
        N_("Uitgerekende datum is geen geldige datum (JJJJ-MM-DD)."),
    )
    # documents may stay until 6 weeks after it, so an older due date leaves no removal date
    if not today() - timedelta(weeks=6) < parsed <= today() + timedelta(weeks=45):
        raise InvalidInput(
            "Uitgerekende datum: hoogstens 6 weken geleden en binnen 45 weken.", "invalid_due_date"
        )
    return parsed


def maiden_name(value: Any) -> str:
    name = normalized(value)
    if not name:
        raise InvalidInput("Geboortenaam ontbreekt.", "missing_maiden_name")
    if len(name) > 100 or not _NAME.match(name):
        raise InvalidInput("Geboortenaam: alleen letters, spatie, - of '.", "invalid_maiden_name")
    if not one_script(name):
        raise InvalidInput(
            "Geboortenaam: gebruik gewone letters van één schrift; "
            "geen tekens uit verschillende alfabetten of speciale lettervormen.",
            "invalid_maiden_name",
        )
    return name


def new_client(data: Any) -> dict[str, Any]:
    """A new client's fields, checked and normalized; every wrong field named at once."""
    if not isinstance(data, dict):
        raise InvalidInput("Cliëntgegevens ontbreken.")
    return checked(
        {
            "maiden_name": lambda: maiden_name(data.get("maiden_name")),
            "birth_date": lambda: birth_date(data.get("birth_date")),
            "bsn": lambda: bsn(data.get("bsn")),
            "phone": lambda: phone(data.get("phone")),
            "due_date": lambda: due_date(data.get("due_date")),
        }
    )
