"""The web pages (Dutch, or English): the same flow as the API, for people at a browser."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

from babel.numbers import get_decimal_symbol
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from gateway import api
from gateway.errors import respond, wants_json
from gateway.forms import forget_left, leave, left, refusal, refused, typed
from gateway.i18n import error_text, field_texts, language
from gateway.labels import EVENT_LABELS, ROLE_LABELS, actor_label, outcome_label, translated
from gateway.session import (
    access_point,
    caller_token,
    clear_session_cookie,
    csrf_ok,
    csrf_token,
    current,
    principal,
    record_refusal,
    services,
    session_token,
    set_session_cookie,
)
from overdracht.contracts import (
    AUDITOR,
    ZORGVERLENER,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OverdrachtError,
    RateLimited,
    Throttled,
    TooLarge,
    Unauthenticated,
)
from overdracht.timezone import AMSTERDAM, today

bp = Blueprint("pages", __name__)

#: what a file chooser offers for each allowed type (the type alone misses some systems)
EXTENSIONS_OF = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg,.jpeg",
    "image/tiff": ".tif,.tiff",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
#: how a client is looked up: birth date plus BSN and/or phone (search, and the auditor's)
LOOKUP_FIELDS = ("birth_date", "bsn", "phone")
#: errors a form shows next to itself instead of on an error page
FORM_ERRORS = (InvalidInput, Conflict, RateLimited, TooLarge)


@bp.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        # this request's session, once auth was asked: for the "blijf ingelogd" warning
        "session_state": g.caller.get("session") if "caller" in g else None,
        "role_labels": translated(ROLE_LABELS),
        # a region's own types show as configured; the default ones are in the catalogue
        "document_types": {
            value: _(label) for value, label in current_app.config["DOCUMENT_TYPES"].items()
        },
        "today": today().isoformat(),
        "accepted_files": ",".join(
            part
            for kind in current_app.config["CONTENT_TYPES"]
            for part in (kind, EXTENSIONS_OF.get(kind))
            if part
        ),
    }


@bp.app_template_filter("datum")
def dutch_date(value: Any) -> str:
    """An ISO date the way the Netherlands writes it: 17-03-2027."""
    if not value:
        return ""
    try:
        return date.fromisoformat(str(value)[:10]).strftime("%d-%m-%Y")
    except ValueError:
        return str(value)


@bp.app_template_filter("grootte")
def dutch_size(size: Any) -> str:
    """A byte count for people, in decimal units with the language's decimal sign: 40,0 kB,
    1,3 MB in Dutch (40.0 kB in English)."""
    size = int(size or 0)
    for unit, factor in (("MB", 1000**2), ("kB", 1000)):
        if size >= factor:
            number = f"{size / factor:.1f}".replace(".", get_decimal_symbol(language()))
            return f"{number}\N{NO-BREAK SPACE}{unit}"
    return f"{size}\N{NO-BREAK SPACE}bytes"


@bp.app_template_filter("tijdstip")
def dutch_time(value: Any) -> str:
    """An ISO timestamp (UTC) as the clock in the Netherlands showed it: 26-11-2026 09:51."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    return moment.astimezone(AMSTERDAM).strftime("%d-%m-%Y %H:%M")


@bp.app_template_filter("nog_dagen")
def days_left(value: Any) -> str:
    """How long until a removal date: nog 12 dagen, nog 1 dag."""
    try:
        days = (date.fromisoformat(str(value)[:10]) - today()).days
    except ValueError:
        return ""
    return ngettext("nog %(num)d dag", "nog %(num)d dagen", days)


@bp.before_app_request
def forget_typed_client():
    """What a search that found nobody left for the add-client form waits one page only:
    the search's own answer, then the form (BSN and phone do not linger in the cookie)."""
    forget_left()
    if "new_client" in session and request.endpoint not in (
        "pages.search",
        "pages.new_client",
        "static",
    ):
        session.pop("new_client")


