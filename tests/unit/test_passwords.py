"""Passwords: length and guessability (zxcvbn with context words), refused in Dutch."""

from __future__ import annotations

import pytest

from overdracht.contracts import InvalidInput, Throttled
from services.auth import accounts
from services.auth.service import _throttle_keys, masked_phone

CONTEXT = accounts.password_context(
    "marieke.vermeulen",
    "Marieke Vermeulen",
    "m.vermeulen@verloskundigen-noord.nl",
    "Regio Noord",
    "verloskundige",
)


@pytest.mark.parametrize(
    "password",
    [
        "een lang genoeg wachtwoord",
        "fiets paraplu kaas molen",
        "Zeeland-Fiets7-Kwast",
        "x7#Lq2!vR9@m",  # 12 random characters
        "correct horse battery staple " * 4,  # 116 characters
        "k3Wp9!zQ" * 2 + "lente bloemen fietsen tussen de dijken bij Harlingen" + "8)vT" * 15,
    ],
)
def test_strong_passwords_are_accepted(password):
    assert len(password) <= accounts.MAX_PASSWORD
    accounts.check_password(password, CONTEXT)


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaaaaaa", "herhaalt tekens"),
        ("password1234", "veelgebruikt wachtwoord"),
        ("wachtwoord12", "veelgebruikt wachtwoord"),
        ("qwertyuiop123", "veelgebruikt wachtwoord"),
        ("p4ssw0rd1234", "vervangt letters door cijfers"),
        ("abcdefghijklmn", "reeks"),
        ("x" * 128, "herhaalt tekens"),  # judged in pieces: repeats across them add nothing
        ("abc" * 42, "herhaalt tekens"),
    ],
)
def test_common_and_guessable_passwords_are_refused_in_dutch(password, why):
    with pytest.raises(InvalidInput) as refused:
        accounts.check_password(password, CONTEXT)

    assert refused.value.code == "weak_password"
    assert refused.value.message.startswith("Dit wachtwoord is te makkelijk te raden: het ")
    assert why in refused.value.message
    # none of zxcvbn's own (English) feedback
    for english in ("Add another word", "This is", "Avoid", "common", "easy to guess"):
        assert english not in refused.value.message


@pytest.mark.parametrize(
    "password",
    ["MariekeVermeulen1", "marieke.vermeulen!", "Vermeulen-Marieke", "mvermeulen2026!!"],
)
def test_her_own_name_username_or_mail_is_guessable(password):
    # zxcvbn alone, knowing no Dutch names, finds these strong: the context makes the difference
    assert accounts.weaknesses(password, []) is None
    with pytest.raises(InvalidInput) as refused:
        accounts.check_password(password, CONTEXT)

    assert "uw naam, gebruikersnaam of e-mailadres" in refused.value.message


@pytest.mark.parametrize("password", ["sannedesmet12", "desmetsanne!!", "SanneDeSmet2026"])
def test_her_name_with_its_words_run_together_is_guessable(password):
    context = accounts.password_context(
        "s.desmet", "Sanne de Smet 40ac", "sanne@vsv-test.nl", "VSV Zeeland"
    )
    with pytest.raises(InvalidInput) as refused:
        accounts.check_password(password, context)

    assert "uw naam, gebruikersnaam of e-mailadres" in refused.value.message


@pytest.mark.parametrize("length", [0, 11, 129, 1000])
def test_length_is_12_to_128(length):
    with pytest.raises(InvalidInput) as refused:
        accounts.check_password(("k3Wp9!zQ-" * 200)[:length], CONTEXT)

    assert refused.value.code == "invalid_password"
    assert refused.value.message == "Het wachtwoord moet 12 tot 128 tekens lang zijn."


def test_the_longest_password_is_judged_in_pieces(monkeypatch):
    """zxcvbn alone needs seconds for 128 random characters (its matching grows much faster
    than the length); it is only ever given pieces of at most 32. (`make bench`-style
    timing has no place here: what keeps it fast is the size of what zxcvbn sees.)"""
    password = "".join(chr(33 + (i * 37) % 94) for i in range(128))
    seen: list[int] = []
    real = accounts.zxcvbn

    def measured(text, **options):
        seen.append(len(text))
        return real(text, **options)

    monkeypatch.setattr(accounts, "zxcvbn", measured)
    accounts.check_password(password, CONTEXT)

    assert seen and max(seen) <= 32
    assert sum(seen) >= len(password)  # every character was judged


def test_the_context_holds_username_name_and_mail_parts():
    assert {
        "marieke.vermeulen",
        "marieke",
        "vermeulen",
        "mariekevermeulen",
        "m.vermeulen",
        "overdracht",
    } <= set(CONTEXT)


def test_the_number_a_code_went_to_is_masked():
    assert masked_phone("0612345678") == "06-****5678"


@pytest.mark.parametrize(
    ("ip", "keys"),
    [
        ("192.0.2.7", ["ip:192.0.2.7", "net:192.0.2.0/24"]),
        ("::ffff:192.0.2.7", ["ip:192.0.2.7", "net:192.0.2.0/24"]),
        ("2001:db8:1:2:3:4:5:6", ["ip:2001:db8:1:2:3:4:5:6", "net:2001:db8:1:2::/64"]),
        ("", ["ip:unknown"]),
        ("not an address", ["ip:unknown"]),
    ],
)
def test_throttle_buckets_are_the_address_and_its_network(ip, keys):
    assert [key for key, _ in _throttle_keys({"ip": ip})] == keys


def test_a_throttled_refusal_crosses_rpc_with_its_wait():
    from nameko.exceptions import deserialize, serialize

    again = deserialize(serialize(Throttled("Te veel pogingen.", "too_many_attempts", 42)))

    assert isinstance(again, Throttled)
    assert (again.status, again.code, again.retry_after) == (429, "too_many_attempts", 42)
