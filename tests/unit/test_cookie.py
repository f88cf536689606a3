"""The session cookie is sealed: what it carries cannot be read or changed by whoever
holds it."""

from __future__ import annotations

import pytest
from flask import Flask, session
from itsdangerous import BadSignature

from gateway.cookie import SealedCookieSessionInterface, Sealer

BSN = "111222333"


def test_what_goes_in_comes_out_and_cannot_be_read_in_between():
    sealer = Sealer("geheim")
    sealed = sealer.dumps({"new_client": {"bsn": BSN}, "when": b"bytes"})
    assert BSN not in sealed
    assert sealer.loads(sealed) == {"new_client": {"bsn": BSN}, "when": b"bytes"}
    assert sealer.dumps({"a": 1}) != sealer.dumps({"a": 1})  # a fresh nonce each time


@pytest.mark.parametrize(
    "spoil",
    [
        lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1],  # one character changed
        lambda v: v[:20],  # cut short
        lambda v: "%%%" + v,  # not base64
        lambda v: Sealer("een andere sleutel").dumps({"new_client": {"bsn": BSN}}),
    ],
)
def test_a_changed_or_foreign_cookie_is_refused(spoil):
    sealer = Sealer("geheim")
    with pytest.raises(BadSignature):
        sealer.loads(spoil(sealer.dumps({"new_client": {"bsn": BSN}})))


def test_an_old_cookie_is_refused_after_its_lifetime(monkeypatch):
    sealer = Sealer("geheim")
    sealed = sealer.dumps({"a": 1})
    assert sealer.loads(sealed, max_age=60) == {"a": 1}
    later = __import__("time").time() + 61
    monkeypatch.setattr("gateway.cookie.time.time", lambda: later)
    with pytest.raises(BadSignature):
        sealer.loads(sealed, max_age=60)


def test_flask_keeps_its_session_in_the_sealed_cookie():
    app = Flask(__name__)
    app.secret_key = "geheim"
    app.session_interface = SealedCookieSessionInterface()

    @app.post("/zet")
    def put():
        session["bsn"] = BSN
        return ""

    @app.get("/lees")
    def read():
        return session.get("bsn", "")

    client = app.test_client()
    response = client.post("/zet")
    assert BSN not in response.headers["Set-Cookie"]
    assert client.get("/lees").text == BSN
    client.set_cookie("session", "vervalst")
    assert client.get("/lees").text == ""  # a forged cookie is an empty session