@bp.before_request
def check_csrf():
    # uploads carry the token as a form field, checked once the stream reaches it
    if request.method == "POST" and request.endpoint != "pages.upload":
        if not csrf_ok(request.form.get("csrf")):
            record_refusal("csrf")
            abort(400)


#: where returning after a login makes no sense (a file, or the way out)
PAGES_WITHOUT_RETURN = {"pages.download", "pages.logout", "pages.index"}


@bp.app_errorhandler(Unauthenticated)
def to_login(exc: Unauthenticated):
    if wants_json():
        return respond(exc.status, exc.code, exc.message, lambda: error_text(exc))
    message = error_text(exc)
    if request.endpoint == "pages.upload":  # the file she sent was not placed: say so
        message = _(
            "Uw document is niet geplaatst: uw sessie was verlopen. "
            "Log opnieuw in en plaats het opnieuw."
        )
        session["after_login"] = url_for("pages.client", client_id=request.view_args["client_id"])
    elif request.method == "GET" and request.endpoint not in PAGES_WITHOUT_RETURN:
        session["after_login"] = request.path  # the path only: no query, no other site
    back = session.get("after_login")
    session.clear()  # what the ended session left in the cookie goes with it
    if back:
        session["after_login"] = back
    flash(message, "error")
    response = redirect(url_for("pages.login"))
    clear_session_cookie(response)
    return response


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/")
def index():
    return redirect(url_for("pages.overview") if session_token() else url_for("pages.login"))


