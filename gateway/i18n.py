"""The pages' languages: Dutch, unless English is chosen; every text in one catalogue.

Texts are written in Dutch where they are used (the catalogue's msgids): `_()` in code
and templates (flask_babel), `lazy_gettext` in tables built at import, and the first
argument of a service's error (`InvalidInput("…")`), which the gateway translates when it
shows it. `gateway/translations/en/LC_MESSAGES/messages.po` holds the English; `make
translations` brings it up to date with the code and compiles it (messages.mo, committed
with it so a deployment needs no build step).

Any page takes `?lang=en` or `?lang=nl` (the header's link): the choice is kept in a
cookie of its own, which outlives logging out, and the page is shown again without the
parameter. The JSON API answers in Dutch.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from babel.lists import format_list
from flask import Flask, Response, current_app, redirect, request
from flask_babel import Babel, get_locale, gettext

from overdracht.contracts import N_, OverdrachtError

LANGUAGES = {"nl": "Nederlands", "en": "English"}
DEFAULT = "nl"
COOKIE = "taal"
PARAMETER = "lang"
#: the calls whose arguments are texts a person reads (None: the first), for extraction
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "N_": None,  # overdracht.contracts.N_, where no request is at hand
    # a service's errors: the gateway shows them, translated
    **dict.fromkeys(
        (
            "InvalidInput",
            "Conflict",
            "NotFound",
            "Forbidden",
            "Unavailable",
            "RateLimited",
            "Throttled",
            "TooLarge",
            "Unauthenticated",
            "Gone",
            "IntegrityFailure",
        )
    ),
}


#: the labels of overdracht.config's default document types, for the catalogue: the
#: pages translate a type's label when there is a translation (a region's own types show
#: as configured)
DEFAULT_TYPE_LABELS = (
    N_("Baringsverslag"),
    N_("Diagnostiek"),
    N_("Kraambed"),
    N_("Labuitslag"),
    N_("Zwangerschapskaart"),
)


#: the professions auth knows (services/auth/accounts.PROFESSIONS), shown translated
PROFESSION_LABELS = (
    N_("verloskundige"),
    N_("gynaecoloog"),
    N_("kraamverzorgende"),
    N_("arts"),
    N_("verpleegkundige"),
)


def api_request() -> bool:
    return request.path.startswith("/api/")


def chosen() -> str:
    if api_request():
        return DEFAULT
    language = request.cookies.get(COOKIE)
    return language if language in LANGUAGES else DEFAULT


def language() -> str:
    """The language of this request's page."""
    return str(get_locale() or DEFAULT)


def _other_arguments() -> list[tuple[str, str]]:
    """This page's query but the language."""
    return [(k, v) for k, v in request.args.items(multi=True) if k != PARAMETER]


def switch_language() -> Response | None:
    """`?lang=xx` on a page: remember it, and show the page again without it."""
    if request.method != "GET" or PARAMETER not in request.args or api_request():
        return None
    wanted = request.args.get(PARAMETER)
    rest = _other_arguments()
    response = redirect(request.path + (f"?{urlencode(rest)}" if rest else ""))
    if wanted in LANGUAGES:
        response.set_cookie(
            COOKIE,
            wanted,
            max_age=365 * 24 * 3600,
            secure=current_app.config["SECURE_COOKIES"],
            httponly=True,
            samesite="Lax",
        )
    return response


def language_links() -> dict[str, Any]:
    """The other languages, each with this page's address in it."""
    rest = _other_arguments()
    return {
        "language": language(),
        "other_languages": [
            {
                "code": code,
                "name": name,
                "url": f"{request.path}?{urlencode([*rest, (PARAMETER, code)])}",
            }
            for code, name in LANGUAGES.items()
            if code != language()
        ],
    }


def error_text(exc: OverdrachtError) -> str:
    """A service's error in the page's language."""
    return shown(exc.template, exc.params)


def shown(template: str, params: dict[str, Any]) -> str:
    """A service's Dutch template in the page's language, its values put in after
    translating (a list of texts translated one by one, and listed as the language lists)."""
    values = {
        name: format_list([gettext(item) for item in value], locale=language())
        if isinstance(value, list)
        else value
        for name, value in params.items()
    }
    return gettext(template, **values)


def field_texts(fields: dict[str, str]) -> dict[str, str]:
    """An InvalidInput's messages per field, in the page's language."""
    return {name: gettext(text) for name, text in fields.items()}


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=chosen, default_translation_directories="translations")
    app.before_request(switch_language)
    app.context_processor(language_links)
