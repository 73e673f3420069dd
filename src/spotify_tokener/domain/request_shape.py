"""The token call's shape: which parameters the page sends, and which of them depend on the time.

From the page's own call (a *sighting*) and the secret, each parameter gets a role: a TOTP code (for
the client's or the server's time), the secret's version, a timestamp, or a value sent as it is. The
direct source replays the shape with fresh times, so a page that adds or renames a parameter teaches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spotify_tokener.domain.totp import DIGITS, NEIGHBOURS, PERIOD_S, Secret, reproduces, totp

DAY_S = 86_400
CODE_SKEW_STEPS = 10
"""How far (in 30 s steps, five minutes) a code the page computed for the *server's* time may lie
from ours, when telling which parameters are codes: the secret is known by then, and a six-digit
value that its key gives anywhere in that window is a code, not a constant to replay."""
MS_THRESHOLD = 10**11
"""An epoch timestamp above this is in milliseconds (10**11 seconds is in the year 5138)."""
CODE = re.compile(rf"\d{{{DIGITS}}}")


class Role(Enum):
    FIXED = "fixed"
    CLIENT_CODE = "client code"
    SERVER_CODE = "server code"
    VERSION = "version"
    CLIENT_SECONDS = "client seconds"
    CLIENT_MS = "client ms"
    SERVER_SECONDS = "server seconds"
    SERVER_MS = "server ms"


@dataclass(frozen=True, slots=True)
class Sighting:
    """The page's own token call as the browser saw it, at ``at_ms``: never a cookie, only its URL."""

    url: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    role: Role
    value: str = ""  # sent as it is when the role is FIXED


@dataclass(frozen=True, slots=True)
class RequestShape:
    """Where the token call goes and what it carries; ``render`` fills in the time-bound values."""

    endpoint: str
    params: tuple[Param, ...]

    def render(self, secret: Secret, client_s: float, server_s: float) -> str:
        key = secret.key
        values = {
            Role.CLIENT_CODE: totp(key, client_s),
            Role.SERVER_CODE: totp(key, server_s),
            Role.VERSION: str(secret.version or ""),
            Role.CLIENT_SECONDS: str(int(client_s)),
            Role.CLIENT_MS: str(int(client_s * 1000)),
            Role.SERVER_SECONDS: str(int(server_s)),
            Role.SERVER_MS: str(int(server_s * 1000)),
        }
        query = urlencode([(param.name, values.get(param.role, param.value)) for param in self.params])
        return f"{self.endpoint}?{query}"


def default_shape(page_url: str) -> RequestShape:
    """The call as the web player made it in late 2026, until the browser has shown the page's own."""
    parts = urlsplit(page_url)
    return RequestShape(
        urlunsplit((parts.scheme, parts.netloc, "/api/token", "", "")),
        (
            Param("reason", Role.FIXED, "init"),
            Param("productType", Role.FIXED, "web-player"),
            Param("totp", Role.CLIENT_CODE),
            Param("totpServer", Role.SERVER_CODE),
            Param("totpVer", Role.VERSION),
        ),
    )


def sighted_codes(sighting: Sighting) -> list[str]:
    """The six-digit values of a sighting: what a candidate secret must reproduce."""
    return [value for _, value in parse_qsl(urlsplit(sighting.url).query) if CODE.fullmatch(value)]


def first_matching(
    candidates: Iterable[Secret], sighting: Sighting, *, every_code: bool = False
) -> Secret | None:
    """The first candidate that gives a code the page sent, at the time it sent it: the sighting
    read once for them all (tens of thousands of candidates, from a page's memory). ``every_code``:
    and each other code within the server clock's skew, as the secret does; one string among many
    rarely gives one code by chance, and codes of two steps all but never."""
    codes = set(sighted_codes(sighting))
    at_s = sighting.at_ms / 1000
    if not codes:
        return None
    for candidate in candidates:
        key = candidate.key
        if any(totp(key, at_s + step * PERIOD_S) in codes for step in NEIGHBOURS) and (
            not every_code or all(reproduces(key, code, at_s, CODE_SKEW_STEPS) for code in codes)
        ):
            return candidate
    return None


def learn_shape(sighting: Sighting, secret: Secret) -> RequestShape:
    """The sighting's shape, each parameter's role told by its value and, where values agree, its name."""
    parts = urlsplit(sighting.url)
    at_s = sighting.at_ms / 1000
    key = secret.key
    params = tuple(
        Param(name, role, value if role is Role.FIXED else "")
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        for role in (_role(name, value, key, secret.version, at_s),)
    )
    return RequestShape(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), params)


def _role(name: str, value: str, key: bytes, version: int | None, at_s: float) -> Role:
    servers = "server" in name.lower() or name.startswith("s")
    side = "server" if servers else "client"
    if CODE.fullmatch(value) and reproduces(key, value, at_s, within=CODE_SKEW_STEPS):
        return Role(f"{side} code")
    if version is not None and value == str(version) and "ver" in name.lower() and not servers:
        return Role.VERSION
    if value.isdigit():
        milliseconds = int(value) > MS_THRESHOLD
        if abs(int(value) / (1000 if milliseconds else 1) - at_s) < DAY_S:
            return Role(f"{side} {'ms' if milliseconds else 'seconds'}")
    return Role.FIXED