@bp.route("/inloggen", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        username = request.form.get("username", "")
        try:
            with services() as rpc:
                result = rpc.auth.start_login(
                    caller_token("auth.start_login"),
                    username,
                    request.form.get("password"),
                    access_point(),
                )
        except (Unauthenticated, InvalidInput, Throttled) as exc:
            # the one answer for every refusal beside the password; missing input beside
            # what is missing; too many attempts beside the button
            field = "password"
            if isinstance(exc, Throttled):
                field = "form"
            elif isinstance(exc, InvalidInput) and not username.strip():
                field = "username"
            return refused("pages.login", {field: error_text(exc)}, {"username": username})
        session["challenge"] = result["challenge"]
        session["sent_to"] = result["sent_to"]
        session["method"] = result["method"]
        return redirect(url_for("pages.login_code"))
    form, errors = refusal()
    return render_template("login.html", username=form.get("username", ""), errors=errors)


@bp.route("/inloggen/code", methods=["GET", "POST"])
def login_code():
    challenge = session.get("challenge")
    if not challenge:
        return redirect(url_for("pages.login"))
    if request.method == "POST":
        try:
            with services() as rpc:
                result = rpc.auth.verify_login(
                    caller_token("auth.verify_login"),
                    challenge,
                    request.form.get("code"),
                    access_point(),
                )
        except Throttled as exc:
            return refused("pages.login_code", {"code": error_text(exc)})
        except Unauthenticated as exc:
            if exc.code == "wrong_code":  # tries left: type it again, no password needed
                return refused("pages.login_code", {"code": error_text(exc)})
            return _login_again(error_text(exc))
        # back to the page she was on when her session ended, if any (a path of ours)
        back = session.pop("after_login", None)
        session.clear()  # nothing of an earlier session, or of the login, lingers
        if not (isinstance(back, str) and back.startswith("/") and back[1:2] not in ("/", "\\")):
            back = url_for("pages.overview")
        response = redirect(back)
        set_session_cookie(response, result["token"])
        return response
    return _code_page(refusal()[1])


@bp.post("/inloggen/code/opnieuw")
def login_code_again():
    challenge = session.get("challenge")
    if not challenge:
        return redirect(url_for("pages.login"))
    try:
        with services() as rpc:
            result = rpc.auth.resend_code(
                caller_token("auth.resend_code"), challenge, access_point()
            )
    except Throttled as exc:  # too soon: says how long to wait
        return refused("pages.login_code", {"resend": error_text(exc)})
    except Unauthenticated as exc:
        return _login_again(error_text(exc))
    session["sent_to"] = result["sent_to"]
    flash(_("Er is een nieuwe code gestuurd naar %(sent_to)s.", sent_to=result["sent_to"]), "info")
    return redirect(url_for("pages.login_code"))


def _code_page(errors: dict[str, str]) -> str:
    return render_template(
        "code.html",
        sent_to=session.get("sent_to", ""),
        method=session.get("method", "sms"),
        errors=errors,
    )


def _forget_challenge() -> None:
    for key in ("challenge", "sent_to", "method"):
        session.pop(key, None)


def _login_again(message: str):
    """The challenge is spent: back to the password."""
    _forget_challenge()
    flash(message, "error")
    return redirect(url_for("pages.login"))


#: which field of the password form an error from auth belongs beside
PASSWORD_FIELDS = {
    "missing_current_password": "current_password",
    "wrong_current_password": "current_password",
    "invalid_password": "new_password",
    "weak_password": "new_password",
    "same_password": "new_password",
}


@bp.route("/wachtwoord", methods=["GET", "POST"])
def change_password():
    me = current()["profile"]
    if request.method == "GET":
        return render_template("password.html", me=me, errors=refusal()[1])
    new = request.form.get("new_password", "")
    if new != request.form.get("new_password_repeat", ""):
        errors = {"new_password_repeat": _("De twee nieuwe wachtwoorden zijn niet gelijk.")}
        return refused("pages.change_password", errors)
    try:
        with services() as rpc:
            result = rpc.auth.change_password(
                principal(), request.form.get("current_password", ""), new, access_point()
            )
    except Throttled as exc:
        return refused("pages.change_password", {"form": error_text(exc)})
    except InvalidInput as exc:
        errors = {PASSWORD_FIELDS.get(exc.code, "new_password"): error_text(exc)}
        return refused("pages.change_password", errors)
    if result["sessions_ended"]:
        flash(_("Uw wachtwoord is gewijzigd. Uw andere sessies zijn beëindigd."), "info")
    else:
        flash(_("Uw wachtwoord is gewijzigd."), "info")
    return redirect(url_for("pages.overview"))


@bp.post("/uitloggen")
def logout():
    with services() as rpc:
        rpc.auth.logout(caller_token("auth.logout"), session_token(), access_point())
    session.clear()  # a search's results or criteria waiting there go with her session
    flash(_("U bent uitgelogd."), "info")
    response = redirect(url_for("pages.login"))
    clear_session_cookie(response)
    return response


@bp.post("/sessie")
def keep_session():
    """Blijf ingelogd: any request of hers extends her session; this one says how long."""
    return jsonify(current()["session"])


@bp.get("/overzicht")
def overview():
    """The start page; a zorgverlener's shows Mijn cliënten (audited, as a search is)."""
    me = current()["profile"]
    mine = []
    if me["role"] == ZORGVERLENER and not me.get("must_enrol_totp"):
        with services() as rpc:
            mine = rpc.clients.mine(principal(), access_point())["clients"]
    return render_template("overview.html", me=me, mine=mine)


@bp.route("/clienten/zoeken", methods=["GET", "POST"])
def search():
    """Post/Redirect/Get: the results of a search are shown once, by the GET after it.

    Back and refresh never resubmit a search (each is audited and counts against the
    hourly limit); what she typed, BSN and phone included, never goes into a URL. The
    results, and after "niet gevonden" what she typed, wait in the sealed session cookie
    (gateway/cookie.py) until the next page takes them; logging out clears it.
    """
    me = _zorgverlener()
    if request.method == "GET":
        found = session.pop("search_results", None)
        form, errors = refusal()
        return render_template("search.html", me=me, form=form, errors=errors, results=found)
    form = typed(*LOOKUP_FIELDS)
    try:
        with services() as rpc:
            results = rpc.clients.search(principal(), form, access_point())["results"]
    except FORM_ERRORS as exc:
        return refused("pages.search", _errors(exc), form)
    session["search_results"] = results
    if not results:  # "niet gevonden": the add-client form opens with what she typed
        session["new_client"] = form
    return redirect(url_for("pages.search"))


def _errors(exc: OverdrachtError) -> dict[str, str]:
    """A refusal's message per field (InvalidInput names them all), else for the form."""
    fields = getattr(exc, "fields", None)
    return field_texts(fields) if fields else {"form": error_text(exc)}


@bp.post("/clienten/<client_id>/behandelrelatie")
def declare(client_id: str):
    _zorgverlener()
    try:
        with services() as rpc:
            rpc.clients.declare_relationship(principal(), client_id, access_point())
    except Forbidden as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("pages.search"))
    return redirect(url_for("pages.client", client_id=client_id))


