"""What the pages call things: event names, outcomes and roles in Dutch."""

from __future__ import annotations

from overdracht import contracts as c

ROLE_LABELS = {
    c.ZORGVERLENER: "Zorgverlener",
    c.COORDINATOR: "Coördinator",
    c.BEHEERDER: "Beheerder",
    c.AUDITOR: "Auditor",
}

#: every event the log holds, as an auditor reads it (tests check that none is missing)
EVENT_LABELS = {
    c.PROVIDER_REGISTERED: "Account geregistreerd",
    c.PROVIDER_LOGGED_IN: "Ingelogd",
    c.PROVIDER_LOGGED_OUT: "Uitgelogd",
    c.PROVIDER_LOGIN_FAILED: "Inloggen mislukt",
    c.PROVIDER_LOCKED: "Account geblokkeerd",
    c.PROVIDER_PASSWORD_RESET: "Wachtwoord opnieuw ingesteld door beheer",
    c.PROVIDER_PASSWORD_CHANGED: "Wachtwoord gewijzigd",
    c.PROVIDER_UNLOCKED: "Account ontgrendeld",
    c.PROVIDER_INVITED: "Uitnodiging verstuurd",
    c.PROVIDER_ACTIVATED: "Account geactiveerd",
    c.PROVIDER_DEACTIVATED: "Account gedeactiveerd",
    c.PROVIDER_TOTP_ENROLLED: "Authenticator-app ingesteld",
    c.SECOND_FACTOR_POLICY_CHANGED: "Tweestapsbeleid gewijzigd",
    c.PROVIDER_LIST_SUBMITTED: "Lijst zorgverleners aangemeld",
    c.PROVIDER_LIST_REGISTERED: "Lijst zorgverleners geregistreerd",
    c.CLIENT_SEARCHED: "Cliënt gezocht",
    c.CLIENT_CREATED: "Cliënt toegevoegd",
    c.CLIENT_DELETED: "Cliënt verwijderd (laatste document weg)",
    c.CLIENTS_LISTED: "Mijn cliënten bekeken",
    c.RELATIONSHIP_ESTABLISHED: "Behandelrelatie vastgelegd",
    c.DOCUMENT_UPLOADED: "Document geplaatst",
    c.DOCUMENT_LISTED: "Documentenlijst bekeken",
    c.DOCUMENT_DOWNLOADED: "Document geopend",
    c.DOCUMENT_DELIVERY: "Document verstuurd",
    c.DOCUMENT_DELETED: "Document verwijderd",
    c.DOCUMENT_REMOVAL_DATE_MOVED: "Verwijderdatum gewijzigd",
    c.DOCUMENT_EXPIRED: "Document verlopen en gewist",
    c.ACCESS_DENIED: "Toegang geweigerd",
    c.READ_WITHHELD: "Antwoord niet gegeven",
    c.AUDIT_READ: "Auditlog gelezen",
    c.AUDIT_EXPORTED: "Auditlog geëxporteerd",
}

OUTCOME_LABELS = {
    "success": "gelukt",
    "found": "gevonden",
    "not_found": "niet gevonden",
    "denied": "geweigerd",
    "conflict": "bestond al",
    "failure": "mislukt",
    c.DELIVERED: "afgeleverd",
    c.DELIVERY_FAILED: "mislukt",
    c.DELIVERY_INTERRUPTED: "afgebroken",
    "not_shown": "niet getoond",
}


def actor_label(actor: dict | None) -> str:
    """Who acted, for people: name and role (or profession), else what the log knows."""
    actor = actor or {}
    if actor.get("type") == "system":
        return "Overdracht (automatisch)"
    who = actor.get("name") or actor.get("username") or actor.get("type") or "onbekend"
    role = actor.get("profession") or ROLE_LABELS.get(actor.get("role") or "", "")
    return f"{who} ({role})" if role else who


def outcome_label(event: dict) -> str:
    """How it went, for people; a download says whether it arrived (its delivery record),
    and a read whose answer was never given (read.withheld names it) says so."""
    if event.get("withheld"):
        return "niet getoond (geen antwoord gegeven)"
    if event.get("event") == c.DOCUMENT_DOWNLOADED:
        if event.get("delivered"):
            return "afgeleverd"
        delivery = event.get("delivery")
        return "niet afgeleverd" + (
            f" ({OUTCOME_LABELS.get(delivery, delivery)})" if delivery else ""
        )
    outcome = event.get("outcome") or ""
    return OUTCOME_LABELS.get(outcome, outcome)
