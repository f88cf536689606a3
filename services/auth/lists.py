"""A region's provider list, as VSVs keep it in Excel and save it as CSV.

Semicolon or comma separated (Dutch Excel writes semicolons), UTF-8 with or without the
BOM Excel puts first. The columns are found by their header, in any order; README,
"Provider lists", names them. Each row is checked on its own: a row with an error is
reported by its number as Excel shows it (the header is row 1) and kept nowhere.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from overdracht.contracts import N_, InvalidInput, filled
from services.auth.accounts import care_provider

#: the largest list auth takes (the gateway's cap on a form is 64 KiB)
MAX_BYTES = 256 * 1024
MAX_ROWS = 2000
#: a row whose address an earlier row has (value: that row's line)
DUPLICATE = N_("Dit e-mailadres staat al op regel %(line)s.")

#: column → the headers that name it (compared without case, spaces, dashes or dots)
COLUMNS = {
    "full_name": ("naam", "volledigenaam", "voorenachternaam", "fullname", "name"),
    "email": ("email", "emailadres", "mail"),
    "phone": ("mobiel", "mobielnummer", "mobieltelefoonnummer", "telefoon", "06nummer", "mobile"),
    "profession": ("beroep", "functie", "profession"),
    "organisation": ("organisatie", "praktijk", "organisation"),
    "agb_code": ("agb", "agbcode"),
}
REQUIRED = ("full_name", "email", "phone", "profession")
#: how a missing column is named in the refusal (its value `missing`)
LABELS = {
    "full_name": N_("naam"),
    "email": N_("e-mail"),
    "phone": N_("mobiel nummer"),
    "profession": N_("beroep"),
}


def unreadable(message: str, params: dict[str, Any] | None = None) -> InvalidInput:
    """The file as a whole cannot be read (not its rows: those are reported one by one).

    An InvalidInput with a code of its own, not a subclass: only registered types cross RPC.
    message is a literal text marked with N_, with `%(name)s` for each of params.
    """
    return InvalidInput(message, "invalid_provider_list", params=params)


def _key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def decode(raw: bytes | str) -> str:
    """The list's text: UTF-8 with or without a BOM, within MAX_BYTES."""
    if len(raw) > MAX_BYTES:
        raise unreadable(
            N_("De lijst is te groot: hoogstens %(kilobytes)s kB."),
            {"kilobytes": MAX_BYTES // 1024},
        )
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unreadable(
            N_(
                "Het bestand is geen UTF-8. Kies in Excel bij Opslaan als: "
                "'CSV UTF-8 (door komma's gescheiden)'."
            )
        ) from None


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _key(name)
        for column, names in COLUMNS.items():
            if key in names and column not in found:
                found[column] = index
    missing = [LABELS[c] for c in REQUIRED if c not in found]
    if missing:
        raise unreadable(
            N_("Regel 1 moet de kolomnamen bevatten; niet gevonden: %(missing)s."),
            {"missing": ", ".join(missing)},
        )
    return found


def parse(raw: bytes | str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, errors): each valid row with its `line`; each error as {line, message}.

    Empty rows (Excel writes `;;;` for them) are skipped but counted, like Excel does.
    Two rows with the same e-mail address: the second is an error.
    """
    text = decode(raw)
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(records)
    except StopIteration:
        raise unreadable(N_("De lijst is leeg.")) from None
    except csv.Error:
        raise unreadable(N_("Regel 1 is geen geldige CSV.")) from None
    columns = _columns(header)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line in range(2, MAX_ROWS + 3):
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error:
            errors.append({"line": line, "message": N_("Deze regel is geen geldige CSV.")})
            continue
        if line > MAX_ROWS + 1:
            raise unreadable(N_("De lijst heeft meer dan %(rows)s regels."), {"rows": MAX_ROWS})
        if not any(cell.strip() for cell in record):
            continue
        data = {c: record[i] if i < len(record) else "" for c, i in columns.items()}
        try:
            row = care_provider(data)
        except InvalidInput as exc:  # its fields: for the page to show in its language
            errors.append({"line": line, "message": exc.message, "fields": exc.fields})
            continue
        if row["email"].lower() in seen:
            earlier = {"line": seen[row["email"].lower()]}
            errors.append(
                {
                    "line": line,
                    "message": filled(DUPLICATE, earlier),
                    "template": DUPLICATE,
                    "params": earlier,
                }
            )
            continue
        seen[row["email"].lower()] = line
        rows.append({"line": line, **row})
    return rows, errors