@bp.route("/clienten/nieuw", methods=["GET", "POST"])
def new_client():
    me = _zorgverlener()
    if request.method == "GET":
        form, errors = refusal()
        # or once, from a search that found nobody
        form = form or session.pop("new_client", {})
        return render_template("new_client.html", me=me, form=form, errors=errors)
    fields = ("maiden_name", "birth_date", "bsn", "phone", "due_date")
    form = typed(*fields)
    try:
        with services() as rpc:
            client = rpc.clients.create(principal(), form, access_point())
    except FORM_ERRORS as exc:
        return refused("pages.new_client", _errors(exc), form)
    flash(_("De cliënt is toegevoegd."), "info")
    return redirect(url_for("pages.client", client_id=client["id"]))


@bp.get("/clienten/<client_id>")
def client(client_id: str):
    me = _zorgverlener()
    try:
        with services() as rpc:
            result = rpc.documents.list(principal(), client_id, access_point())
    except Forbidden as exc:
        return render_template("error.html", me=me, status=403, message=error_text(exc)), 403
    form, errors = refusal()
    return render_template(
        "client.html",
        me=me,
        client=result["client"],
        documents=result["documents"],
        removal=result["removal_bounds"],
        placed=_placed_here(client_id),
        form=form,
        errors=errors,
    )


@bp.post("/clienten/<client_id>/documenten")
def upload(client_id: str):
    """One document; the page's script sends each of several files this way (answered in
    JSON, see errors.wants_json), the plain form one, answered Post/Redirect/Get."""
    _zorgverlener()  # asks auth only: the body is not read yet
    sent: dict[str, str] = {}

    def check(fields: dict[str, str]) -> None:
        sent.update({k: fields.get(k, "") for k in ("document_type", "removal_date")})
        _upload_csrf(fields)

    try:
        placed = api.upload(client_id, check=check)
    except FORM_ERRORS as exc:
        if wants_json():
            raise
        errors = {_upload_field(getattr(exc, "code", "")): error_text(exc)}
        return refused("pages.client", errors, sent, client_id=client_id)
    except (NotFound, Forbidden) as exc:
        if wants_json():
            raise
        flash(error_text(exc), "error")
        return redirect(url_for("pages.client", client_id=client_id))
    label = current_app.config["DOCUMENT_TYPES"].get(placed["document_type"])
    label = _(label) if label else placed["document_type"]
    _placed(f"{placed['filename']} ({label})")
    if wants_json():
        return jsonify(api.public_document(placed)), 201
    return redirect(url_for("pages.client", client_id=client_id))


#: the most placed files the confirmation names (the cookie holds about 4 kB); it counts all
NAMED_PLACED = 10


def _placed(what: str) -> None:
    """Remember for the client page what was placed, for its confirmation and reminder."""
    placed = session.get("placed")
    if not placed or placed.get("client") != request.view_args["client_id"]:
        placed = {"client": request.view_args["client_id"], "names": [], "count": 0}
    placed["count"] += 1
    if len(placed["names"]) < NAMED_PLACED:
        placed["names"].append(what[:120])
    session["placed"] = placed


def _placed_here(client_id: str) -> dict[str, Any] | None:
    """What was placed for this client since her page was last shown (once)."""
    placed = session.pop("placed", None)
    return placed if placed and placed.get("client") == client_id else None


def _upload_field(code: str) -> str:
    """Which field of the upload form an error from documents belongs beside."""
    if "removal_date" in code:
        return "removal_date"
    if code == "invalid_document_type":
        return "document_type"
    return "form" if code == "csrf" else "file"


