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

import orjson

from spotify_tokener.domain.bundle import script_urls, secret_candidates
from spotify_tokener.domain.errors import refusal
from spotify_tokener.domain.request_shape import (
    Param,
    RequestShape,
    Role,
    Sighting,
    first_confirmed,
    learn_shape,
)
from spotify_tokener.domain.totp import Secret
from spotify_tokener.sources.direct.client import Reply

HTTP_OK = 200
MAX_SCRIPTS = 16
SCRIPT_HOSTS = ("spotify.com", "spotifycdn.com")
"""Only Spotify's own scripts are read: a page may also load third parties'."""


class Origin(Enum):
    """Where the secret in use came from; ``status`` shows it."""

    PINNED = "pinned"  # TOKENER_TOTP_SECRET
    PAGE = "page"  # in the page's scripts, and reproduces the page's own code (a sighting)
    MEMORY = "page memory"  # held by the running page (its heap), and reproduces the page's own code
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


NOTE = "direct-source"
"""The name what was learned is shared under between replicas (``core/ports.Notes``)."""


def dump_knowledge(knowledge: Knowledge, learned_at_ms: int) -> bytes:
    """What replicas share: the secret, its version and the call's shape; never a cookie."""
    return orjson.dumps(
        {
            "secret": knowledge.secret.value,
            "version": knowledge.secret.version,
            "endpoint": knowledge.shape.endpoint,
            "params": [[param.name, param.role.value, param.value] for param in knowledge.shape.params],
            "learnedAtMs": learned_at_ms,
        }
    )


def load_knowledge(raw: bytes | None, endpoint: str) -> tuple[Knowledge, int] | None:
    """Another replica's knowledge and when it was learned, if it reads well and calls ``endpoint``
    (a record that would send the call elsewhere is ignored)."""
    try:
        record = orjson.loads(raw) if raw else None
        if not isinstance(record, dict) or record["endpoint"] != endpoint:
            return None
        version, at = record["version"], record["learnedAtMs"]
        params = tuple(Param(str(name), Role(role), str(value)) for name, role, value in record["params"])
        if not isinstance(at, int) or not (version is None or isinstance(version, int)):
            return None
        secret = Secret(str(record["secret"]), version)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return Knowledge(secret, RequestShape(endpoint, params), Origin.REPLICA), at


@dataclass(frozen=True, slots=True)
class PageText:
    """The page's scripts as read for learning: their URLs, and the bodies that could be read."""

    urls: tuple[str, ...]
    scripts: list[bytes]


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


def confirmed_by(
    candidates: Sequence[Secret], sighting: Sighting, origin: Origin = Origin.PAGE
) -> Knowledge | None:
    """The first candidate that reproduces the sighting's code, with the sighting's shape. A few
    microseconds a candidate, tens of thousands of them for a large bundle: run it in a thread."""
    candidate = first_confirmed(candidates, sighting)
    if candidate is None:
        return None
    secret = candidate if candidate.version is not None else _versioned(candidate, sighting)
    return Knowledge(secret, learn_shape(sighting, secret), origin)


def candidates_in(scripts: Sequence[bytes]) -> list[Secret]:
    """Every script's candidates, versioned ones first across all scripts."""
    found = [secret for script in scripts for secret in secret_candidates(script.decode("utf-8", "replace"))]
    return sorted(found, key=lambda secret: secret.version is None)


def _versioned(secret: Secret, sighting: Sighting) -> Secret:
    """An unversioned candidate takes the version the page sent (its ``totpVer``-like parameter)."""
    for name, value in parse_qsl(urlsplit(sighting.url).query):
        lowered = name.lower()
        if "ver" in lowered and "server" not in lowered and value.isdigit():
            return Secret(secret.value, int(value))
    return secret


def _spotifys(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == domain or host.endswith("." + domain) for domain in SCRIPT_HOSTS)
