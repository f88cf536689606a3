"""What the pages call things: event names, outcomes and roles, in the page's language.

The tables hold lazy texts (translated when shown); `translated()` gives a table as plain
texts in this request's language, for a template or anything kept or serialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext

from overdracht import contracts as c

ROLE_LABELS = {
    c.ZORGVERLENER: lazy_gettext("Zorgverlener"),
    c.COORDINATOR: lazy_gettext("Coördinator"),
    c.BEHEERDER: lazy_gettext("Beheerder"),
    c.AUDITOR: lazy_gettext("Auditor"),
}

#: every event the log holds, as an auditor reads it (tests check that none is missing)
EVENT_LABELS = {
    c.PROVIDER_REGISTERED: lazy_gettext("Account geregistreerd"),
    c.PROVIDER_LOGGED_IN: lazy_gettext("Ingelogd"),
    c.PROVIDER_LOGGED_OUT: lazy_gettext("Uitgelogd"),
    c.PROVIDER_LOGIN_FAILED: lazy_gettext("Inloggen mislukt"),
    c.PROVIDER_LOCKED: lazy_gettext("Account geblokkeerd"),
    c.PROVIDER_PASSWORD_RESET: lazy_gettext("Wachtwoord opnieuw ingesteld door beheer"),
    c.PROVIDER_PASSWORD_CHANGED: lazy_gettext("Wachtwoord gewijzigd"),
    c.PROVIDER_UNLOCKED: lazy_gettext("Account ontgrendeld"),
    c.PROVIDER_INVITED: lazy_gettext("Uitnodiging verstuurd"),
    c.PROVIDER_ACTIVATED: lazy_gettext("Account geactiveerd"),
    c.PROVIDER_DEACTIVATED: lazy_gettext("Account gedeactiveerd"),
    c.PROVIDER_TOTP_ENROLLED: lazy_gettext("Authenticator-app ingesteld"),
    c.SECOND_FACTOR_POLICY_CHANGED: lazy_gettext("Tweestapsbeleid gewijzigd"),
    c.PROVIDER_LIST_SUBMITTED: lazy_gettext("Lijst zorgverleners aangemeld"),
    c.PROVIDER_LIST_REGISTERED: lazy_gettext("Lijst zorgverleners geregistreerd"),
    c.PROVIDER_LIST_REJECTED: lazy_gettext("Lijst zorgverleners afgewezen"),
    c.PROVIDER_LIST_EXPIRED: lazy_gettext("Lijst zorgverleners verlopen"),
    c.CLIENT_SEARCHED: lazy_gettext("Cliënt gezocht"),
    c.CLIENT_CREATED: lazy_gettext("Cliënt toegevoegd"),
    c.CLIENT_DELETED: lazy_gettext("Cliënt verwijderd (laatste document weg)"),
    c.CLIENTS_LISTED: lazy_gettext("Mijn cliënten bekeken"),
    c.RELATIONSHIP_ESTABLISHED: lazy_gettext("Behandelrelatie vastgelegd"),
    c.DOCUMENT_UPLOADED: lazy_gettext("Document geplaatst"),
    c.DOCUMENT_LISTED: lazy_gettext("Documentenlijst bekeken"),
    c.DOCUMENT_DOWNLOADED: lazy_gettext("Document geopend"),
    c.DOCUMENT_DELIVERY: lazy_gettext("Document verstuurd"),
    c.DOCUMENT_DELETED: lazy_gettext("Document verwijderd"),
    c.DOCUMENT_REMOVAL_DATE_MOVED: lazy_gettext("Verwijderdatum gewijzigd"),
    c.DOCUMENT_EXPIRED: lazy_gettext("Document verlopen en gewist"),
    c.ACCESS_DENIED: lazy_gettext("Toegang geweigerd"),
    c.READ_WITHHELD: lazy_gettext("Antwoord niet gegeven"),
    c.AUDIT_READ: lazy_gettext("Auditlog gelezen"),
    c.AUDIT_EXPORTED: lazy_gettext("Auditlog geëxporteerd"),
    c.AUDIT_PURGED: lazy_gettext("Oude auditregels verwijderd (bewaartermijn voorbij)"),
}

OUTCOME_LABELS = {
    "success": lazy_gettext("gelukt"),
    "found": lazy_gettext("gevonden"),
    "not_found": lazy_gettext("niet gevonden"),
    "denied": lazy_gettext("geweigerd"),
    "conflict": lazy_gettext("bestond al"),
    "failure": lazy_gettext("mislukt"),
    c.DELIVERED: lazy_gettext("afgeleverd"),
    c.DELIVERY_FAILED: lazy_gettext("mislukt"),
    c.DELIVERY_INTERRUPTED: lazy_gettext("afgebroken"),
    "not_shown": lazy_gettext("niet getoond"),
}


def translated(table: Mapping[str, Any]) -> dict[str, Any]:
    """A table of lazy texts (or of tuples of them) as plain texts in this language."""
    return {
        key: tuple(str(v) for v in value) if isinstance(value, tuple) else str(value)
        for key, value in table.items()
    }


def actor_label(actor: dict | None) -> str:
    """Who acted, for people: name and role (or profession), else what the log knows."""
    actor = actor or {}
    if actor.get("type") == "system":
        return _("Overdracht (automatisch)")
    who = actor.get("name") or actor.get("username") or actor.get("type") or _("onbekend")
    profession = actor.get("profession")
    role = _(profession) if profession else str(ROLE_LABELS.get(actor.get("role") or "", ""))
    return f"{who} ({role})" if role else str(who)


def outcome_label(event: dict) -> str:
    """How it went, for people; a download says whether it arrived (its delivery record),
    and a read whose answer was never given (read.withheld names it) says so."""
    if event.get("withheld"):
        return _("niet getoond (geen antwoord gegeven)")
    if event.get("event") == c.DOCUMENT_DOWNLOADED:
        if event.get("delivered"):
            return _("afgeleverd")
        delivery = event.get("delivery")
        if not delivery:
            return _("niet afgeleverd")
        how = str(OUTCOME_LABELS.get(delivery, delivery))
        return _("niet afgeleverd (%(how)s)", how=how)
    outcome = event.get("outcome") or ""
    return str(OUTCOME_LABELS.get(outcome, outcome))