@bp.get("/documenten/<document_id>/download")
def download(document_id: str):
    _zorgverlener()
    return api.download(document_id)


@bp.post("/documenten/<document_id>/verwijderen")
def delete(document_id: str):
    _zorgverlener()
    client_id = request.form.get("client_id", "")
    try:
        with services() as rpc:
            rpc.documents.delete(principal(), document_id, access_point())
    except (Forbidden, NotFound) as exc:
        flash(error_text(exc), "error")
    else:
        flash(_("Document verwijderd."), "info")
    return _back_to_client(client_id)


@bp.post("/documenten/<document_id>/verwijderdatum")
def move_removal_date(document_id: str):
    _zorgverlener()
    client_id = request.form.get("client_id", "")
    wanted = typed("removal_date")["removal_date"]
    try:
        with services() as rpc:
            moved = rpc.documents.move_removal_date(
                principal(), document_id, wanted, access_point()
            )
    except InvalidInput as exc:  # beside that document's date, with what she typed
        moving = {"move_document": document_id, "move_value": wanted}
        return refused("pages.client", {"move": error_text(exc)}, moving, client_id=client_id)
    except (Forbidden, NotFound) as exc:
        flash(error_text(exc), "error")
    else:
        flash(
            _(
                "De verwijderdatum van %(filename)s is nu %(date)s.",
                filename=moved["filename"],
                date=dutch_date(moved["removal_date"]),
            ),
            "info",
        )
    return _back_to_client(client_id)


#: the auditor's filters, as the page's query string has them (no client data: ids only)
AUDIT_FILTERS = ("client_id", "actor", "event", "van", "tot", "cursor")


@bp.get("/audit")
def audit():
    """The log, newest first, in the page's language and local time; filters in the query
    string."""
    me = _auditor()
    filters = {k: request.args.get(k, "").strip() for k in AUDIT_FILTERS}
    try:
        asked = {**_audit_query(filters), "order": "newest"}
        if filters["cursor"]:
            asked["cursor"] = filters["cursor"]
        with services() as rpc:
            result = rpc.audit.query(principal(), asked, access_point())
    except InvalidInput as exc:
        flash(error_text(exc), "error")
        result = {"events": [], "next_cursor": None}
    waiting = left()
    lookup, errors = waiting.get("form") or {}, waiting.get("errors") or {}
    found = waiting.get("found")
    return render_template(
        "audit.html",
        me=me,
        filters=filters,
        lookup=lookup,
        errors=errors,
        found=found,
        event_labels=translated(EVENT_LABELS),
        outcome_label=outcome_label,
        actor_label=actor_label,
        **result,
    )


@bp.post("/audit/client")
def audit_find_client():
    """Find a client's records by birth date plus BSN or phone (audit's own keyed hashes,
    so also after she is gone); one found opens her overview, several are listed."""
    _auditor()
    form = typed(*LOOKUP_FIELDS)
    try:
        with services() as rpc:
            found = rpc.audit.find_client(principal(), form, access_point())["client_ids"]
    except InvalidInput as exc:
        return refused("pages.audit", _errors(exc), form)
    if not found:
        message = _(
            "Geen cliënt gevonden met deze gegevens, ook niet onder de verwijderde. "
            "Wie werd toegevoegd voordat Overdracht dit bijhield, vindt u alleen met haar "
            "cliënt-id in het filter hieronder."
        )
        return refused("pages.audit", {"lookup": message}, form)
    if len(found) == 1:
        return redirect(url_for("pages.audit_client", client_id=found[0]))
    return leave("pages.audit", {"found": found})


@bp.get("/audit/clienten/<client_id>")
def audit_client(client_id: str):
    """Everything the log holds about one client, newest first, printable: who saw or did
    what with her data, and when (NEN 7513's overview for the client who asks)."""
    me = _auditor()
    with services() as rpc:
        result = rpc.audit.export(principal(), {"client_id": client_id}, access_point())
    return render_template(
        "audit_client.html",
        me=me,
        client_id=client_id,
        events=result["events"],
        truncated=result["truncated"],
        event_labels=translated(EVENT_LABELS),
        outcome_label=outcome_label,
        actor_label=actor_label,
        printed=datetime.now(AMSTERDAM).isoformat(),
    )


