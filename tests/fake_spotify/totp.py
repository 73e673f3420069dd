"""Spotify's web-player TOTP as CONTEXT.md describes it, for the fake to check what pages send."""

from __future__ import annotations

import hashlib
import hmac
import struct

PERIOD_S = 30
DIGITS = 6


def derive_key(secret: str) -> bytes:
    """Char codes XORed with (i % 33) + 9, written in decimal and joined, as UTF-8."""
    return "".join(str(ord(char) ^ ((i % 33) + 9)) for i, char in enumerate(secret)).encode()


def hotp(key: bytes, counter: int) -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**DIGITS).zfill(DIGITS)


def totp(key: bytes, at_s: float) -> str:
    return hotp(key, int(at_s) // PERIOD_S)


def accepts(key: bytes, code: str, at_s: float) -> bool:
    """True if ``code`` is valid for the current period or either neighbour (clock skew)."""
    return any(hmac.compare_digest(totp(key, at_s + step * PERIOD_S), code) for step in (-1, 0, 1))
