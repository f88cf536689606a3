"""The JSON API under /api/v1: routing and shapes only; the services decide."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    request,
)

from gateway import files
from gateway.errors import MalformedRequest
from gateway.openapi import spec
from gateway.session import (
    access_point,
    caller_token,
    clear_session_cookie,
    current,
    principal,
    services,
    session_token,
    set_session_cookie,
)
from overdracht.contracts import InvalidInput, OverdrachtError, Unauthenticated

bp = Blueprint("api", __name__, url_prefix="/api/v1")


#: deeper than any body the API reads; Python's JSON parser recurses per level and fails deep down
MAX_JSON_DEPTH = 32


def body() -> dict[str, Any]:
    """The request's JSON object, or a 400 in the API's error shape."""
    if request.is_json and too_deep(request.get_data(cache=True), MAX_JSON_DEPTH):
        raise MalformedRequest("De JSON in de body is te diep genest.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # should the count above ever miss a nesting
        raise MalformedRequest("De JSON in de body is te diep genest.") from None
    if not isinstance(data, dict):
        raise MalformedRequest("De body moet een JSON-object zijn.")
    return data


def too_deep(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects more than limit deep (strings skipped).

    Exact for UTF-8, where '"', '\\', '[' and '{' never occur inside another character.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec(current_app.config["DOCUMENT_TYPES"]))


@bp.post("/login")
def login():
    data = body()
    with services() as rpc:
        result = rpc.auth.start_login(
            caller_token("auth.start_login"),
            data.get("username"),
            data.get("password"),
            access_point(),
        )
    return jsonify(result)


@bp.post("/login/resend")
def login_resend():
    data = body()
    with services() as rpc:
        result = rpc.auth.resend_code(
            caller_token("auth.resend_code"), data.get("challenge"), access_point()
        )
    return jsonify(result)


@bp.post("/login/verify")
def login_verify():
    data = body()
    with services() as rpc:
        result = rpc.auth.verify_login(
            caller_token("auth.verify_login"),
            data.get("challenge"),
            data.get("code"),
            access_point(),
        )
    response = jsonify(token=result["token"])
    set_session_cookie(response, result["token"])
    return response


@bp.get("/me")
def me():
    return jsonify(current()["profile"])


@bp.post("/me/password")
def change_password():
    data = body()
    with services() as rpc:
        rpc.auth.change_password(
            principal(),
            data.get("current_password"),
            data.get("new_password"),
            access_point(),
        )
    return Response(status=204)


@bp.post("/me/totp")
def totp_setup():
    """A secret for her authenticator app (the same until confirmed), as text and URI."""
    with services() as rpc:
        result = rpc.auth.totp_setup(principal())
    return jsonify(secret=result["secret"], uri=result["uri"])


@bp.post("/me/totp/confirm")
def totp_confirm():
    data = body()
    with services() as rpc:
        result = rpc.auth.totp_confirm(
            principal(), data.get("code"), data.get("password"), access_point()
        )
    return jsonify(result)


@bp.get("/second-factor")
def second_factor_policy():
    with services() as rpc:
        return jsonify(rpc.auth.second_factor_policy(principal()))


@bp.post("/second-factor")
def set_second_factor_policy():
    data = body()
    with services() as rpc:
        result = rpc.auth.set_second_factor_policy(
            principal(), data.get("role"), data.get("totp_required"), access_point()
        )
    return jsonify(result)


@bp.post("/activation")
def activation():
    """Whose activation link this is; 410 with the reason when it no longer works."""
    data = body()
    with services() as rpc:
        result = rpc.auth.activation(caller_token("auth.activation"), data.get("token"))
    return jsonify(result)


@bp.post("/activation/code")
def activation_code():
    data = body()
    with services() as rpc:
        result = rpc.auth.send_activation_code(
            caller_token("auth.send_activation_code"), data.get("token"), access_point()
        )
    return jsonify(result)


@bp.post("/activation/complete")
def activation_complete():
    data = body()
    with services() as rpc:
        result = rpc.auth.activate(
            caller_token("auth.activate"),
            data.get("token"),
            data.get("code"),
            data.get("password"),
            access_point(),
        )
    return jsonify(result)


@bp.post("/provider-lists")
def submit_provider_list():
    """A coördinator's list: the CSV as the request body (text/csv), or as a form's `file`."""
    upload = request.files.get("file")
    if upload is not None:
        filename, content = upload.filename or "lijst.csv", upload.read()
    else:
        filename, content = request.args.get("filename") or "lijst.csv", request.get_data()
    text = csv_text(content)
    with services() as rpc:
        result = rpc.auth.submit_provider_list(principal(), filename, text, access_point())
    return jsonify(result), 201 if result["list_id"] else 200


def csv_text(content: bytes) -> str:
    """UTF-8, with or without Excel's BOM; anything else is refused in the API's shape."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            "Het bestand is geen UTF-8. Kies in Excel bij Opslaan als: "
            "'CSV UTF-8 (door komma's gescheiden)'.",
            "invalid_provider_list",
        ) from None


@bp.get("/region/accounts")
def region_accounts():
    with services() as rpc:
        return jsonify(rpc.auth.region_accounts(principal()))


@bp.get("/provider-lists")
def provider_lists():
    with services() as rpc:
        return jsonify(rpc.auth.provider_lists(principal(), request.args.get("status")))


@bp.get("/provider-lists/<list_id>")
def provider_list(list_id: str):
    with services() as rpc:
        return jsonify(rpc.auth.provider_list(principal(), list_id))


@bp.post("/provider-lists/<list_id>/register")
def register_provider_list(list_id: str):
    with services() as rpc:
        result = rpc.auth.register_provider_list(principal(), list_id, access_point())
    return jsonify(result)


