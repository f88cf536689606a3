"""The pages of onboarding: activation links, the coördinator's region, the beheerder's desk.

Thin like the other pages: auth decides who may do what and audits it; these pages only
show the result in the page's language, each error beside what it is about.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext, lazy_gettext, ngettext
from flask_babel import gettext as _

from gateway.api import ACCOUNT_ACTIONS, csv_text
from gateway.forms import refusal, refused, typed
from gateway.i18n import error_text, field_texts, shown
from gateway.labels import ROLE_LABELS, translated
from gateway.session import (
    access_point,
    caller_token,
    csrf_ok,
    current,
    principal,
    record_refusal,
    services,
    session_token,
)
from overdracht.contracts import (
    BEHEERDER,
    COORDINATOR,
    ROLES,
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    Throttled,
    Unauthenticated,
    Unavailable,
)

bp = Blueprint("onboarding", __name__)

STATUS_LABELS = {
    "submitted": lazy_gettext("Aangemeld"),
    "invited": lazy_gettext("Uitgenodigd"),
    "active": lazy_gettext("Actief"),
    "locked": lazy_gettext("Geblokkeerd"),
    "deactivated": lazy_gettext("Gedeactiveerd"),
    "registered": lazy_gettext("Geregistreerd"),
    "rejected": lazy_gettext("Afgewezen"),
    "expired": lazy_gettext("Verlopen"),
}
#: each action's button, and what is said once it is done (%(name)s: whose account)
ACTION_LABELS = {
    "unlock": (
        lazy_gettext("Ontgrendelen"),
        lazy_gettext("Het account van %(name)s is ontgrendeld."),
    ),
    "reset": (
        lazy_gettext("Resetten"),
        lazy_gettext(
            "%(name)s krijgt een nieuwe activeringslink per e-mail; haar wachtwoord en "
            "sessies zijn beëindigd."
        ),
    ),
    "deactivate": (
        lazy_gettext("Deactiveren"),
        lazy_gettext("Het account van %(name)s is gedeactiveerd."),
    ),
}
#: the fields of the invite form, and where auth's error codes belong
INVITE_FIELDS = ("full_name", "email", "phone", "region", "role", "profession", "organisation")
INVITE_ERRORS = {
    "invalid_full_name": "full_name",
    "invalid_email": "email",
    "invalid_phone": "phone",
    "invalid_region": "region",
    "invalid_role": "role",
    "invalid_profession": "profession",
    "invalid_organisation": "organisation",
    "invalid_agb_code": "agb_code",
    "username_taken": "full_name",
}
ACTIVATION_ERRORS = {
    "wrong_code": "code",
    "code_failed": "code",
    "invalid_password": "password",
    "weak_password": "password",
}


@bp.app_context_processor
def labels() -> dict[str, Any]:
    return {"status_labels": translated(STATUS_LABELS), "action_labels": translated(ACTION_LABELS)}


@bp.before_request
def check_csrf():
    if request.method == "POST" and not csrf_ok(request.form.get("csrf")):
        record_refusal("csrf")
        abort(400)


#: pages for anyone, and what a session that must set up the authenticator app first
#: may still open besides them
PUBLIC_PAGES = {
    "pages.healthz",
    "pages.index",
    "pages.login",
    "pages.login_code",
    "pages.login_code_again",
    "onboarding.activation",
    "onboarding.activation_code",
    "onboarding.activate",
}
WHILE_ENROLLING = {"onboarding.authenticator", "pages.logout", "pages.overview"}


@bp.before_app_request
def forget_recovery_codes():
    """The recovery codes wait for their one page only, never in the cookie beyond it."""
    if "recovery_codes" in session and request.endpoint not in (
        "onboarding.recovery_codes",
        "static",
    ):
        session.pop("recovery_codes")


@bp.before_app_request
def authenticator_first():
    """Her role requires the app and she has none: she sets it up before anything else.

    Only the pages need this: the services already refuse her principal everything else.
    """
    endpoint = request.endpoint or ""
    if (
        not endpoint.startswith(("pages.", "onboarding."))
        or endpoint in PUBLIC_PAGES | WHILE_ENROLLING
        or session_token() is None
    ):
        return None
    try:
        profile = current()["profile"]
    except Unauthenticated:
        return None  # the page itself sends her to log in
    if profile.get("must_enrol_totp"):
        return redirect(url_for("onboarding.authenticator"))
    return None


# --- the authenticator app -------------------------------------------------------------


@bp.route("/authenticator", methods=["GET", "POST"])
def authenticator():
    """Set up the app: scan the QR code, type one code; the recovery codes, shown once."""
    me = current()["profile"]
    if me["second_factor"] == "totp":
        flash(_("Uw authenticator-app is al ingesteld."), "info")
        return redirect(url_for("pages.overview"))
    if request.method == "POST":
        try:
            with services() as rpc:
                result = rpc.auth.totp_confirm(
                    principal(),
                    request.form.get("code", ""),
                    request.form.get("password", ""),
                    access_point(),
                )
        except InvalidInput as exc:
            field = "password" if exc.code == "wrong_password" else "code"
            return refused("onboarding.authenticator", {field: error_text(exc)})
        except Conflict as exc:  # the secret on the page went stale: a new one on the page
            return refused("onboarding.authenticator", {"code": error_text(exc)})
        # shown once, by the GET after this (sealed in the session cookie until then)
        session["recovery_codes"] = result["recovery_codes"]
        return redirect(url_for("onboarding.recovery_codes"))
    with services() as rpc:
        setup = rpc.auth.totp_setup(principal())
    errors = refusal()[1]
    return render_template("authenticator.html", me=me, setup=setup, errors=errors)


@bp.get("/authenticator/herstelcodes")
def recovery_codes():
    """The recovery codes, once: a refresh or Back shows them no more."""
    me = current()["profile"]
    codes = session.pop("recovery_codes", None)
    if not codes:
        return redirect(url_for("pages.overview"))
    return render_template("recovery_codes.html", me=me, codes=codes)


@bp.route("/beheer/tweestaps", methods=["GET", "POST"])
def second_factor_policy():
    """Which roles must use the authenticator app."""
    me = _role(BEHEERDER)
    if request.method == "POST":
        role = request.form.get("role", "")
        required = request.form.get("totp_required") == "ja"
        try:
            with services() as rpc:
                rpc.auth.set_second_factor_policy(principal(), role, required, access_point())
        except InvalidInput as exc:
            flash(error_text(exc), "error")
            return redirect(url_for("onboarding.second_factor_policy"))
        label = str(ROLE_LABELS.get(role, role))
        if required:
            done = _("De authenticator-app is nu verplicht voor de rol %(role)s.", role=label)
        else:
            done = _(
                "De authenticator-app is niet meer verplicht voor de rol %(role)s.", role=label
            )
        flash(done, "info")
        return redirect(url_for("onboarding.second_factor_policy"))
    with services() as rpc:
        policy = rpc.auth.second_factor_policy(principal())
    return render_template("second_factor.html", me=me, **policy)


# --- activation: whoever holds the link --------------------------------------------------


@bp.get("/activeren")
def activation():
    """The link from the e-mail, answered at once (not redirected).

    A link opened from webmail is a request from another site: the session cookie
    (SameSite=Strict) is not sent, and would not be on a redirect either. So the page
    carries the token in its forms; once she posts one (from this site), the token also
    waits in the session, and the later pages need no token in their address.
    """
    token = _activation_token()
    if request.args.get("token"):
        session["activation"] = token
    return _activation_page(refusal()[1])


@bp.post("/activeren/code")
def activation_code():
    token = _activation_token()
    if not token:
        return redirect(url_for("onboarding.activation"))
    try:
        with services() as rpc:
            result = rpc.auth.send_activation_code(
                caller_token("auth.send_activation_code"), token, access_point()
            )
    except Gone as exc:
        return _link_gone(exc)
    except (Throttled, Unavailable) as exc:
        return refused("onboarding.activation", {"send": error_text(exc)})
    flash(_("Er is een code gestuurd naar %(sent_to)s.", sent_to=result["sent_to"]), "info")
    return redirect(url_for("onboarding.activation"))


@bp.post("/activeren")
def activate():
    token = _activation_token()
    if not token:
        return redirect(url_for("onboarding.activation"))
    password = request.form.get("password", "")
    if password != request.form.get("password_repeat", ""):
        errors = {"password_repeat": _("De twee wachtwoorden zijn niet gelijk.")}
        return refused("onboarding.activation", errors)
    try:
        with services() as rpc:
            rpc.auth.activate(
                caller_token("auth.activate"),
                token,
                request.form.get("code", ""),
                password,
                access_point(),
            )
    except Gone as exc:
        return _link_gone(exc)
    except InvalidInput as exc:
        field = ACTIVATION_ERRORS.get(exc.code, "password")
        return refused("onboarding.activation", {field: error_text(exc)})
    session.pop("activation", None)
    flash(
        _("Uw account is geactiveerd. Log in met uw gebruikersnaam en nieuwe wachtwoord."),
        "info",
    )
    return redirect(url_for("pages.login"))


def _activation_token() -> str | None:
    """The link's token: from the address, a form, or the session; kept in the session."""
    token = request.args.get("token") or request.form.get("token") or session.get("activation")
    if token and request.method == "POST":
        session["activation"] = token
    return token


