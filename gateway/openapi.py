"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

_DATE = {"type": "string", "format": "date"}
_UUID = {"type": "string", "format": "uuid"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "Error", **_json(_ref("Error"))} for c in codes}


def _op(summary: str, ok: dict[str, Any], *errors: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**ok, **_errors(*errors, 401, 503)}, **extra}


def _object(*required: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_STRING = {"type": "string"}
_ANY = {"200": {"description": "Result", **_json({"type": "object"})}}
_TOKEN = _object("token", token=_STRING)


def _onboarding_paths() -> dict[str, Any]:
    """Activation links, the coördinator's list and the beheerder's accounts (README)."""
    path = {"in": "path", "required": True, "schema": _STRING}
    account_filters = [
        {"name": n, "in": "query", "required": False, "schema": _STRING}
        for n in ("region", "role", "status", "q")
    ]
    return {
        "/activation": {
            "post": _op(
                "Whose activation link this is: username, name, masked number. 410 with "
                "activation_used, activation_expired, activation_superseded or "
                "activation_unknown when it no longer works",
                _ANY,
                400,
                410,
                security=[],
                requestBody=_json(_TOKEN),
            )
        },
        "/activation/code": {
            "post": _op(
                "Send the link's owner an SMS code; 429 (Retry-After) too soon after the last",
                _ANY,
                400,
                410,
                429,
                security=[],
                requestBody=_json(_TOKEN),
            )
        },
        "/activation/complete": {
            "post": _op(
                "The SMS code and her own password: the account is active, the link spent. "
                "422 with wrong_code (tries left), code_failed, invalid_password or "
                "weak_password",
                _ANY,
                400,
                410,
                422,
                security=[],
                requestBody=_json(
                    _object(
                        "token",
                        "code",
                        "password",
                        token=_STRING,
                        code=_STRING,
                        password={"type": "string", "minLength": 12, "maxLength": 128},
                    )
                ),
            )
        },  # fmt: skip
        "/me/totp": {
            "post": _op(
                "Set up the authenticator app: its secret (the same until confirmed) and the "
                "otpauth URI; 409 totp_enabled when it is set up already",
                _ANY,
                409,
            )
        },
        "/me/totp/confirm": {
            "post": _op(
                "A code from the app confirms it; from then on logins ask the app (or a "
                "recovery code), not an SMS. Returns the ten recovery codes, only now. 422 "
                "wrong_code",
                _ANY,
                409,
                422,
                requestBody=_json(_object("code", "password", code=_STRING, password=_STRING)),
            )
        },
        "/second-factor": {
            "get": _op("Roles that must use the authenticator app (beheerder)", _ANY, 403),
            "post": _op(
                "Require the app for a role, or no longer (beheerder; audited); its accounts "
                "without one set it up at their next login and can do nothing else first",
                _ANY,
                403,
                422,
                requestBody=_json(
                    _object(
                        "role",
                        "totp_required",
                        role=_STRING,
                        totp_required={"type": "boolean"},
                    )
                ),
            ),
        },
        "/provider-lists": {
            "post": _op(
                "A coördinator submits her region's providers: a CSV (README, Provider lists) "
                "as a form's file or as the body. Each row with an error is reported by its "
                "line (errors) and not kept; 201 when a list was made of the others",
                {"201": {"description": "Submitted"}, **_ANY},
                403,
                422,
            ),
            "get": _op(
                "Submitted lists (beheerder)",
                _ANY,
                403,
                parameters=[{"name": "status", "in": "query", "schema": _STRING}],
            ),
        },
        "/provider-lists/{list_id}": {
            "get": _op(
                "One list with its rows (beheerder)",
                _ANY,
                403,
                404,
                parameters=[{"name": "list_id", **path}],
            )
        },
        "/provider-lists/{list_id}/register": {
            "post": _op(
                "Register and invite every row not yet registered (beheerder); rows whose "
                "e-mail could not go are listed in failed and stay to be tried again; rows "
                "left for the next call (a long list) are counted in remaining; 409 "
                "list_closed once it was rejected or expired (30 days without review)",
                _ANY,
                403,
                404,
                409,
                parameters=[{"name": "list_id", **path}],
            )
        },
        "/provider-lists/{list_id}/reject": {
            "post": _op(
                "Refuse a submitted list (beheerder): its rows not registered are deleted; "
                "409 list_closed once it was registered, rejected or expired",
                _ANY,
                403,
                404,
                409,
                parameters=[{"name": "list_id", **path}],
            )
        },
        "/region/accounts": {
            "get": _op("The care providers of the coördinator's region, with status", _ANY, 403)
        },
        "/accounts": {
            "get": _op(
                "Every account, filtered (beheerder)", _ANY, 403, 422, parameters=account_filters
            ),
            "post": _op(
                "Register one account and e-mail her an activation link (beheerder: "
                "zorgverlener or coordinator); 503 mail_failed keeps nothing",
                {"201": {"description": "Invited"}},
                403,
                409,
                422,
            ),
        },
        "/accounts/{username}/{action}": {
            "post": _op(
                "unlock, reset (password and sessions end, a new activation link) or "
                "deactivate one account (beheerder; audited)",
                _ANY,
                403,
                404,
                409,
                parameters=[{"name": "username", **path}, {"name": "action", **path}],
            )
        },
    }


def spec(document_types: dict[str, str]) -> dict[str, Any]:
    """Build the document; the document types are configuration, so they are filled in here."""
    client_id = [{"name": "client_id", "in": "path", "required": True, "schema": _UUID}]
    document_id = [{"name": "document_id", "in": "path", "required": True, "schema": _UUID}]
    audit_params = [
        {"name": n, "in": "query", "required": False, "schema": s}
        for n, s in (
            ("client_id", _UUID),
            ("actor", {"type": "string", "description": "username"}),
            ("event", {"type": "string"}),
            ("since", {"type": "string", "format": "date-time"}),
            ("until", {"type": "string", "format": "date-time"}),
            ("order", {"enum": ["oldest", "newest"], "default": "oldest"}),
            ("cursor", {"type": "string"}),
            ("limit", {"type": "integer", "maximum": 500}),
        )
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Overdracht API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "overdracht_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Challenge": {
                    "type": "object",
                    "properties": {
                        "challenge": {"type": "string"},
                        "method": {
                            "enum": ["sms", "totp"],
                            "description": "where the code comes from: an SMS, or her "
                            "authenticator app (a recovery code also does)",
                        },
                        "sent_to": {
                            "type": ["string", "null"],
                            "description": "the number the code went to, masked: 06-****1234",
                        },
                    },
                },
                "Client": {
                    "type": "object",
                    "properties": {"id": _UUID, "name": {"type": "string"}},
                },
                "Document": {
                    "type": "object",
                    "properties": {
                        "id": _UUID,
                        "document_type": {"enum": list(document_types)},
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "size": {"type": "integer"},
                        "sha256": {"type": "string"},
                        "removal_date": _DATE,
                        "uploaded_at": {"type": "string", "format": "date-time"},
                        "uploaded_by": {"type": "string"},
                        "uploaded_by_profession": {
                            "type": ["string", "null"],
                            "description": "verloskundige, gynaecoloog, ... (null for a "
                            "document placed before this was kept)",
                        },
                    },
                },
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/login": {
                "post": _op(
                    "Check username and password; sends an SMS code. An unknown username, a "
                    "wrong password and a locked account get the same 401; 429 (Retry-After) "
                    "while this address or its network has too many failed attempts",
                    {"200": {"description": "Challenge", **_json(_ref("Challenge"))}},
                    400,
                    422,
                    429,
                    security=[],
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["username", "password"],
                            "properties": {
                                "username": {"type": "string"},
                                "password": {"type": "string"},
                            },
                        }
                    ),
                )
            },
            "/login/resend": {
                "post": _op(
                    "Send the challenge a new SMS code (the old one stops working); 429 with "
                    "Retry-After when the last one went out too recently; 401 code_failed when "
                    "the challenge is spent",
                    {"200": {"description": "Sent", **_json(_ref("Challenge"))}},
                    400,
                    429,
                    security=[],
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["challenge"],
                            "properties": {"challenge": {"type": "string"}},
                        }
                    ),
                )
            },
            "/login/verify": {
                "post": _op(
                    "Exchange challenge and SMS code for a session token (also set as cookie). "
                    "A wrong code is 401 wrong_code while tries are left (the same challenge "
                    "takes another code), 401 code_failed once it is spent: log in again",
                    {
                        "200": {
                            "description": "Token",
                            **_json(
                                {"type": "object", "properties": {"token": {"type": "string"}}}
                            ),
                        }
                    },
                    400,
                    429,
                    security=[],
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["challenge", "code"],
                            "properties": {
                                "challenge": {"type": "string"},
                                "code": {"type": "string"},
                            },
                        }
                    ),
                )
            },
            "/me": {"get": _op("The logged-in provider", {"200": {"description": "Profile"}})},
            "/me/password": {
                "post": _op(
                    "Change one's own password; every other session of hers ends, this one "
                    "stays. 422 with wrong_current_password, invalid_password (length), "
                    "weak_password (guessable) or same_password; 429 while the account is locked",
                    {"204": {"description": "Changed"}},
                    400,
                    422,
                    429,
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["current_password", "new_password"],
                            "properties": {
                                "current_password": {"type": "string"},
                                "new_password": {
                                    "type": "string",
                                    "minLength": 12,
                                    "maxLength": 128,
                                },
                            },
                        }
                    ),
                )
            },
            "/logout": {"post": _op("End the session", {"204": {"description": "Logged out"}})},
            "/clients/search": {
                "post": _op(
                    "Exact search: birth date plus BSN and/or phone (audited)",
                    {
                        "200": {
                            "description": "Results",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "results": {"type": "array", "items": _ref("Client")}
                                    },
                                }
                            ),
                        }
                    },
                    400,
                    403,
                    422,
                    429,
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["birth_date"],
                            "properties": {
                                "birth_date": _DATE,
                                "bsn": {"type": "string"},
                                "phone": {"type": "string"},
                            },
                        }
                    ),
                )
            },
            "/clients": {
                "get": _op(
                    "Mijn cliënten: the clients she has a relationship with (audited); those "
                    "with a document someone else placed since she last opened them first, "
                    "with new_since set",
                    {
                        "200": {
                            "description": "Her clients",
                            **_json(
                                _object(
                                    "clients",
                                    clients={
                                        "type": "array",
                                        "items": _object(
                                            "id",
                                            "name",
                                            "birth_date",
                                            id=_UUID,
                                            name=_STRING,
                                            birth_date=_DATE,
                                            due_date={"type": ["string", "null"]},
                                            new_since={"type": ["string", "null"]},
                                        ),
                                    },
                                )
                            ),
                        }
                    },
                    403,
                ),
                "post": _op(
                    "Add a client; establishes the creator's treatment relationship",
                    {"201": {"description": "Created", **_json(_ref("Client"))}},
                    400,
                    403,
                    409,
                    422,
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["maiden_name", "birth_date", "bsn", "phone"],
                            "properties": {
                                "maiden_name": {"type": "string"},
                                "birth_date": _DATE,
                                "bsn": {"type": "string"},
                                "phone": {"type": "string"},
                                "due_date": _DATE,
                            },
                        }
                    ),
                ),
            },
            "/clients/{client_id}/relationship": {
                "post": _op(
                    "Declare a treatment relationship with a client found by search",
                    {"201": {"description": "Established"}},
                    403,
                    404,
                    parameters=client_id,
                )
            },
            "/clients/{client_id}/documents": {
                "get": _op(
                    "A client's documents (audited)",
                    {
                        "200": {
                            "description": "Documents",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "documents": {"type": "array", "items": _ref("Document")}
                                    },
                                }
                            ),
                        }
                    },
                    403,
                    404,
                    parameters=client_id,
                ),
                "post": _op(
                    "Upload a document (multipart; fields before the file part)",
                    {"201": {"description": "Stored", **_json(_ref("Document"))}},
                    400,
                    403,
                    404,
                    413,
                    422,
                    parameters=client_id,
                    requestBody={
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["document_type", "removal_date", "file"],
                                    "properties": {
                                        "document_type": {"enum": list(document_types)},
                                        "removal_date": _DATE,
                                        "file": {"type": "string", "format": "binary"},
                                    },
                                }
                            }
                        }
                    },
                ),
            },
            "/documents/{document_id}/content": {
                "get": _op(
                    "Download a document's bytes as an attachment (audited)",
                    {
                        "200": {
                            "description": "The file",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        }
                    },
                    403,
                    404,
                    502,  # integrity_failure: the stored bytes were altered; none are served
                    parameters=document_id,
                )
            },
            "/documents/{document_id}": {
                "delete": _op(
                    "Withdraw a document (its uploader only)",
                    {"204": {"description": "Deleted"}},
                    403,
                    404,
                    parameters=document_id,
                ),
                "patch": _op(
                    "Move a document's removal date (within the cap; audited)",
                    {"200": {"description": "Moved", **_json(_ref("Document"))}},
                    400,
                    403,
                    404,
                    422,
                    parameters=document_id,
                    requestBody=_json(_object("removal_date", removal_date=_DATE)),
                ),
            },
            "/audit/events": {
                "get": _op(
                    "Query the audit log (auditors only)",
                    {
                        "200": {
                            "description": "Records",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "events": {
                                            "type": "array",
                                            "description": (
                                                "Records: the envelope plus seq, hash and "
                                                "withheld (true when a read.withheld says its "
                                                "answer was never given). A "
                                                "document.downloaded (granted before the first "
                                                "byte) also has delivered (true only when its "
                                                "document.delivery says delivered) and delivery "
                                                "(that record's outcome: delivered, failed, "
                                                "interrupted; null while there is none)."
                                            ),
                                            "items": {"type": "object"},
                                        },
                                        "next_cursor": {"type": ["string", "null"]},
                                    },
                                }
                            ),
                        }
                    },
                    403,
                    422,
                    parameters=audit_params,
                )
            },
            **_onboarding_paths(),
        },
    }
