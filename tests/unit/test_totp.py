"""The authenticator app's codes: the window, replays, and the recovery codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from services.auth import totp

NOW = datetime(2026, 11, 26, 12, 0, 10, tzinfo=UTC)


def test_a_code_matches_its_step_and_the_steps_beside_it_only():
    secret = totp.new_secret()
    app = pyotp.TOTP(secret)
    step = app.timecode(NOW)
    for offset in (-1, 0, 1):
        code = app.at(NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, NOW, None) == step + offset
    for offset in (-3, -2, 2, 3):
        code = app.at(NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, NOW, None) is None


def test_a_code_of_a_step_already_used_or_earlier_is_a_replay():
    secret = totp.new_secret()
    app = pyotp.TOTP(secret)
    code = app.at(NOW)
    used = totp.matching_step(secret, code, NOW, None)
    assert totp.matching_step(secret, code, NOW, used) is None
    earlier = app.at(NOW - timedelta(seconds=30))
    assert totp.matching_step(secret, earlier, NOW, used) is None
    later = app.at(NOW + timedelta(seconds=30))
    assert totp.matching_step(secret, later, NOW, used) == used + 1


def test_anything_but_six_digits_matches_nothing():
    secret = totp.new_secret()
    for code in ("", "12345", "1234567", "abcdef", None, " 12 34 5"):
        assert totp.matching_step(secret, code, NOW, None) is None
    spaced = pyotp.TOTP(secret).at(NOW)
    assert totp.matching_step(secret, f"{spaced[:3]} {spaced[3:]}", NOW, None) is not None


def test_the_uri_names_the_issuer_and_the_account_and_the_qr_is_inline_svg():
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "a.devries")
    assert (
        uri
        == "otpauth://totp/Overdracht:a.devries?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Overdracht"
    )
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg") and "<?xml" not in svg and "<path" in svg


def test_ten_distinct_recovery_codes_typed_any_way_hash_alike():
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 11 and code[5] == "-"
        assert totp.looks_like_recovery_code(code)
        assert totp.recovery_hash(code) == totp.recovery_hash(code.upper().replace("-", ""))
    assert not totp.looks_like_recovery_code("123456")