def _activation_page(errors: dict[str, str]):
    token = _activation_token()
    if not token:
        return render_template(
            "error.html", status=404, message=_("Open de link uit uw e-mail om te activeren.")
        ), 404
    try:
        with services() as rpc:
            link = rpc.auth.activation(caller_token("auth.activation"), token)
    except Gone as exc:
        return _link_gone(exc)
    return render_template("activate.html", link=link, token=token, errors=errors)


def _link_gone(exc: Gone):
    """A used, expired or replaced link: said on the login page (after a POST, by a
    redirect), or as the answer to opening the link."""
    session.pop("activation", None)
    if request.method == "POST":
        flash(error_text(exc), "error")
        return redirect(url_for("pages.login"))
    return render_template("error.html", status=410, message=error_text(exc)), 410


# --- the coördinator: her region's list ------------------------------------------------


#: the most refused rows of a list the result page names; the rest it counts
SHOWN_LIST_ERRORS = 12


@bp.route("/regio", methods=["GET", "POST"])
def region():
    me = _role(COORDINATOR)
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            result = {"problem": _("Kies het CSV-bestand met de lijst.")}
        else:
            try:
                text = csv_text(upload.read())
                with services() as rpc:
                    result = rpc.auth.submit_provider_list(
                        principal(), upload.filename, text, access_point()
                    )
            except InvalidInput as exc:
                result = {"problem": error_text(exc)}
        # Post/Redirect/Get: the result waits in the (sealed, 4 kB) session cookie for the
        # page, so it names the first refused rows and counts the others
        if "errors" in result:
            result["more_errors"] = max(len(result["errors"]) - SHOWN_LIST_ERRORS, 0)
            result["errors"] = _rows_translated(result["errors"][:SHOWN_LIST_ERRORS], "message")
        session["list_result"] = result
        return redirect(url_for("onboarding.region"))
    result = session.pop("list_result", None)
    with services() as rpc:
        accounts = rpc.auth.region_accounts(principal())
    return render_template("region.html", me=me, result=result, **accounts)


