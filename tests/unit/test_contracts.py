"""The shapes every service agrees on: the signed principal and the event envelope."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overdracht.contracts import (
    CLIENT_SEARCHED,
    DELIVERY_OUTCOMES,
    DOCUMENT_DELIVERY,
    DOCUMENT_UPLOADED,
    ENVELOPE_FIELDS,
    EVENT_NAMES,
    EVENT_SOURCES,
    Principal,
    Unauthenticated,
    check_envelope,
    make_event,
    sign_principal,
    verify_principal,
)

PRINCIPAL = Principal(
    provider_id=str(uuid.uuid4()),
    username="verlos-anna",
    full_name="Anna de Vries",
    role="zorgverlener",
    region="Regio Noord",
    session_id=str(uuid.uuid4()),
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- principal -------------------------------------------------------------------------


def test_a_signed_principal_verifies_with_the_matching_public_key(key):
    token = sign_principal(PRINCIPAL, key)

    assert isinstance(token, str)
    assert verify_principal(token, key.public_key()) == PRINCIPAL


def test_a_principal_keeps_every_field_through_signing(key):
    other = replace(PRINCIPAL, role="auditor", region="Regio Zuid", username="audit-bram")

    verified = verify_principal(sign_principal(other, key), key.public_key())

    assert verified == other
    assert verified != PRINCIPAL


def test_an_expired_principal_is_refused(key):
    token = sign_principal(PRINCIPAL, key, ttl=timedelta(seconds=-30))

    with pytest.raises(Unauthenticated) as caught:
        verify_principal(token, key.public_key())
    assert caught.value.code == "unauthenticated"


def test_a_principal_with_a_changed_claim_is_refused(key):
    token = sign_principal(PRINCIPAL, key)
    header, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload))
    assert claims["role"] == "zorgverlener"
    claims["role"] = "beheerder"
    forged = ".".join([header, _b64encode(json.dumps(claims).encode()), signature])

    with pytest.raises(Unauthenticated):
        verify_principal(forged, key.public_key())


def test_a_principal_with_a_changed_signature_is_refused(key):
    token = sign_principal(PRINCIPAL, key)
    header, payload, signature = token.split(".")
    raw = bytearray(_b64decode(signature))
    raw[0] ^= 0xFF
    forged = ".".join([header, payload, _b64encode(bytes(raw))])

    with pytest.raises(Unauthenticated):
        verify_principal(forged, key.public_key())


def test_a_principal_signed_by_another_key_is_refused(key):
    token = sign_principal(PRINCIPAL, Ed25519PrivateKey.generate())

    with pytest.raises(Unauthenticated):
        verify_principal(token, key.public_key())


@pytest.mark.parametrize("token", [None, 42, {"provider_id": "x"}, ["a.b.c"]])
def test_a_principal_that_is_not_a_string_is_refused(key, token):
    with pytest.raises(Unauthenticated):
        verify_principal(token, key.public_key())


def test_a_valid_token_as_bytes_is_still_refused(key):
    token = sign_principal(PRINCIPAL, key).encode()

    with pytest.raises(Unauthenticated):
        verify_principal(token, key.public_key())


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c"])
def test_garbage_is_refused(key, token):
    with pytest.raises(Unauthenticated):
        verify_principal(token, key.public_key())


# --- events ----------------------------------------------------------------------------


def test_make_event_refuses_an_unknown_name():
    assert "document.shredded" not in EVENT_NAMES
    with pytest.raises(ValueError, match="document.shredded"):
        make_event("document.shredded", actor=PRINCIPAL.actor())


def test_only_documents_records_how_a_download_ended():
    assert [s for s, names in EVENT_SOURCES.items() if DOCUMENT_DELIVERY in names] == ["documents"]
    assert DELIVERY_OUTCOMES == ("delivered", "failed", "interrupted")
    event = make_event(
        DOCUMENT_DELIVERY,
        actor=PRINCIPAL.actor(),
        outcome="interrupted",
        detail={"grant_event_id": str(uuid.uuid4()), "bytes_sent": 0, "size": 10},
    )
    assert check_envelope(event)["outcome"] == "interrupted"


def test_make_event_fills_every_envelope_field():
    actor = PRINCIPAL.actor()
    event = make_event(
        DOCUMENT_UPLOADED,
        actor=actor,
        access_point={"ip": "192.0.2.7"},
        subject="client-1",
        object={"type": "document", "id": "doc-1"},
        detail={"size": 12},
    )

    assert set(event) == set(ENVELOPE_FIELDS)
    assert event["event"] == DOCUMENT_UPLOADED
    assert uuid.UUID(event["event_id"]).version == 4
    assert event["actor"] == actor
    assert event["access_point"] == {"ip": "192.0.2.7"}
    assert event["subject"] == "client-1"
    assert event["object"] == {"type": "document", "id": "doc-1"}
    assert event["outcome"] == "success"
    assert event["detail"] == {"size": 12}


def test_make_event_defaults_to_empty_objects_and_fresh_ids():
    first = make_event(CLIENT_SEARCHED, actor={"type": "system"})
    second = make_event(CLIENT_SEARCHED, actor={"type": "system"}, outcome="not_found")

    assert set(first) == set(ENVELOPE_FIELDS)
    assert first["access_point"] == {}
    assert first["detail"] == {}
    assert first["subject"] is None
    assert first["object"] is None
    assert second["outcome"] == "not_found"
    assert first["event_id"] != second["event_id"]


def test_make_event_stamps_the_time_in_utc():
    before = datetime.now(UTC)
    event = make_event(DOCUMENT_UPLOADED, actor={"type": "system"})
    after = datetime.now(UTC)

    occurred = datetime.fromisoformat(event["occurred_at"])
    assert occurred.tzinfo is not None
    assert occurred.utcoffset() == timedelta(0)
    assert before <= occurred <= after


# --- envelope check --------------------------------------------------------------------


def test_check_envelope_accepts_what_make_event_builds():
    event = make_event(DOCUMENT_UPLOADED, actor=PRINCIPAL.actor(), subject="client-1")

    assert check_envelope(event) is event


def test_check_envelope_accepts_an_envelope_after_a_json_round_trip():
    event = make_event(DOCUMENT_UPLOADED, actor=PRINCIPAL.actor())

    assert check_envelope(json.loads(json.dumps(event))) == event


@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_check_envelope_refuses_a_missing_field(field):
    event = make_event(DOCUMENT_UPLOADED, actor=PRINCIPAL.actor())
    del event[field]

    with pytest.raises(ValueError, match=field):
        check_envelope(event)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("event", "document.shredded", "unknown event"),
        ("occurred_at", datetime.now(UTC).replace(tzinfo=None).isoformat(), "UTC offset"),
        ("occurred_at", "gisteren", None),
        ("event_id", "42", None),
        ("actor", "verlos-anna", "actor"),
        ("subject", "x" * 65, "subject"),
        ("actor", {"type": "anonymous", "username": "a" * 65}, "actor.username"),
    ],
)
def test_check_envelope_refuses_a_bad_field(field, value, match):
    event = make_event(DOCUMENT_UPLOADED, actor=PRINCIPAL.actor())
    event[field] = value

    with pytest.raises(ValueError, match=match):
        check_envelope(event)


@pytest.mark.parametrize("payload", [None, "document.uploaded", 7, [("event", "x")]])
def test_check_envelope_refuses_what_is_not_an_object(payload):
    with pytest.raises(ValueError, match="not an object"):
        check_envelope(payload)


def test_a_system_token_names_its_service_and_only_the_system_key_signs_one():
    from overdracht.contracts import sign_system_token, verify_system_token

    system_key, principal_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    token = sign_system_token("retention", system_key)
    assert verify_system_token(token, system_key.public_key()) == "retention"
    with pytest.raises(Unauthenticated):
        verify_system_token(token, principal_key.public_key())
    with pytest.raises(Unauthenticated):
        verify_system_token(
            sign_system_token("retention", system_key, timedelta(seconds=-1)),
            system_key.public_key(),
        )
    # a provider's principal is no system token, even when signed with the same key
    with pytest.raises(Unauthenticated):
        verify_system_token(sign_principal(PRINCIPAL, system_key), system_key.public_key())


def test_a_grant_holds_for_exactly_what_clients_signed():
    from overdracht.contracts import Forbidden, sign_grant, verify_grant

    clients_key = Ed25519PrivateKey.generate()
    grant = sign_grant(PRINCIPAL, "client-1", "document.listed", clients_key)
    verify_grant(grant, clients_key.public_key(), PRINCIPAL, "client-1", "document.listed")
    other = replace(PRINCIPAL, session_id="another session")
    for key, who, client, action in (
        (Ed25519PrivateKey.generate().public_key(), PRINCIPAL, "client-1", "document.listed"),
        (clients_key.public_key(), other, "client-1", "document.listed"),
        (clients_key.public_key(), PRINCIPAL, "client-2", "document.listed"),
        (clients_key.public_key(), PRINCIPAL, "client-1", "document.deleted"),
    ):
        with pytest.raises(Forbidden):
            verify_grant(grant, key, who, client, action)
    with pytest.raises(Forbidden):
        verify_grant("not a grant", clients_key.public_key(), PRINCIPAL, "client-1", "x")


def test_a_system_token_names_its_call():
    from overdracht.contracts import sign_system_token, verify_system_token

    key = Ed25519PrivateKey.generate()
    token = sign_system_token("retention", key, call="clients.deletion_candidates")
    assert (
        verify_system_token(token, key.public_key(), "clients.deletion_candidates") == "retention"
    )
    with pytest.raises(Unauthenticated):
        verify_system_token(token, key.public_key(), "clients.delete_clients")
    with pytest.raises(Unauthenticated):
        verify_system_token(sign_system_token("retention", key), key.public_key(), "x.y")


def test_a_principal_lives_at_most_60_seconds():
    """After a logout, reset or deactivation the services refuse it within a minute."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from overdracht.contracts import Principal, sign_principal

    token = sign_principal(
        Principal("p", "u", "n", "zorgverlener", "r", "s"), Ed25519PrivateKey.generate()
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 60
