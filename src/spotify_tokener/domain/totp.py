"""The web player's TOTP: the secret becomes an HMAC key (its characters' codes, each XORed with a
position mask, written in decimal and joined), then RFC 6238: HMAC-SHA1, 30 s steps, 6 digits."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

PERIOD_S = 30
DIGITS = 6
NEIGHBOURS = (0, -1, 1)
"""The steps a sighted code is looked for in: its own, then either side (the page's clock may lag)."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A TOTP secret and the version number the token call names it by; never logged."""

    value: str = field(repr=False)
    version: int | None = None

    @property
    def key(self) -> bytes:
        return "".join(str(ord(char) ^ ((index % 33) + 9)) for index, char in enumerate(self.value)).encode()


def step_at(at_ms: int) -> int:
    """The 30 s step a moment (epoch ms) falls in: one code for all of it."""
    return at_ms // 1000 // PERIOD_S


def totp(key: bytes, at_s: float) -> str:
    counter = int(at_s) // PERIOD_S
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**DIGITS).zfill(DIGITS)


def reproduces(key: bytes, code: str, at_s: float, within: int = 1) -> bool:
    """Whether ``key`` gives ``code`` at ``at_s`` or up to ``within`` steps either side."""
    steps = range(-within, within + 1)
    return any(hmac.compare_digest(totp(key, at_s + step * PERIOD_S), code) for step in steps)