# --- the beheerder ---------------------------------------------------------------------


@bp.get("/beheer")
def accounts():
    me = _role(BEHEERDER)
    filters = {k: request.args.get(k, "").strip() for k in ("region", "role", "status", "q")}
    try:
        with services() as rpc:
            found = rpc.auth.accounts(principal(), {k: v for k, v in filters.items() if v})
    except InvalidInput as exc:
        flash(error_text(exc), "error")
        found = {"accounts": []}
    return render_template("accounts.html", me=me, filters=filters, roles=ROLES, **found)


@bp.post("/beheer/accounts/<username>/<action>")
def account_action(username: str, action: str):
    _role(BEHEERDER)
    if action not in ACTION_LABELS:
        abort(404)
    try:
        with services() as rpc:
            getattr(rpc.auth, ACCOUNT_ACTIONS[action])(principal(), username, access_point())
    except (Forbidden, NotFound, Conflict, Unavailable) as exc:
        flash(error_text(exc), "error")
    else:
        name = request.form.get("name") or username
        flash(str(ACTION_LABELS[action][1]) % {"name": name}, "info")
    return redirect(url_for("onboarding.accounts"))


@bp.route("/beheer/nieuw", methods=["GET", "POST"])
def invite():
    me = _role(BEHEERDER)
    if request.method == "POST":
        data = typed(*INVITE_FIELDS, "agb_code")
        try:
            with services() as rpc:
                created = rpc.auth.invite_provider(principal(), data, access_point())
        except (InvalidInput, Conflict, Forbidden) as exc:
            errors = {INVITE_ERRORS.get(exc.code, "form"): error_text(exc)}
            return refused("onboarding.invite", errors, data)
        except Unavailable as exc:
            return refused("onboarding.invite", {"form": error_text(exc)}, data)
        flash(
            _(
                "%(name)s is geregistreerd als %(username)s en krijgt een activeringslink "
                "per e-mail.",
                name=data["full_name"],
                username=created["username"],
            ),
            "info",
        )
        return redirect(url_for("onboarding.accounts"))
    form, errors = refusal()
    return render_template("invite.html", me=me, form=form, errors=errors)