@bp.post("/provider-lists/<list_id>/reject")
def reject_provider_list(list_id: str):
    with services() as rpc:
        return jsonify(rpc.auth.reject_provider_list(principal(), list_id, access_point()))


@bp.get("/accounts")
def accounts():
    filters = {k: request.args[k] for k in ("region", "role", "status", "q") if request.args.get(k)}
    with services() as rpc:
        return jsonify(rpc.auth.accounts(principal(), filters))


@bp.post("/accounts")
def invite_account():
    data = body()
    with services() as rpc:
        result = rpc.auth.invite_provider(principal(), data, access_point())
    return jsonify(result), 201


#: what a beheerder may do to one account, and auth's entrypoint for it
ACCOUNT_ACTIONS = {
    "unlock": "unlock",
    "reset": "reset_provider",
    "deactivate": "deactivate_provider",
}


@bp.post("/accounts/<username>/<action>")
def account_action(username: str, action: str):
    if action not in ACCOUNT_ACTIONS:
        abort(404)
    with services() as rpc:
        method = getattr(rpc.auth, ACCOUNT_ACTIONS[action])
        return jsonify(method(principal(), username, access_point()))


@bp.post("/logout")
def logout():
    # with no session it could end (none, or a cookie without the CSRF header) a 204 would
    # say the session ended while it lives on: refuse instead
    token = session_token()
    if token is None:
        raise Unauthenticated("U bent niet ingelogd.", "unauthenticated")
    with services() as rpc:
        rpc.auth.logout(caller_token("auth.logout"), token, access_point())
    response = Response(status=204)
    clear_session_cookie(response)
    return response


@bp.get("/clients")
def my_clients():
    with services() as rpc:
        result = rpc.clients.mine(principal(), access_point())
    return jsonify(clients=result["clients"])


@bp.post("/clients/search")
def search_clients():
    data = body()
    with services() as rpc:
        result = rpc.clients.search(principal(), data, access_point())
    return jsonify(results=result["results"])


@bp.post("/clients")
def create_client():
    data = body()
    with services() as rpc:
        client = rpc.clients.create(principal(), data, access_point())
    return jsonify(client), 201


@bp.post("/clients/<client_id>/relationship")
def declare_relationship(client_id: str):
    with services() as rpc:
        result = rpc.clients.declare_relationship(principal(), client_id, access_point())
    return jsonify(result), 201


@bp.get("/clients/<client_id>/documents")
def list_documents(client_id: str):
    with services() as rpc:
        result = rpc.documents.list(principal(), client_id, access_point())
    return jsonify(documents=[public_document(d) for d in result["documents"]])


@bp.post("/clients/<client_id>/documents")
def upload_document(client_id: str):
    return jsonify(public_document(upload(client_id))), 201


def upload(client_id: str, check: Callable[[dict[str, str]], None] | None = None) -> dict[str, Any]:
    """Stream a multipart upload to documents; shared with the web pages (which check CSRF)."""
    max_bytes = current_app.config["MAX_DOCUMENT_BYTES"]
    files.allow_upload_body(request, max_bytes)
    try:
        who, point = principal(), access_point()

        def begin(fields: dict[str, str]) -> dict[str, Any]:
            if check is not None:
                check(fields)
            with services() as rpc:
                return rpc.documents.begin_upload(who, client_id, fields, point)

        return files.upload(request, begin, current_app.config["DOCUMENTS_URL"], max_bytes)
    except OverdrachtError:
        files.discard_rest(request, max_bytes)
        raise


@bp.get("/documents/<document_id>/content")
def download_document(document_id: str):
    return download(document_id)


@bp.before_app_request
def no_head_on_downloads():
    """HEAD would be audited as a download and spend its ticket while sending nothing."""
    if request.method == "HEAD" and request.endpoint in {"api.download_document", "pages.download"}:
        abort(405)


def download(document_id: str) -> Response:
    """Audit the view (in documents), then stream the bytes as an attachment."""
    with services() as rpc:
        grant = rpc.documents.begin_download(principal(), document_id, access_point())
    upstream = files.download(current_app.config["DOCUMENTS_URL"], grant["ticket"])
    # closed by the server when it is done, also if the browser went away: documents then
    # records the download as interrupted, never as delivered
    response = Response(
        files.Relay(upstream),
        mimetype=grant["content_type"],
        direct_passthrough=True,
    )
    response.headers["Content-Length"] = str(grant["size"])
    response.headers["Content-Disposition"] = attachment(grant["filename"])
    return response


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII fallback, and the real name percent-encoded as UTF-8."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = fallback.replace("\\", "_").replace('"', "_") or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.delete("/documents/<document_id>")
def delete_document(document_id: str):
    with services() as rpc:
        rpc.documents.delete(principal(), document_id, access_point())
    return Response(status=204)


@bp.patch("/documents/<document_id>")
def move_removal_date(document_id: str):
    data = body()
    with services() as rpc:
        document = rpc.documents.move_removal_date(
            principal(), document_id, data.get("removal_date"), access_point()
        )
    return jsonify(public_document(document))


@bp.get("/audit/events")
def audit_events():
    filters = {
        key: request.args.get(key)
        for key in ("client_id", "actor", "event", "since", "until", "order", "cursor", "limit")
        if request.args.get(key)
    }
    with services() as rpc:
        result = rpc.audit.query(principal(), filters, access_point())
    return jsonify(result)


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "document_type",
        "filename",
        "content_type",
        "size",
        "sha256",
        "removal_date",
        "uploaded_at",
        "uploaded_by",
        "uploaded_by_profession",
    )
    return {k: document[k] for k in keys}