@bp.get("/audit/export.csv")
def audit_export():
    """The records the page's filters select, as a CSV file Excel opens (UTF-8 with BOM,
    semicolons, as Dutch Excel expects); recorded as audit.exported."""
    _auditor()
    filters = {k: request.args.get(k, "").strip() for k in AUDIT_FILTERS}
    with services() as rpc:
        result = rpc.audit.export(principal(), _audit_query(filters), access_point())
    response = Response(audit_csv(result["events"]), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    stamp = datetime.now(AMSTERDAM).strftime("%Y%m%d-%H%M")
    response.headers["Content-Disposition"] = f'attachment; filename="auditlog-{stamp}.csv"'
    if result["truncated"]:
        response.headers["X-Overdracht-Truncated"] = "true"
    return response


def audit_csv(events: list[dict[str, Any]]) -> str:
    """One line per record: local time, names in the page's language, and the codes
    beside them."""
    out = io.StringIO()
    out.write("\ufeff")  # the BOM: Excel then reads UTF-8
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            _("Volgnummer"),
            _("Tijdstip"),
            _("Gebeurtenis"),
            _("Code"),
            _("Wie"),
            _("Gebruikersnaam"),
            _("Cliënt"),
            _("Document"),
            _("Documenttype"),
            _("Uitkomst"),
            _("IP-adres"),
            _("Event-id"),
        ]
    )
    types = current_app.config["DOCUMENT_TYPES"]
    for e in events:
        thing = e.get("object") or {}
        writer.writerow(
            [
                e.get("seq"),
                dutch_time(e.get("occurred_at")),
                str(EVENT_LABELS.get(e.get("event"), e.get("event") or "")),
                e.get("event"),
                actor_label(e.get("actor")),
                (e.get("actor") or {}).get("username") or "",
                e.get("subject") or "",
                thing.get("id", ""),
                types.get(thing.get("document_type"), thing.get("document_type") or ""),
                outcome_label(e),
                (e.get("access_point") or {}).get("ip", ""),
                e.get("event_id"),
            ]
        )
    return out.getvalue()


def _audit_query(filters: dict[str, str]) -> dict[str, str]:
    """The page's filters as audit's query takes them: local dates become UTC moments
    (van from 00:00, tot en met until 24:00 Europe/Amsterdam)."""
    asked = {k: filters[k] for k in ("client_id", "actor", "event") if filters.get(k)}
    for key, target, days in (("van", "since", 0), ("tot", "until", 1)):
        if filters.get(key):
            try:
                day = date.fromisoformat(filters[key]) + timedelta(days=days)
            except ValueError:
                raise InvalidInput("Gebruik een datum als 31-01-2027.", "invalid_date") from None
            moment = datetime(day.year, day.month, day.day, tzinfo=AMSTERDAM)
            asked[target] = moment.isoformat()
    return asked


def _auditor() -> dict[str, Any]:
    me = current()["profile"]
    if me["role"] != AUDITOR:
        record_refusal("role")
        raise Forbidden("Alleen auditors lezen het auditlog.", "role")
    return me


def _back_to_client(client_id: str):
    """To the client page a form came from (its hidden client_id), or the start page."""
    if not client_id.strip():
        return redirect(url_for("pages.overview"))
    return redirect(url_for("pages.client", client_id=client_id))


def _zorgverlener() -> dict[str, Any]:
    me = current()["profile"]
    if me["role"] != ZORGVERLENER:
        record_refusal("role")
        raise Forbidden("Alleen zorgverleners werken met cliëntgegevens.", "role")
    return me


def _upload_csrf(fields: dict[str, str]) -> None:
    if not csrf_ok(fields.pop("csrf", None)):
        record_refusal("csrf")
        raise InvalidInput("Het formulier is verlopen; probeer het opnieuw.", "csrf")