@bp.get("/beheer/lijsten")
def lists():
    me = _role(BEHEERDER)
    with services() as rpc:
        found = rpc.auth.provider_lists(principal(), request.args.get("status") or None)
    return render_template("lists.html", me=me, **found)


@bp.get("/beheer/lijsten/<list_id>")
def provider_list(list_id: str):
    me = _role(BEHEERDER)
    try:
        with services() as rpc:
            found = rpc.auth.provider_list(principal(), list_id)
    except NotFound as exc:
        return render_template("error.html", me=me, status=404, message=error_text(exc)), 404
    found["rows"] = _rows_translated(found.get("rows") or [], "problem")
    return render_template("list.html", me=me, list=found)


@bp.post("/beheer/lijsten/<list_id>/registreren")
def register_list(list_id: str):
    _role(BEHEERDER)
    try:
        with services() as rpc:
            result = rpc.auth.register_provider_list(principal(), list_id, access_point())
    except (NotFound, Conflict) as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("onboarding.lists"))
    registered, failed = len(result["registered"]), len(result["failed"])
    # the Dutch says "(s)" either way; the catalogue has a singular and a plural
    flash(
        ngettext(
            "%(num)d zorgverlener(s) geregistreerd en uitgenodigd.",
            "%(num)d zorgverlener(s) geregistreerd en uitgenodigd.",
            registered,
        ),
        "info",
    )
    if failed:
        flash(
            ngettext(
                "%(num)d regel(s) niet gelukt; zie de reden bij elke regel.",
                "%(num)d regel(s) niet gelukt; zie de reden bij elke regel.",
                failed,
            ),
            "error",
        )
    if result.get("remaining"):  # more than one call's worth: the button takes the rest
        flash(
            ngettext(
                "Nog %(num)d regel(s) te gaan: klik opnieuw op registreren.",
                "Nog %(num)d regel(s) te gaan: klik opnieuw op registreren.",
                result["remaining"],
            ),
            "info",
        )
    return redirect(url_for("onboarding.provider_list", list_id=list_id))


@bp.post("/beheer/lijsten/<list_id>/afwijzen")
def reject_list(list_id: str):
    _role(BEHEERDER)
    try:
        with services() as rpc:
            result = rpc.auth.reject_provider_list(principal(), list_id, access_point())
    except (NotFound, Conflict) as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("onboarding.lists"))
    flash(
        ngettext(
            "Lijst afgewezen; %(num)d regel(s) verwijderd.",
            "Lijst afgewezen; %(num)d regel(s) verwijderd.",
            result["discarded"],
        ),
        "info",
    )
    return redirect(url_for("onboarding.lists"))


def _rows_translated(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows of a provider list with auth's reason (rows[key], Dutch) in the page's
    language: from its fields' texts, or its template and values, where auth sent them,
    else the text itself where the catalogue has it. Only the line and the reason are
    kept (they wait in the session cookie for the page)."""
    return [
        {k: v for k, v in row.items() if k not in ("fields", "template", "params")}
        | ({key: _reason(row, key)} if row.get(key) else {})
        for row in rows
    ]


def _reason(row: dict[str, Any], key: str) -> str:
    if row.get("fields"):
        return " ".join(field_texts(row["fields"]).values())
    if row.get("template"):
        return shown(row["template"], row.get("params") or {})
    return gettext(row[key])


def _role(role: str) -> dict[str, Any]:
    me = current()["profile"]
    if me["role"] != role:
        record_refusal("role")
        raise Forbidden("Deze pagina is niet voor uw rol.", "role")
    return me
