"""What the direct source knows (a secret and the call's shape), and how it learns it from the page.

Learning reads the web player's page and scripts by plain HTTP and takes the candidates that
``domain/bundle.py`` offers. With a sighting from the browser (the page's own call, its codes and
its time), a candidate is confirmed offline, at no cost upstream. Without one, a few versioned
candidates may be tried on Spotify itself, each once: a wrong TOTP is an easy signal to ban on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlsplit

from spotify_tokener.domain.bundle import script_urls, secret_candidates
from spotify_tokener.domain.errors import refusal
from spotify_tokener.domain.request_shape import RequestShape, Sighting, confirms, learn_shape
from spotify_tokener.domain.totp import Secret
from spotify_tokener.sources.direct.client import Reply

HTTP_OK = 200
MAX_SCRIPTS = 16
SCRIPT_HOSTS = ("spotify.com", "spotifycdn.com")
"""Only Spotify's own scripts are read: a page may also load third parties'."""


class Origin(Enum):
    """Where the secret in use came from; ``status`` shows it."""

    PINNED = "pinned"  # TOKENER_TOTP_SECRET
    PAGE = "page"  # reproduces the page's own code, seen by the browser source
    SPOTIFY = "spotify"  # taken from the scripts unconfirmed, then accepted by Spotify
    UNCONFIRMED = "unconfirmed"  # taken from the scripts, not yet tried
    REPLICA = "replica"  # learned by another replica


@dataclass(frozen=True, slots=True)
class Knowledge:
    secret: Secret
    shape: RequestShape
    origin: Origin

    @property
    def confirmed(self) -> bool:
        return self.origin is not Origin.UNCONFIRMED


@dataclass(frozen=True, slots=True)
class Page:
    """One visit of the web player: what it set (the device cookie) and the scripts it names."""

    cookies: dict[str, str]
    scripts: tuple[str, ...]


def parse_page(reply: Reply, page_url: str) -> Page:
    if reply.status != HTTP_OK:
        raise refusal(reply.status, "the web player page")
    html = reply.body.decode("utf-8", "replace")
    scripts = tuple(url for url in script_urls(html, page_url) if _spotifys(url))[:MAX_SCRIPTS]
    return Page(dict(reply.cookies), scripts)


def confirmed_by(candidates: Sequence[Secret], sighting: Sighting) -> Knowledge | None:
    """The first candidate that reproduces the sighting's code, with the sighting's shape."""
    for candidate in candidates:
        if confirms(candidate, sighting):
            secret = candidate if candidate.version is not None else _versioned(candidate, sighting)
            return Knowledge(secret, learn_shape(sighting, secret), Origin.PAGE)
    return None


def candidates_in(scripts: Sequence[bytes]) -> list[Secret]:
    """Every script's candidates, versioned ones first across all scripts."""
    found = [secret for script in scripts for secret in secret_candidates(script.decode("utf-8", "replace"))]
    return sorted(found, key=lambda secret: secret.version is None)


def _versioned(secret: Secret, sighting: Sighting) -> Secret:
    """An unversioned candidate takes the version the page sent (its ``totpVer``-like parameter)."""
    for name, value in parse_qsl(urlsplit(sighting.url).query):
        if "ver" in name.lower() and value.isdigit():
            return Secret(secret.value, int(value))
    return secret


def _spotifys(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == domain or host.endswith("." + domain) for domain in SCRIPT_HOSTS)
