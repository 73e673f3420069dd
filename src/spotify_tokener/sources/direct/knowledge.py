"""What the direct source knows (a secret and the call's shape), and how it learns it from the page:
with a sighting from the browser (the page's own call, its codes and its time), a candidate is proven
offline, at no cost upstream."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import orjson

from spotify_tokener.domain.bundle import script_urls, secret_candidates
from spotify_tokener.domain.errors import refusal
from spotify_tokener.domain.hashes import app_version
from spotify_tokener.domain.request_shape import (
    Param,
    RequestShape,
    Role,
    Sighting,
    first_matching,
    learn_shape,
    sighted_codes,
    step_of,
)
from spotify_tokener.domain.token import HTTP_OK
from spotify_tokener.domain.totp import Secret
from spotify_tokener.sources.http_client import Reply

MAX_SCRIPTS = 16
HANDFUL = 8
"""Versioned candidates kept, newest first: a build names a few (the current and its elders); one
naming many more is built to make a decoy match the page's code by chance."""
SCRIPT_HOSTS = ("spotify.com", "spotifycdn.com")
"""Only Spotify's own scripts are read: a page may also load third parties'."""
TOTP_VERSION = re.compile(r"totp(?!.*server).*ver", re.IGNORECASE)
"""The parameter the page sends the secret's version in: totpVer; not totpServer, nor buildVer."""


class Origin(Enum):
    """Where the secret in use came from; ``status`` shows it."""

    PINNED = "pinned"  # TOKENER_TOTP_SECRET
    SCRIPTS = "scripts"  # written next to its version in the page's scripts, no sighting needed
    PAGE = "page"  # in the page's scripts, and reproduces the page's own code (a sighting)
    MEMORY = "page memory"  # held by the running page (its heap), and reproduces the page's own code
    REPLICA = "replica"  # learned by another replica
    KEPT = "state folder"  # learned before a restart (TOKENER_STATE_DIR)


@dataclass(frozen=True, slots=True)
class Knowledge:
    """``proven``, not just likely: a versioned candidate that reproduces a sighted code is (a handful
    against a one-in-a-million match); one string among thousands is not yet, since one of them matches
    by chance now and then: it needs a code of another 30 s step than ``step`` (the sighting's)
    reproduced or accepted."""

    secret: Secret
    shape: RequestShape
    origin: Origin
    proven: bool
    step: int | None = None


NOTE = "direct-source"  # what replicas share it under

MAX_PARAMS, MAX_TEXT = 32, 512  # a record's bounds: its parameters, the characters of each string


def knowledge_record(knowledge: Knowledge, learned_at_ms: int) -> dict[str, Any]:
    """What replicas share, and the state folder keeps: never a cookie."""
    return {
        "secret": knowledge.secret.value,
        "version": knowledge.secret.version,
        "endpoint": knowledge.shape.endpoint,
        "params": [[param.name, param.role.value, param.value] for param in knowledge.shape.params],
        "learnedAtMs": learned_at_ms,
    }


def dump_knowledge(knowledge: Knowledge, learned_at_ms: int) -> bytes:
    return orjson.dumps(knowledge_record(knowledge, learned_at_ms))


def load_knowledge(raw: bytes | None, endpoint: str) -> tuple[Knowledge, int] | None:
    try:
        return knowledge_from(orjson.loads(raw) if raw else None, endpoint, Origin.REPLICA)
    except orjson.JSONDecodeError:
        return None


def knowledge_from(record: object, endpoint: str, origin: Origin) -> tuple[Knowledge, int] | None:
    """Read as warily as an answer from the network: a record that would send the call elsewhere than
    ``endpoint``, or with a field out of its type or bounds, is ignored."""
    try:
        if not isinstance(record, dict) or record["endpoint"] != endpoint:
            return None
        value, version, at = record["secret"], record["version"], record["learnedAtMs"]
        shape = tuple(
            Param(name, Role(role), text) for name, role, text in record["params"][: MAX_PARAMS + 1]
        )
    except (KeyError, TypeError, ValueError):
        return None
    texts = [value, *(part for param in shape for part in (param.name, param.value))]
    if len(shape) > MAX_PARAMS or not all(map(_text, texts)) or not _count(at) or not _count(version or 0):
        return None
    return Knowledge(Secret(value, version), RequestShape(endpoint, shape), origin, proven=True), at


def bundle_from(record: dict[str, Any] | None) -> tuple[str, ...]:
    urls = record.get("bundle") if record else None
    fine = isinstance(urls, list) and len(urls) <= MAX_SCRIPTS and all(map(_text, urls))
    return tuple(urls) if fine and urls else ()


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable()


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class PageText:
    urls: tuple[str, ...]
    scripts: list[bytes]


@dataclass(frozen=True, slots=True)
class Page:
    cookies: dict[str, str]
    scripts: tuple[str, ...]
    app_version: str | None = None


def parse_page(reply: Reply, page_url: str) -> Page:
    if reply.status != HTTP_OK:
        raise refusal(reply.status, "the web player page")
    html = reply.body.decode("utf-8", "replace")
    scripts = tuple(url for url in script_urls(html, page_url) if _spotifys(url))[:MAX_SCRIPTS]
    return Page(dict(reply.cookies), scripts, app_version(html))


class Candidates(NamedTuple):
    secrets: list[Secret]
    crowded: bool  # the scripts named more versioned ones than the handful kept


def knowledge_matching(
    candidates: Sequence[Secret], sighting: Sighting, origin: Origin = Origin.PAGE, crowded: bool = False
) -> Knowledge | None:
    """An unversioned candidate must reproduce every code, and is proven only if they were of two steps
    (the page's and the server's clocks either side of a step's end); a versioned one is, unless the
    scripts were ``crowded`` with them. A few microseconds a candidate, tens of thousands of them for a
    large bundle: run it in a thread."""
    versioned = [candidate for candidate in candidates if candidate.version is not None]
    unversioned = [candidate for candidate in candidates if candidate.version is None]
    two_steps = len(set(sighted_codes(sighting))) > 1  # client and server codes of different steps
    for group, proven in ((versioned, not crowded), (unversioned, two_steps)):
        candidate = first_matching(group, sighting, every_code=group is unversioned)
        if candidate is not None:
            secret = candidate if group is versioned else _versioned(candidate, sighting)
            step = step_of(sighting)
            return Knowledge(secret, learn_shape(sighting, secret), origin, proven=proven, step=step)
    return None


def candidates_in(scripts: Sequence[bytes]) -> Candidates:
    """The :data:`HANDFUL` newest versioned ones across all scripts first: those alone may be tried
    unsighted."""
    found = [secret for script in scripts for secret in secret_candidates(script.decode("utf-8", "replace"))]
    versioned = sorted(
        (secret for secret in found if secret.version is not None), key=lambda secret: -(secret.version or 0)
    )
    unversioned = [secret for secret in found if secret.version is None]
    return Candidates([*versioned[:HANDFUL], *unversioned], len(versioned) > HANDFUL)


def _versioned(secret: Secret, sighting: Sighting) -> Secret:
    for name, value in parse_qsl(urlsplit(sighting.url).query):
        if TOTP_VERSION.fullmatch(name) and value.isdigit():
            return Secret(secret.value, int(value))
    return secret


def _spotifys(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == domain or host.endswith("." + domain) for domain in SCRIPT_HOSTS)
