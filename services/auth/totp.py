"""The authenticator app (TOTP, RFC 6238, with pyotp) and the recovery codes beside it.

A code is good in its 30-second step and the one before and after (a phone's clock is
rarely exact), and only once: the step it matched is remembered, and a code of that step
or an earlier one is refused (a replay). Recovery codes are ten random one-time codes
shown once at enrolment; only their SHA-256 is kept (each has 50 random bits).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg

ISSUER = "Overdracht"
#: steps before and after now that a code may come from
WINDOW = 1
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper, typed by hand


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """otpauth://totp/Overdracht:username?secret=…&issuer=Overdracht, for the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no image file: the pages allow images from self)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]  # without the XML declaration, to sit inside HTML


def matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The time step whose code this is, if it is within the window and later than after."""
    code = "".join(str(code or "").split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if after is not None and step <= after:
            continue  # that step's code was used already: a replay
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7m2p-x9q4r`, each good for one login."""
    return [
        "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]


def recovery_hash(code: str) -> str:
    """What is kept of a recovery code; typed with or without its dash, in any case."""
    normal = "".join(ch for ch in str(code or "").lower() if ch.isalnum())
    return hashlib.sha256(normal.encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    return len("".join(ch for ch in str(code or "") if ch.isalnum())) == 10
